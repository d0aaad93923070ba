"""VJP rules of the special functions JAX differentiates that ``elementwise`` does not hold:
bessel_i0e, bessel_i1e, igamma, igammac, polygamma and regularized_incomplete_beta (lgamma,
digamma and erf_inv are in ``elementwise``). Derivatives (DLMF, https://dlmf.nist.gov):

    i0e(x) = e^{-|x|} I0(x):  i0e' = i1e - sign(x) i0e                         (DLMF 10.29.3)
    i1e(x) = e^{-|x|} I1(x):  i1e' = i0e - i1e (sign(x) + 1/x), 1/2 at x = 0   (DLMF 10.29.2)
    P(a, x) = igamma:         dP/dx = x^{a-1} e^{-x} / Gamma(a),  dP/da = igamma_grad_a
    Q(a, x) = igammac = 1 - P (DLMF 8.2.5)
    polygamma(m, x):          d/dx = polygamma(m + 1, x)
    I_x(a, b) = betainc:      dI/dx = x^{a-1} (1 - x)^{b-1} / B(a, b)           (DLMF 8.17.1)

JAX has no derivative of polygamma in m, nor of betainc in a or b: those rules know which
operands are differentiated (``registry.defhigher``) and refuse them as JAX does, never a
silent zero. Each formula is written as JAX's rule writes it (the same tiny-x guard of i1e).
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from funcnn.backprop.engine import bind, where
from funcnn.backprop.registry import defhigher, defvjp, unbroadcast


def to_operand(ct, x):
    """A cotangent for operand x (broadcast literals summed back)."""
    return unbroadcast(ct, jnp.shape(x))


@defvjp("bessel_i0e")
def _bessel_i0e(ct, x, *, out, **_):
    return (ct * (lax.bessel_i1e(x) - jnp.sign(x) * out),)


@defvjp("bessel_i1e")
def _bessel_i1e(ct, x, *, out, **_):
    eps = jnp.finfo(out.dtype).eps
    not_tiny = jnp.abs(x) > eps
    safe_x = jnp.where(not_tiny, x, eps)
    d = lax.bessel_i0e(safe_x) - out * (jnp.sign(safe_x) + 1 / safe_x)
    return (ct * jnp.where(not_tiny, d, 0.5),)


def igamma_dx(a, x):
    return jnp.exp(-x + (a - 1) * jnp.log(x) - lax.lgamma(a))


@defvjp("igamma")
def _igamma(ct, a, x, *, out, **_):
    return (to_operand(ct * lax.igamma_grad_a(a, x), a), to_operand(ct * igamma_dx(a, x), x))


@defvjp("igammac")
def _igammac(ct, a, x, *, out, **_):
    return (to_operand(-ct * lax.igamma_grad_a(a, x), a),
            to_operand(-ct * igamma_dx(a, x), x))


def defpartial(name: str, rule, refused: dict[int, str]) -> None:
    """Register ``rule`` for an op differentiable in some operands only: with any operand in
    ``refused`` (position -> name) differentiated, the forward pass raises, as JAX does."""

    def forward(eqn, invals, active):
        bad = [refused[i] for i, a in enumerate(active) if a and i in refused]
        if bad:
            raise NotImplementedError(
                f"{name} has no derivative with respect to {', '.join(bad)} (JAX defines none "
                f"either), at {where(eqn)}; wrap that operand in lax.stop_gradient if it is "
                "a constant.")
        outs = bind(eqn, invals)
        return outs, outs[0]

    def backward(eqn, out, invals, cts, active):
        return list(rule(cts[0], *invals, out=out, **eqn.params))

    defhigher(name, forward=forward, backward=backward)


def _polygamma(ct, m, x, *, out, **_):
    return (None, to_operand(ct * lax.polygamma(m + 1, x), x))


def _betainc(ct, a, b, x, *, out, **_):
    log_beta = lax.lgamma(a) + lax.lgamma(b) - lax.lgamma(a + b)
    dx = jnp.exp((b - 1) * jnp.log1p(-x) + (a - 1) * jnp.log(x) - log_beta)
    return (None, None, to_operand(ct * dx, x))


defpartial("polygamma", _polygamma, {0: "m"})
defpartial("regularized_incomplete_beta", _betainc, {0: "a", 1: "b"})
