"""conv_general_dilated (rules/conv.py): both operands, NCHW/NHWC/1-d/mixed layouts, strides
1 and 2, SAME/VALID/explicit (negative too) padding, lhs and rhs dilation, feature groups
(depthwise too) and batch groups. Against jax.vjp and central finite differences in float64,
and under jax.jit."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from jax import lax

from funcnn import backprop
from tests.backprop.sampling import check_vjp, normal, rng_for
from tests.backprop.test_rules_indexing import check_jit
from tests.helpers import assert_trees_close

NCHW = ("NCHW", "OIHW", "NCHW")
NHWC = ("NHWC", "HWIO", "NHWC")

# name: (lhs shape, rhs shape, conv keyword arguments)
CASES = {
    "NHWC stride 2 VALID": ((2, 5, 6, 3), (3, 3, 3, 4),
                            dict(window_strides=(2, 2), padding="VALID", dimension_numbers=NHWC)),
    "NHWC stride 2 SAME, odd size": ((1, 7, 6, 2), (3, 2, 2, 3),
                                     dict(window_strides=(2, 2), padding="SAME",
                                          dimension_numbers=NHWC)),
    "explicit padding, rhs dilation": ((1, 2, 6, 5), (3, 2, 2, 3),
                                       dict(window_strides=(1, 2), padding=((1, 2), (0, 1)),
                                            rhs_dilation=(2, 1), dimension_numbers=NCHW)),
    "negative padding": ((1, 2, 6, 6), (2, 2, 2, 2),
                         dict(window_strides=(1, 1), padding=((-1, 1), (2, -2)),
                              dimension_numbers=NCHW)),
    "lhs dilation (transposed conv)": ((1, 4, 4, 2), (3, 3, 2, 2),
                                       dict(window_strides=(1, 1), padding=((2, 2), (1, 2)),
                                            lhs_dilation=(2, 2), dimension_numbers=NHWC)),
    "everything, stride 2": ((2, 2, 7, 6), (2, 2, 3, 2),
                             dict(window_strides=(2, 2), padding=((1, 0), (2, 1)),
                                  lhs_dilation=(1, 2), rhs_dilation=(2, 1),
                                  dimension_numbers=NCHW)),
    "feature groups 2 NCHW": ((2, 4, 5, 5), (6, 2, 3, 3),
                              dict(window_strides=(1, 1), padding="SAME", feature_group_count=2,
                                   dimension_numbers=NCHW)),
    "feature groups 2 NHWC stride 2": ((1, 5, 6, 4), (3, 3, 2, 6),
                                       dict(window_strides=(2, 2), padding="SAME",
                                            feature_group_count=2, dimension_numbers=NHWC)),
    "depthwise NHWC": ((1, 5, 5, 3), (3, 3, 1, 6),
                       dict(window_strides=(1, 1), padding="SAME", feature_group_count=3,
                            dimension_numbers=NHWC)),
    "batch groups 2 NCHW": ((4, 3, 5, 5), (4, 3, 3, 3),
                            dict(window_strides=(1, 1), padding="VALID", batch_group_count=2,
                                 dimension_numbers=NCHW)),
    "batch groups 2 NHWC stride 2": ((4, 5, 6, 2), (3, 3, 2, 4),
                                     dict(window_strides=(1, 2), padding="SAME",
                                          batch_group_count=2, dimension_numbers=NHWC)),
    "1-d NWC": ((2, 9, 3), (3, 3, 4),
                dict(window_strides=(2,), padding="SAME", rhs_dilation=(2,),
                     dimension_numbers=("NWC", "WIO", "NWC"))),
    "mixed layouts": ((2, 5, 4, 3), (2, 3, 3, 2),
                      dict(window_strides=(1, 1), padding="VALID",
                           dimension_numbers=("NHWC", "OIHW", "NCHW"))),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_jax_and_finite_differences(name):
    lhs_shape, rhs_shape, kw = CASES[name]
    rng = rng_for(name)
    args = [jnp.asarray(normal(lhs_shape)(rng)), jnp.asarray(normal(rhs_shape)(rng))]

    def f(x, w):
        return lax.conv_general_dilated(x, w, **kw)

    check_vjp(f, args, rng)
    check_jit(f, args, rng)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_low_precision_with_precision_and_preferred_type(dtype):
    rng = rng_for("low precision")
    x = jnp.asarray(rng.standard_normal((1, 4, 4, 2)), dtype)
    w = jnp.asarray(rng.standard_normal((3, 3, 2, 3)), dtype)

    def f(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=NHWC,
                                        precision=lax.Precision.HIGHEST,
                                        preferred_element_type=jnp.float32)

    out, vjp_fn = backprop.vjp(f, x, w)
    assert out.dtype == jnp.float32
    ct = jnp.asarray(rng.standard_normal(out.shape), jnp.float32)
    got = vjp_fn(ct)
    assert [g.dtype for g in got] == [dtype, dtype]
    assert_trees_close(got, jax.vjp(f, x, w)[1](ct), rtol=1e-2, atol=1e-2)
