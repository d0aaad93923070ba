"""dot_general's product order (rules/linalg.py): the copy-size model and the order it picks.

The values of every dot_general layout are checked against jax.vjp and finite differences in
test_rules.py; here: ``gemm_copy_size`` against hand-counted layouts, and the backward program
the engine emits for a dense layer, read off its jaxpr (which operand comes first, whether a
transpose follows), with the gradient against jax.grad.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from funcnn import backprop
from funcnn.backprop.rules.linalg import gemm_copy_size
from tests.helpers import assert_trees_close

COPY_SIZES = [  # shape, contracting dims, batch dims, as lhs?, elements copied
    ((6, 4), (1,), (), True, 0),  # [m, k]: as it is
    ((6, 4), (0,), (), True, 24),  # [k, m] as lhs: copied
    ((6, 4), (0,), (), False, 0),  # [k, n] as rhs
    ((6, 4), (1,), (), False, 0),  # [n, k] as rhs: the libraries take it transposed
    ((2, 6, 4), (2,), (0,), True, 0),  # [b, m, k]
    ((6, 2, 4), (2,), (1,), True, 48),  # batch not leading
    ((2, 3, 6, 4), (1, 3), (0,), True, 144),  # contracting dims apart
    ((2, 3, 4, 6), (1, 2), (0,), False, 0),  # [b, k1, k2, n] as rhs
    ((2, 3, 4, 6), (1, 2), (0,), True, 144),  # ... but not as lhs
]


@pytest.mark.parametrize("shape, contract, batch, lhs, expected", COPY_SIZES)
def test_gemm_copy_size(shape, contract, batch, lhs, expected):
    assert gemm_copy_size(shape, contract, batch, lhs) == expected


def kernel_cotangent_program(n_in, n_out, batch=16):
    """The engine's jaxpr for d sum(tanh(x @ w)) / dw and the gradient against jax.grad."""
    x = jax.random.normal(jax.random.PRNGKey(0), (batch, n_in))
    w = jax.random.normal(jax.random.PRNGKey(1), (n_in, n_out)) / n_in
    def f(w):
        return jnp.sum(jnp.tanh(x @ w))
    assert_trees_close(backprop.grad(f)(w), jax.grad(f)(w), rtol=1e-5, atol=1e-6)
    jaxpr = jax.make_jaxpr(backprop.grad(f))(w).jaxpr
    dots = [e for e in jaxpr.eqns if e.primitive.name == "dot_general"]
    transposes = [e for e in jaxpr.eqns if e.primitive.name == "transpose"]
    return x, dots, transposes


def test_kernel_cotangent_takes_the_activation_first_when_ct_is_larger():
    # x: [16, 8], ct: [16, 64]: copying x for [8, 16] @ [16, 64] beats copying ct and
    # transposing the [64, 8] product.
    x, dots, transposes = kernel_cotangent_program(8, 64)
    backward = dots[-1]
    assert backward.invars[0].aval.shape == x.shape
    assert backward.outvars[0].aval.shape == (8, 64) and not transposes


def test_kernel_cotangent_takes_jax_order_when_ct_is_smaller():
    # x: [16, 64], ct: [16, 8]: ct^T @ x, [8, 64], then one transpose into w's layout.
    x, dots, transposes = kernel_cotangent_program(64, 8)
    backward = dots[-1]
    assert backward.invars[1].aval.shape == x.shape
    assert backward.outvars[0].aval.shape == (8, 64)
    assert [t.outvars[0].aval.shape for t in transposes] == [(64, 8)]
