"""top_k and approx_top_k (rules/selection.py): the cotangent of each chosen value goes back
to its index. Against jax.vjp and float64 finite differences (values drawn distinct, so the
choice does not change under the perturbation); ties follow the returned indices, as JAX."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from funcnn import backprop
from tests.backprop.matrix_specs import S, exactly, run_spec, slow, spec_name, unique_names
from tests.backprop.sampling import check_hvp, distinct, rng_for, run_jitted

SPECS = [
    S("top_k", "top_k", lambda x: lax.top_k(x, 3), distinct((4, 6))),
    S("top_k_values_only", "top_k", lambda x: lax.top_k(x, 2)[0], distinct((2, 3, 5))),
    slow(S("top_k_all", "top_k", lambda x: lax.top_k(x, 5)[0], distinct((5,)))),
    S("top_k_zero_batch", "top_k", lambda x: lax.top_k(x, 2)[0], distinct((0, 5))),
    S("top_k_ties", "top_k", lambda x: lax.top_k(x, 3)[0],
      exactly([[1.0, 3.0, 3.0, 0.0, 3.0], [2.0, 2.0, 2.0, 2.0, 2.0]]), fd=False),
    S("top_k_router", "top_k",  # a mixture-of-experts router: softmax over the top 2 logits
      lambda logits, h: (jax.nn.softmax(lax.top_k(logits, 2)[0], axis=-1)[..., None]
                         * h[:, None, :]).sum(), distinct((3, 4)), distinct((3, 5))),
    S("approx_max_k", "approx_top_k", lambda x: lax.approx_max_k(x, 2), distinct((3, 6))),
    slow(S("approx_min_k", "approx_top_k", lambda x: lax.approx_min_k(x, 3)[0], distinct((2, 7)))),
    slow(S("approx_max_k_axis0", "approx_top_k",
           lambda x: lax.approx_max_k(x, 2, reduction_dimension=0)[0], distinct((5, 3)))),
    S("top_k_axis0", "top_k", lambda x: lax.top_k(x, 2, axis=0)[0], distinct((5, 3))),
]


def test_spec_names_are_unique():
    assert unique_names(SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=[spec_name(s) for s in SPECS])
def test_rule(spec):
    run_spec(spec)


def test_top_k_ties_follow_the_indices():
    """With ties, exactly the returned indices get the cotangent (one each)."""
    x = jnp.array([1.0, 3.0, 3.0, 0.0, 3.0])
    _, indices = lax.top_k(x, 2)
    got = run_jitted(lambda x: backprop.vjp(lambda x: lax.top_k(x, 2)[0], x)[1](
        jnp.array([10.0, 20.0]))[0], x)
    want = np.zeros(5)
    want[np.asarray(indices)] = [10.0, 20.0]
    np.testing.assert_array_equal(got, want)


def test_second_order():
    rng = rng_for("hvp-top_k")
    check_hvp(lambda x: (lax.top_k(jnp.sin(x), 2)[0] ** 3).sum(), distinct((2, 5))(rng), rng)
