"""The engine emits ordinary JAX operations, so its gradients compose with JAX's transforms:
``jax.jit`` of an engine gradient, ``jax.vmap`` of it (per-example gradients), and the
engine differentiating its own output (second order: Hessian-vector products)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from jax import lax

from funcnn import backprop
from tests.backprop.sampling import rng_for, run_jitted
from tests.helpers import assert_trees_close

R = rng_for("test_transforms")
PARAMS = {"w1": jnp.asarray(R.standard_normal((4, 5)) / 2), "b1": jnp.zeros((1, 5)),
          "u": jnp.asarray(R.standard_normal((5, 5)) / 3),
          "w2": jnp.asarray(R.standard_normal((5, 3)) / 2)}
XB = jnp.asarray(R.standard_normal((6, 4)))  # a batch of 6 examples
YB = jnp.asarray(R.integers(0, 3, 6))
SEQ = jnp.asarray(R.standard_normal((6, 5, 4)) / 2)  # 6 sequences of 5 steps


def mlp_loss(p, x, y):
    """x: [batch, 4] or [4], y: [batch] or []: mean cross-entropy of a 2-layer relu MLP."""
    x2 = jnp.atleast_2d(x)
    h = jax.nn.relu(x2 @ p["w1"] + p["b1"])
    logp = jax.nn.log_softmax(h @ p["w2"], axis=-1)
    return -jnp.take_along_axis(logp, jnp.atleast_1d(y)[:, None], axis=-1).mean()


def rnn_loss(p, xs, y):
    """xs: [time, 4]: a tanh RNN over time (scan), then a linear readout."""
    def step(h, x):
        return jnp.tanh(x @ p["w1"] + h @ p["u"] + p["b1"][0]), None

    h, _ = lax.scan(step, jnp.zeros(5), xs)
    return ((h @ p["w2"]) ** 2).sum() * (1.0 + y)


def cond_loss(p, x, y):
    h = x @ p["w1"]
    return lax.cond(y > 0, lambda h: jnp.sin(h).sum(), lambda h: (h ** 2).sum(), h)


LOSSES = [
    ("mlp", mlp_loss, XB, YB),
    ("rnn_scan", rnn_loss, SEQ, YB.astype(jnp.float64)),
    ("cond", cond_loss, XB, YB),
]


@pytest.mark.parametrize("loss, x, y", [c[1:] for c in LOSSES], ids=[c[0] for c in LOSSES])
def test_jit_of_engine_grad(loss, x, y):
    batch_loss = jax.vmap(loss, in_axes=(None, 0, 0))

    def total(p, x, y):
        return batch_loss(p, x, y).mean()

    got = jax.jit(backprop.grad(total))(PARAMS, x, y)
    assert_trees_close(got, jax.jit(jax.grad(total))(PARAMS, x, y))


@pytest.mark.parametrize("loss, x, y", [c[1:] for c in LOSSES], ids=[c[0] for c in LOSSES])
def test_vmap_per_example_grads(loss, x, y):
    got, want = run_jitted(lambda *a: (jax.vmap(backprop.grad(loss), in_axes=(None, 0, 0))(*a),
                                       jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(*a)),
                           PARAMS, x, y)
    assert_trees_close(got, want)
    assert got["w1"].shape == (x.shape[0], 4, 5)


def test_vmap_of_engine_grad_eager():
    got = jax.vmap(backprop.grad(mlp_loss), in_axes=(None, 0, 0))(PARAMS, XB, YB)
    want = jax.jit(jax.vmap(jax.grad(mlp_loss), in_axes=(None, 0, 0)))(PARAMS, XB, YB)
    assert_trees_close(got, want)


# --- second order: the engine differentiates its own backward pass -------------------------
W = jnp.asarray(R.standard_normal((4, 4)) / 2)
X0 = jnp.asarray(R.standard_normal(4))
V = jnp.asarray(R.standard_normal(4))


def smooth(x):
    return jnp.sum(jnp.sin(x) * jnp.exp(x / 3.0)) + jnp.prod(x) + (x @ W @ x) ** 2 / 4.0


def with_scan(x):
    def step(h, w_row):
        h = jnp.tanh(h * w_row + x)
        return h, (h ** 2).sum()

    h, ys = lax.scan(step, x * 0.5, W)
    return h.sum() + ys.sum()


def with_reverse_scan_consts(x):
    c = jnp.cos(x)

    def step(h, i):
        return jnp.sin(h @ W) * c + i, None

    return jnp.sum(lax.scan(step, x, jnp.arange(3.0), reverse=True)[0] ** 2)


def with_cond(x):
    return lax.cond(x.sum() > 0, lambda x: jnp.sum(jnp.sin(x) ** 3),
                    lambda x: jnp.sum(jnp.exp(x) * x), x)


def with_custom_jvp(x):
    return jnp.sum(jax.nn.gelu(x @ W) * jax.nn.softplus(x)) + jax.nn.logsumexp(x * x)


def with_jit_and_remat(x):
    layer = jax.checkpoint(lambda x: jnp.tanh(x @ W) * x)
    return jnp.sum(jax.jit(layer)(layer(x)) ** 2)


def with_reductions(x):
    return jnp.max(x * x) + jnp.sum(jnp.cumprod(x + 2.0)) + jax.nn.softmax(x) @ x


SECOND_ORDER = [
    ("smooth", smooth, X0),
    ("scan", with_scan, X0),
    ("reverse_scan_consts", with_reverse_scan_consts, X0),
    ("cond_true_branch", with_cond, jnp.abs(X0)),
    ("cond_false_branch", with_cond, -jnp.abs(X0)),
    ("custom_jvp", with_custom_jvp, X0),
    ("jit_and_remat", with_jit_and_remat, X0),
    ("reductions", with_reductions, X0),
]


@pytest.mark.parametrize("f, x", [c[1:] for c in SECOND_ORDER], ids=[c[0] for c in SECOND_ORDER])
def test_hvp_engine_of_engine(f, x):
    """backprop.grad(x -> <backprop.grad(f)(x), v>) = H(x) v, against jax.hessian."""
    hvp = jax.jit(backprop.grad(lambda x: backprop.grad(f)(x) @ V))(x)
    assert_trees_close(hvp, jax.jit(jax.hessian(f))(x) @ V, rtol=1e-9, atol=1e-10)


def test_hvp_engine_of_engine_eager():
    """The same without jit: the engine's own vjp over its own grad, op by op."""
    hvp = backprop.grad(lambda x: backprop.grad(with_scan)(x) @ V)(X0)
    assert_trees_close(hvp, jax.hessian(with_scan)(X0) @ V, rtol=1e-9, atol=1e-10)


def test_hvp_through_custom_vjp():
    """A custom_vjp's bwd is ordinary code, so the engine differentiates through it (JAX's
    forward mode cannot, so the reference is reverse-over-reverse jax.grad)."""
    @jax.custom_vjp
    def f(x):
        return jnp.sin(x) * x

    f.defvjp(lambda x: (f(x), x), lambda x, g: (g * (jnp.cos(x) * x + jnp.sin(x)),))

    def loss(x):
        return jnp.sum(f(x @ W) ** 2)

    got = backprop.grad(lambda x: backprop.grad(loss)(x) @ V)(X0)
    assert_trees_close(got, jax.grad(lambda x: jax.grad(loss)(x) @ V)(X0), rtol=1e-9)


def test_per_example_hvp_vmap_of_engine_of_engine():
    xs = jnp.asarray(R.standard_normal((3, 4)))
    hvp = jax.jit(jax.vmap(backprop.grad(lambda x: backprop.grad(smooth)(x) @ V)))
    want = jax.jit(jax.vmap(lambda x: jax.hessian(smooth)(x) @ V))(xs)
    assert_trees_close(hvp(xs), want, rtol=1e-9)
