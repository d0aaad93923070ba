"""A program's own derivative rules through the engine's transformations: per-example gradients
under ``jax.vmap``, second order (the engine on its own output), ``graph()``, and the error for a
custom_vjp that closes over a differentiated value. The rules' cases themselves (clipping,
straight-through, symbolic zeros, residuals, nesting in scan/cond/jit) are in test_control.py.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from funcnn import backprop
from funcnn.backprop.rules.custom import ClosedOverDifferentiatedValue
from tests.backprop.sampling import rng_for
from tests.helpers import assert_trees_close

R = rng_for("test_custom_rules")
W = R.standard_normal((4, 3))
XB = R.standard_normal((6, 4))
XB[0] = 0.0  # an example whose pre-activations are exactly 0: relu's and softplus' rules decide


@jax.custom_vjp
def clip_gradient(x):
    return x


clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (jnp.clip(g, -0.2, 0.2),))


def example_loss(w, x):
    """x: [in_features] -> a scalar through softplus, relu, gelu, log_sigmoid and a clip."""
    h = x @ w
    return (jax.nn.softplus(h) * jax.nn.relu(h) + jax.nn.gelu(h) + clip_gradient(h) ** 2
            + jax.nn.log_sigmoid(h)).sum()


def test_per_example_gradients_under_vmap():
    per_example = jax.vmap(backprop.grad(example_loss), (None, 0))
    want = jax.vmap(jax.grad(example_loss), (None, 0))(W, XB)
    assert_trees_close(per_example(W, XB), want, rtol=1e-12, atol=1e-14)
    assert_trees_close(jax.jit(per_example)(W, XB), want, rtol=1e-12, atol=1e-14)


SECOND_ORDER = [  # (name, scalar function of w)
    ("softplus", lambda w: jax.nn.softplus(XB @ w).sum()),
    ("gelu_exact", lambda w: jax.nn.gelu(XB @ w, approximate=False).sum()),
    ("gelu_tanh", lambda w: jax.nn.gelu(XB @ w).sum()),
    ("silu_logsumexp", lambda w: jax.nn.logsumexp(jax.nn.silu(XB @ w), axis=-1).sum()),
    ("log_sigmoid", lambda w: (jax.nn.log_sigmoid(XB @ w) ** 2).sum()),
]


@pytest.mark.parametrize("f", [c[1] for c in SECOND_ORDER], ids=[c[0] for c in SECOND_ORDER])
def test_hessian_vector_products_through_custom_rules(f):
    """The engine differentiating its own gradient (whose jaxpr holds the rules' JVP jaxprs,
    with custom_jvp calls of their own) against JAX's Hessian."""
    v = R.standard_normal(W.shape)
    hvp = backprop.grad(lambda w: jnp.vdot(backprop.grad(f)(w), v))
    want = jnp.tensordot(jax.hessian(f)(W), v, axes=2)
    assert_trees_close(hvp(W), want, rtol=1e-10, atol=1e-12)
    assert_trees_close(jax.jit(hvp)(W), want, rtol=1e-10, atol=1e-12)


def test_graph_shows_the_rules_adjoints():
    """In ``graph()`` a custom rule is one node; the adjoint reaching its input is the rule's:
    relu'(0) = 0 and softplus'(0) = 1/2 (the bodies would give 0.5 and 0)."""
    g = backprop.graph(lambda z: jax.nn.relu(z) + jax.nn.softplus(z), 0.0)
    node = {n.primitive: n for n in g.nodes}
    assert {"custom_jvp_call"} <= set(node)
    inputs = [n for n in g.nodes if n.primitive is None]
    assert_trees_close(inputs[0].adjoint, jax.grad(
        lambda z: jax.nn.relu(z) + jax.nn.softplus(z))(0.0))
    assert_trees_close(inputs[0].adjoint, 0.5)


def test_a_custom_vjp_closing_over_a_differentiated_value_is_refused():
    """JAX refuses it too (its bwd gives no cotangent for a closure); the message says what
    to do and where."""
    def f(w, x):
        @jax.custom_vjp
        def scaled(x):
            return jnp.sin(x) * w

        scaled.defvjp(lambda x: (scaled(x), x), lambda x, g: (g * 2.0,))
        return scaled(x).sum()

    with pytest.raises(ClosedOverDifferentiatedValue, match="as an argument"):
        backprop.grad(f)(1.5, XB[1])
    # differentiating only the explicit argument is fine, and follows the rule
    assert_trees_close(backprop.grad(f, argnums=1)(1.5, XB[1]), jnp.full(4, 2.0))
