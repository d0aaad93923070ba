"""The rules of issue #12 never use JAX's differentiation: with JAX's JVP/transpose machinery
patched to raise (as in test_no_jax_ad.py), the engine still differentiates a program of each
new family and gives the gradient jax.grad computed before the patch."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.ad_checkpoint import checkpoint_name

from funcnn import backprop
from tests.backprop.sampling import rng_for
from tests.backprop.test_no_jax_ad import JaxADUsed, no_jax_ad  # noqa: F401 (the fixture)

R = rng_for("rules-no-jax-ad")
A = R.standard_normal((4, 4))
SPD = A @ A.T + 4 * np.eye(4)
Z = R.standard_normal((3, 4)) + 1j * R.standard_normal((3, 4))


def symmetric_solve(s, b):
    return lax.custom_linear_solve(lambda x: s @ x, b, symmetric=True,
                                   solve=lambda _, y: jax.scipy.linalg.cho_solve(
                                       (jnp.linalg.cholesky(s), True), y))


def linalg(a):
    """(jnp.linalg.solve, inv, det and expm trace through lax.custom_linear_solve with a
    transpose solve, which JAX builds with jax.linear_transpose while tracing: JAX's library
    code, not the engine, so the symmetric form stands in for them here.)"""
    s = a @ a.T + 4 * jnp.eye(4)
    l = jnp.linalg.cholesky(s)
    x = symmetric_solve(s, l[:, 0])
    q, r = jnp.linalg.qr(a)
    return (lax.linalg.lu(a)[0].sum() + x.sum() + (q * r).sum()
            + jnp.linalg.eigvalsh(a + a.T).sum() + jnp.linalg.svd(a, compute_uv=False).sum()
            + jnp.linalg.eigvals(a).real.sum()
            + lax.linalg.triangular_solve(l, a, left_side=True, lower=True).sum()
            + lax.linalg.tridiagonal_solve(a[0], a[1] + 4, a[2], a).sum())


def complex_fft(x):
    z = lax.complex(x, jnp.sin(x))
    spectrum = jnp.fft.rfft(x) * jnp.fft.fft(z)[..., :3]
    return (jnp.fft.irfft(spectrum, n=4).sum() + jnp.abs(jnp.fft.ifft2(z * jnp.conj(z))).sum()
            + lax.imag(z * z).sum())


def everything_else(x, composite=True):
    """(The plain elementwise special-function rules are left out: they call no library
    code; the ones here run engine machinery or library code inside their rule.)"""
    pair = lax.reduce((x, x * x), (0.0, 1.0), lambda a, b: (a[0] + b[0], a[1] * b[1]), (0,))
    return (lax.top_k(x, 2)[0].sum() + pair[0].sum() + pair[1].sum()
            + lax.polygamma(1.0, 1.0 + x * x).sum() + lax.cummax(x, axis=1).sum()
            + checkpoint_name(jnp.tanh(x), "h").sum()
            + (lax.composite(lambda v: v * jnp.exp(v), "my.op")(x).sum() if composite else 0.0))


CASES = [("linalg", linalg, A), ("complex_fft", complex_fft, R.standard_normal((3, 4))),
         ("everything_else", everything_else, R.standard_normal((3, 4)))]


@pytest.mark.parametrize("f, x", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_new_rules_run_without_jax_ad(f, x, request):
    if f is everything_else:  # JAX refuses lax.composite: d/dx x e^x = (1 + x) e^x by hand
        want = jax.jit(jax.grad(lambda x: everything_else(x, composite=False)))(x)
        want = want + (1 + x) * np.exp(x)
    else:
        want = jax.jit(jax.grad(f))(x)
    request.getfixturevalue("no_jax_ad")  # JAX's AD raises from here on
    with pytest.raises(JaxADUsed):
        jax.grad(f)(x)
    got = jax.jit(backprop.grad(f))(x)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("f, x", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_new_rules_eagerly(f, x):
    """The same programs op by op (the rules see concrete arrays, not tracers)."""
    got = backprop.grad(f)(x)
    if f is everything_else:
        want = jax.jit(jax.grad(lambda x: everything_else(x, composite=False)))(x)
        want = want + (1 + x) * np.exp(x)
    else:
        want = jax.jit(jax.grad(f))(x)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)
