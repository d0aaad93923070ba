"""A program's own derivative rules through the engine's transformations: per-example gradients
under ``jax.vmap``, second order (the engine on its own output), ``graph()``, and the error for a
custom_vjp that closes over a differentiated value. The rules' cases themselves (clipping,
straight-through, symbolic zeros, residuals, nesting in scan/cond/jit) are in test_control.py.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from jax.custom_derivatives import linear_call

from funcnn import backprop
from funcnn.backprop.rules.custom import (
    ClosedOverDifferentiatedValue,
    NonLinearInputDifferentiated,
)
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


# --- linear_call: a linear function whose transpose the program declares ----------------------
def divide_with_transpose(r, x, scale=1.0):
    """x / r (linear in x) with a declared transpose ``scale * ct / r`` (scale 1: the true
    transpose; another scale: a rule that is not, so only the rule gives jax.grad's value)."""
    return linear_call(lambda r, x: x / r, lambda r, ct: scale * ct / r, r, x)


def pytree_linear(r, x):
    """(a, b) -> (r a + b, b - a) with its transpose, over a dict of residuals and a tuple of
    linear arguments."""
    def fn(res, lin):
        a, b = lin
        return res["w"] * a + b, b - a

    def transpose(res, cts):
        c1, c2 = cts
        return res["w"] * c1 - c2, c1 + c2

    return linear_call(fn, transpose, {"w": r}, x)


LINEAR_CALLS = {
    "true_transpose": lambda x: jnp.sum(jnp.sin(divide_with_transpose(2.5, x)) * x),
    "declared_7x": lambda x: jnp.sum(divide_with_transpose(2.5, jnp.tanh(x), 7.0) ** 2),
    "pytree": lambda x: sum(jnp.sum(o ** 2) for o in pytree_linear(1.7,
                                                                   (jnp.cos(x), 2.0 * x))),
    "nested_jit": jax.jit(lambda x: jnp.sum(divide_with_transpose(0.5, x * x, 3.0))),
}


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name", sorted(LINEAR_CALLS))
def test_linear_call_uses_the_declared_transpose(name, jit):
    f = LINEAR_CALLS[name]
    x = jnp.asarray(rng_for(name).standard_normal(4))
    want = jax.jit(jax.grad(f))(x)
    got = jax.jit(backprop.grad(f))(x) if jit else backprop.grad(f)(x)
    assert_trees_close(got, want, rtol=1e-14, atol=1e-15, what=name)


def test_linear_call_second_order():
    f = LINEAR_CALLS["declared_7x"]
    x = jnp.asarray(rng_for("lc2").standard_normal(4))
    # (JAX has no batching rule for linear_call, so no jax.hessian: grad of grad)
    want = jax.jit(jax.grad(lambda y: jnp.sum(jax.grad(f)(y) * jnp.arange(1.0, 5.0))))(x)
    got = jax.jit(backprop.grad(lambda y: jnp.sum(backprop.grad(f)(y) * jnp.arange(1.0, 5.0))))(x)
    assert_trees_close(got, want, rtol=1e-12, atol=1e-14)


def test_linear_call_in_a_residual_is_refused_as_by_jax():
    f = lambda r: jnp.sum(divide_with_transpose(r, jnp.ones(3)))
    with pytest.raises(AssertionError):  # JAX's own rule asserts the residual has no tangent
        jax.grad(f)(2.0)
    with pytest.raises(NonLinearInputDifferentiated, match="residual"):
        backprop.grad(f)(2.0)

