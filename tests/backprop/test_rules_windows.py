"""Windowed reductions (rules/windows.py): average pooling (reduce_window_sum), max/min pooling
(reduce_window_max/min) in NHWC and NCHW with strides 1 and 2, SAME/VALID/explicit padding,
base and window dilation; ties; and the generic reduce_window with an add/max/min reducer.
Against jax.vjp and central finite differences in float64, and under jax.jit; where jax.vjp
cannot differentiate (window-dilated max pooling, generic reduce_window), finite differences
only."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from funcnn import backprop
from tests.backprop.sampling import check_vjp, distinct, primitive_names, rng_for
from tests.backprop.test_rules_indexing import check_fd, check_jit
from tests.helpers import assert_trees_close

INF = float("inf")
REDUCERS = {"sum": (0.0, lax.add), "max": (-INF, lax.max), "min": (INF, lax.min)}


def pool(kind, window, strides, padding, **kw):
    init, op = REDUCERS[kind]
    return lambda x: lax.reduce_window(x, init, op, window, strides, padding, **kw)


# name: (reducer, operand shape, window, strides, padding, extra keyword arguments)
CASES = {
    "NHWC 3x3 stride 2 SAME": ((2, 5, 6, 2), (1, 3, 3, 1), (1, 2, 2, 1), "SAME", {}),
    "NHWC 2x2 stride 2 VALID": ((1, 4, 5, 3), (1, 2, 2, 1), (1, 2, 2, 1), "VALID", {}),
    "NHWC 2x2 stride 1 SAME": ((1, 4, 4, 2), (1, 2, 2, 1), (1, 1, 1, 1), "SAME", {}),
    "NCHW 3x2 stride (2, 1) explicit": ((2, 2, 6, 5), (1, 1, 3, 2), (1, 1, 2, 1),
                                        ((0, 0), (0, 0), (1, 2), (0, 1)), {}),
    "base dilation": ((1, 4, 3, 1), (1, 2, 2, 1), (1, 1, 2, 1),  # no window all holes
                      ((0, 0), (1, 1), (0, 1), (0, 0)), dict(base_dilation=(1, 2, 1, 1))),
    "1-d stride 2": ((7,), (3,), (2,), "SAME", {}),
}
WINDOW_DILATION = ((1, 6, 5, 2), (1, 2, 2, 1), (1, 1, 2, 1), "SAME",
                   dict(window_dilation=(1, 2, 1, 1)))


MIN_CASES = ("NHWC 2x2 stride 2 VALID", "NCHW 3x2 stride (2, 1) explicit", "1-d stride 2")


@pytest.mark.parametrize("name, kind", [(name, kind) for name in CASES for kind in
                                        ("sum", "max", "min")
                                        if kind != "min" or name in MIN_CASES])
def test_matches_jax_and_finite_differences(name, kind):
    shape, window, strides, padding, kw = CASES[name]
    rng = rng_for(f"{name} {kind}")
    f = pool(kind, window, strides, padding, **kw)
    x = jnp.asarray(distinct(shape)(rng))  # no ties: finite differences see one argmax
    assert f"reduce_window_{kind}" in primitive_names(f, x)
    check_vjp(f, [x], rng)
    check_jit(f, [x], rng)


def test_window_dilation():
    shape, window, strides, padding, kw = WINDOW_DILATION
    rng = rng_for("window dilation")
    x = jnp.asarray(distinct(shape)(rng))
    check_vjp(pool("sum", window, strides, padding, **kw), [x], rng)
    for kind in ("max", "min"):  # JAX: "VJP not implemented for ... window dilation"
        check_fd(pool(kind, window, strides, padding, **kw), (x,), rng)


TIES = np.array([[1., 1., 2., 2., 0.],
                 [1., 0., 2., 2., 0.],
                 [3., 3., 3., 3., 3.],
                 [3., 3., 0., 3., 3.]])


@pytest.mark.parametrize("kind", ["max", "min"])
@pytest.mark.parametrize("strides, padding", [((1, 1), "SAME"), ((2, 2), "VALID"),
                                               ((1, 2), ((1, 1), (2, 0)))])
def test_ties_go_where_jax_sends_them(kind, strides, padding):
    """Each window's cotangent goes to the first extremum in row-major window order."""
    f = pool(kind, (2, 3), strides, padding)
    x = jnp.asarray(TIES if kind == "max" else -TIES)
    out, ref_vjp = jax.vjp(f, x)
    ct = jnp.asarray(rng_for(f"ties {kind} {strides}").standard_normal(out.shape))
    want = ref_vjp(ct)
    assert_trees_close(backprop.vjp(f, x)[1](ct), want)
    assert_trees_close(jax.jit(lambda x, c: backprop.vjp(f, x)[1](c))(x, ct), want)


# --- generic reduce_window: a reducer JAX keeps as a jaxpr (init not the identity) ----------
@pytest.mark.parametrize("op", [lax.add, lax.max, lax.min])
def test_generic_reduce_window(op):
    rng = rng_for(f"generic {op.__name__}")
    x = jnp.asarray(distinct((1, 5, 4, 2))(rng))
    init = jnp.asarray(0.25)  # between x's values, so some windows choose it

    def f(x, c):
        return lax.reduce_window(x, c, op, (1, 2, 3, 1), (1, 2, 1, 1), "SAME")

    assert "reduce_window" in primitive_names(f, x, init)
    check_fd(f, (x, init), rng)
    check_fd(lambda x: f(x, 1.5), (x,), rng)  # a literal init


def test_generic_reduce_window_other_reducer_raises():
    def f(x):
        return lax.reduce_window(x, 1.0, lax.mul, (2,), (1,), "VALID")

    x = jnp.arange(1.0, 5.0)
    with pytest.raises(NotImplementedError, match="add, max or min"):
        backprop.vjp(f, x)[1](jnp.ones(3))
