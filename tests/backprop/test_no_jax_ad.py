"""The engine never uses JAX's differentiation: with JAX's JVP/transpose machinery made to
raise (the entry points of ``jax._src.interpreters.ad``, its rule tables, and the public
``jax.grad``/``vjp``/``jvp``/``linearize``/``linear_transpose``), the engine still runs and
gives the gradients ``jax.grad`` computed before the patch. A sanity check proves the patch
is real: ``jax.grad``, and JAX's internal ``grad`` that bypasses the public names, raise."""
from __future__ import annotations

import functools
import pathlib
import re

import jax
import jax.numpy as jnp
import pytest
from jax import lax
from jax._src import api as jax_api
from jax._src.interpreters import ad

import funcnn.backprop
from funcnn import backprop
from tests.backprop.sampling import rng_for
from tests.helpers import assert_trees_close


class JaxADUsed(AssertionError):
    """Raised by every patched entry point."""


def forbidden(name):
    def raise_(*args, **kwargs):
        raise JaxADUsed(f"JAX's differentiation was used: {name}")

    return raise_


class ForbiddenTable(dict):
    """A rule table (``ad.primitive_jvps``, ...) whose every lookup raises."""

    def __init__(self, name, table):
        super().__init__(table)
        self.name = name

    def __getitem__(self, key):
        raise JaxADUsed(f"JAX's differentiation was used: {self.name}[{key}]")

    def get(self, key, default=None):
        raise JaxADUsed(f"JAX's differentiation was used: {self.name}.get({key})")

    def __contains__(self, key):
        raise JaxADUsed(f"JAX's differentiation was used: {key} in {self.name}")


AD_FUNCTIONS = ["jvp", "jvpfun", "jvp_jaxpr", "jvp_subtrace", "linearize", "linearize_jaxpr",
                "linearize_subtrace", "backward_pass", "backward_pass3", "closed_backward_pass",
                "vjp", "linear_transpose", "linear_transpose2", "get_primitive_transpose",
                "standard_jvp", "standard_jvp2", "instantiate_zeros"]
AD_TABLES = ["primitive_jvps", "primitive_transposes", "primitive_linearizations",
             "fancy_transposes", "reducing_transposes"]
PUBLIC = ["grad", "value_and_grad", "vjp", "jvp", "linearize", "linear_transpose", "hessian",
          "jacfwd", "jacrev"]
MUST_EXIST = {"jvp", "linearize", "backward_pass", "primitive_jvps", "primitive_transposes"}


@pytest.fixture
def no_jax_ad(monkeypatch):
    """Patch JAX's AD to raise. (The patched names are looked up when called, so a cache
    filled earlier cannot hide a call; ``test_the_patch_is_real`` shows the patch bites.)"""
    present = {n for n in AD_FUNCTIONS + AD_TABLES if hasattr(ad, n)}
    assert MUST_EXIST <= present, f"JAX moved its AD entry points: {MUST_EXIST - present}"
    for name in AD_FUNCTIONS:
        if hasattr(ad, name):
            monkeypatch.setattr(ad, name, forbidden(f"ad.{name}"))
    for name in AD_TABLES:
        if hasattr(ad, name):
            monkeypatch.setattr(ad, name, ForbiddenTable(f"ad.{name}", getattr(ad, name)))
    for name in PUBLIC:
        monkeypatch.setattr(jax, name, forbidden(f"jax.{name}"))
    yield
    jax.clear_caches()


R = rng_for("test_no_jax_ad")
W1 = R.standard_normal((4, 5)) / 2
W2 = R.standard_normal((5, 2)) / 2
X = R.standard_normal((3, 4))
XS = R.standard_normal((6, 4)) / 2


def mlp(w1, x):
    h = jnp.tanh(x @ w1)
    return jnp.sum(jax.nn.log_softmax(h @ W2, axis=-1) ** 2)


def scan_rnn(w1, xs):
    u = jnp.asarray(W2 @ W2.T)

    def step(h, x):
        h = jnp.tanh(x @ w1 + h @ u)
        return h, h.sum()

    h, ys = lax.scan(step, jnp.zeros(5), xs)
    return (h ** 2).sum() + ys.sum()


def cond(w1, x):
    h = x @ w1
    return lax.cond(h.sum() > 0, lambda h: jnp.sin(h).sum(), lambda h: (h ** 2).sum(), h)


def custom_jvp(w1, x):
    h = x @ w1
    return jnp.sum(jax.nn.relu(h) * jax.nn.gelu(h, approximate=False)) + jax.nn.softplus(h).sum()


@jax.custom_vjp
def sin_with_rule(x):  # a correct rule: the engine's primal-body gradient equals jax.grad's
    return jnp.sin(x)


sin_with_rule.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (g * jnp.cos(x),))


@jax.custom_vjp
def clipped(x):  # a rule that is not the body's derivative: only the rule gives jax.grad's value
    return x


clipped.defvjp(lambda x: (x, None), lambda _, g: (jnp.clip(g, -0.1, 0.1),))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def scaled_rule(x, k):  # the same for a custom_jvp: the rule claims k cos(x)
    return jnp.sin(x)


scaled_rule.defjvp(lambda k, p, t: (jnp.sin(p[0]), k * jnp.cos(p[0]) * t[0]))


def custom_vjp(w1, x):
    return (sin_with_rule(x @ w1) ** 2).sum() + (clipped(x @ w1) ** 2).sum()


def custom_jvp_rule_not_body(w1, x):
    return (scaled_rule(x @ w1, 3.0) ** 2).sum() + jax.nn.log_sigmoid(x @ w1).sum()


def jitted(w1, x):
    layer = jax.jit(lambda w, x: jax.nn.sigmoid(x @ w))
    return layer(w1, layer(w1, x) @ W2 @ W2.T @ w1.T).sum()


def remat(w1, x):
    return jax.checkpoint(lambda w: jnp.sin(x @ w) ** 2)(w1).sum()


def custom_root(w1, x):
    """sqrt of each entry of (x @ w1)^2 + 1 by lax.custom_root (a while-loop Newton solve):
    implicit differentiation, JAX >= 0.11's hijax form. (JAX 0.10's custom_root is a
    custom_jvp whose rule itself calls JAX's forward mode, so that version is not listed.)"""
    a = (x @ w1) ** 2 + 1.0

    def solve(f, x0):
        def body(c):
            i, y = c
            return i + 1, 0.5 * (y + a / y)
        return lax.while_loop(lambda c: c[0] < 40, body, (0, x0))[1]

    root = lax.custom_root(lambda y: y * y - a, jnp.ones_like(a), solve,
                           lambda g, y: y / g(jnp.ones_like(y)))
    return jnp.sum(root * jnp.cos(a))


CASES = [  # (name, f, x, also second order?)
    ("mlp", mlp, X, True), ("scan_rnn", scan_rnn, XS, True), ("cond", cond, X, False),
    ("cond_other_branch", cond, -X, False), ("custom_jvp_relu_gelu", custom_jvp, X, True),
    ("custom_vjp", custom_vjp, X, False), ("custom_jvp_rule", custom_jvp_rule_not_body, X, True),
    ("jit", jitted, X, False), ("remat", remat, X, False),
    *([("custom_root", custom_root, X, False)] if jax.__version_info__ >= (0, 11) else []),
]


@pytest.mark.parametrize("f, x, second", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_engine_runs_without_jax_ad(f, x, second, request):
    """Eagerly and under jit (a cond takes another path in each), and the engine over its
    own gradient for a few."""
    want = jax.jit(jax.grad(f, argnums=(0, 1)))(W1, x)  # computed before the patch
    request.getfixturevalue("no_jax_ad")
    assert_trees_close(backprop.grad(f, argnums=(0, 1))(W1, x), want)
    assert_trees_close(jax.jit(backprop.grad(f, argnums=(0, 1)))(W1, x), want)
    if second:
        hvp = jax.jit(backprop.grad(lambda w: jnp.sum(backprop.grad(f)(w, x) * W1)))(W1)
        assert hvp.shape == W1.shape and bool(jnp.isfinite(hvp).all())


def test_the_patch_is_real(no_jax_ad):
    with pytest.raises(JaxADUsed):
        jax.grad(mlp)(W1, X)
    with pytest.raises(JaxADUsed):  # JAX's own grad, past the public names: the ad module
        jax_api.grad(mlp)(W1, X)
    with pytest.raises(JaxADUsed):
        jax_api.jvp(jnp.sin, (1.0,), (1.0,))
    with pytest.raises(JaxADUsed):
        jax_api.vjp(jnp.sin, 1.0)[1](1.0)


# --- and in the source: the engine's code never names them --------------------------------------
FORBIDDEN = [
    r"\bjax\.(grad|value_and_grad|vjp|jvp|linearize|linear_transpose|hessian|jacfwd|jacrev)\b",
    r"\blinearize\b", r"\blinear_transpose\b", r"\binterpreters\.ad\b",
    r"\binterpreters\s+import\s+ad\b", r"\bad_checkpoint\b",
]


ENGINE_FILES = sorted(pathlib.Path(funcnn.backprop.__file__).parent.rglob("*.py"))


@pytest.mark.parametrize("path", ENGINE_FILES, ids=[p.name for p in ENGINE_FILES])
def test_source_never_names_jax_ad(path):
    """Not in code, and not in comments or docstrings either: a mention reads like a use to
    anyone grepping the engine for JAX's differentiation, so the engine says "JAX's autodiff"."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for pattern in FORBIDDEN:
            hit = re.search(pattern, line)
            assert hit is None, f"{path.name}:{number} names {hit.group(0)!r}: {line.strip()}"


def test_source_check_catches_a_use_and_a_mention():
    for text in ("return jax.vjp(f, x)", '"""Like jax.grad."""', "# JAX's linear_transpose",
                 "from jax._src.interpreters import ad"):
        assert any(re.search(p, text) for p in FORBIDDEN), text
    assert not any(re.search(p, "JAX's autodiff gives the same number") for p in FORBIDDEN)
