"""Start indices of every value, negative and out of range, through dynamic_slice and
dynamic_update_slice (and the ``lax`` helpers that trace to them), against ``jax.vjp``.

The ``lax`` wrappers wrap a negative start once (``i + n``), then the primitive clamps it to
[0, n - size]. A rule that hands the primitive's (already wrapped) starts to a ``lax`` wrapper
again wraps them twice: ``dynamic_index_in_dim(v, -5)`` on 4 elements reads v[0] (-5 + 4 = -1,
clamped to 0), and its cotangent went to v[3] (-1 + 4). Each function runs eagerly (concrete
starts) and under ``jax.jit`` (traced starts).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from funcnn import backprop
from tests.backprop.sampling import assert_grads_close, rng_for

STARTS = [-9, -6, -5, -4, -3, -1, 0, 1, 2, 3, 4, 7]  # for axes of 4 and 5 elements
FUNCTIONS = {
    "dynamic_index_in_dim": lambda x, u, i: lax.dynamic_index_in_dim(x, i, 1, keepdims=False),
    "dynamic_slice_in_dim": lambda x, u, i: lax.dynamic_slice_in_dim(x, i, 2, axis=0),
    "dynamic_slice": lambda x, u, i: lax.dynamic_slice(x, (i, i - 1), (2, 3)),
    "dynamic_update_slice": lambda x, u, i: lax.dynamic_update_slice(x, u, (i, 1 - i)),
    "dynamic_update_index_in_dim": lambda x, u, i: lax.dynamic_update_index_in_dim(
        x, u[0], i, 0),
}


def engine_and_jax(f, x, u, i, ct):
    got = backprop.vjp(lambda x, u: f(x, u, i), x, u)[1](ct)
    want = jax.vjp(lambda x, u: f(x, u, i), x, u)[1](ct)
    return got, want


@pytest.mark.parametrize("mode", ["eager", "jit"])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_start_indices_of_every_value(name, mode):
    f = FUNCTIONS[name]
    rng = rng_for(f"starts-{name}")
    x, u = rng.standard_normal((4, 5)), rng.standard_normal((2, 3))
    ct = rng.standard_normal(jax.eval_shape(lambda x, u: f(x, u, 0), x, u).shape)
    run = (jax.jit(engine_and_jax, static_argnums=0) if mode == "jit" else engine_and_jax)
    for i in STARTS:
        got, want = run(f, x, u, np.int32(i), ct)
        assert_grads_close(got, want, what=f"{name}, start {i}: ")


def test_out_of_range_index_reads_and_gets_the_clamped_element():
    """The example of the docstring, as numbers: the cotangent lands on v[0]."""
    v = jnp.arange(4.0)
    got = backprop.grad(lambda v: lax.dynamic_index_in_dim(v, -5, keepdims=False))(v)
    assert_grads_close(got, jnp.array([1.0, 0.0, 0.0, 0.0]))
