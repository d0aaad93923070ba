"""VJP rules of elementwise primitives: unary ops by their derivative, binary arithmetic,
selection, and the ops with no derivative.

Conventions at points with no derivative (JAX's, see ``funcnn.backprop.conventions``):
abs'(0) = +1 (JAX >= 0.10: ``select(x >= 0, g, -g)``); sign' = step' = floor' = round' = 0;
max/min at a tie split the cotangent evenly (0.5 each); clamp passes the cotangent to the
operand only strictly inside (lo, hi).
"""
from __future__ import annotations

import math

import jax.numpy as jnp
from jax import lax

from funcnn.backprop.registry import (
    defnograd,
    defquotient,
    defunary,
    defvjp,
    is_float,
    like,
    unbroadcast,
)

# --- unary ops, each defined by its derivative d(out)/dx given (x, out) -------------------
defunary("exp", lambda x, y: y)
defunary("exp2", lambda x, y: y * math.log(2.0))
defunary("expm1", lambda x, y: y + 1)
defquotient("log", lambda x, y: x)
defquotient("log1p", lambda x, y: 1 + x)
defunary("tanh", lambda x, y: 1 - y * y)
defunary("logistic", lambda x, y: y * (1 - y))
defquotient("sqrt", lambda x, y: 2 * y)
defunary("rsqrt", lambda x, y: -0.5 * y / x)
defquotient("cbrt", lambda x, y: 3 * y * y)
defunary("square", lambda x, y: 2 * x)
defunary("abs", lambda x, y: jnp.where(x >= 0, 1.0, -1.0))  # abs'(0) = +1, as JAX
defunary("sin", lambda x, y: jnp.cos(x))
defunary("cos", lambda x, y: -jnp.sin(x))
defunary("tan", lambda x, y: 1 + y * y)
defunary("asin", lambda x, y: lax.rsqrt(1 - x * x))
defunary("acos", lambda x, y: -lax.rsqrt(1 - x * x))
defquotient("atan", lambda x, y: 1 + x * x)
defunary("sinh", lambda x, y: jnp.cosh(x))
defunary("cosh", lambda x, y: jnp.sinh(x))
defunary("asinh", lambda x, y: lax.rsqrt(x * x + 1))
defunary("acosh", lambda x, y: lax.rsqrt((x - 1) * (x + 1)))
defquotient("atanh", lambda x, y: 1 - x * x)
defunary("erf", lambda x, y: (2 / math.sqrt(math.pi)) * jnp.exp(-x * x))
defunary("erfc", lambda x, y: (-2 / math.sqrt(math.pi)) * jnp.exp(-x * x))
defunary("erf_inv", lambda x, y: (math.sqrt(math.pi) / 2) * jnp.exp(y * y))
defunary("lgamma", lambda x, y: lax.digamma(x))
defunary("digamma", lambda x, y: lax.polygamma(jnp.ones((), x.dtype), x))

# Piecewise-constant or boolean-valued: derivative zero everywhere it exists.
defnograd("sign", "floor", "ceil", "round", "is_finite", "nextafter", "stop_gradient",
          "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "xor",
          "shift_left", "shift_right_logical", "shift_right_arithmetic", "population_count",
          "clz", "iota", "argmax", "argmin", "random_bits", "random_seed", "random_wrap",
          "random_unwrap", "threefry2x32", "rng_bit_generator", "reduce_and", "reduce_or",
          "reduce_xor")


@defvjp("neg")
def _neg(ct, x, *, out, **_):
    return (-ct,)


@defvjp("integer_pow")
def _integer_pow(ct, x, *, out, y):
    d = jnp.zeros_like(x) if y == 0 else y * (x if y == 2 else lax.integer_pow(x, y - 1))
    return (ct * d,)


@defvjp("copy", "copy_p", "reduce_precision", "real")
def _identity(ct, x, *, out, **_):
    return (ct,)


@defvjp("convert_element_type")
def _convert(ct, x, *, out, **_):
    return (like(ct, x) if is_float(x) else None,)


@defvjp("optimization_barrier")
def _barrier(cts, *xs, out, **_):
    return [None if c is None else c for c in cts]


# --- binary arithmetic: one ``unbroadcast`` undoes a rank-0 operand's broadcast -----------
def both(ct, x, y, dx, dy):
    return (unbroadcast(dx, jnp.shape(x)) if dx is not None else None,
            unbroadcast(dy, jnp.shape(y)) if dy is not None else None)


@defvjp("add", "add_any")
def _add(ct, x, y, *, out, **_):
    return both(ct, x, y, ct, ct)


@defvjp("sub")
def _sub(ct, x, y, *, out, **_):
    return both(ct, x, y, ct, -ct)


@defvjp("mul")
def _mul(ct, x, y, *, out, **_):
    return both(ct, x, y, ct * y, ct * x)


@defvjp("div")
def _div(ct, x, y, *, out, **_):
    dx = ct / y
    return both(ct, x, y, dx, -dx * out)


def balanced_eq(x, z, y):
    """1 where x alone attains z, 0.5 where x and y tie, 0 elsewhere (JAX's tie rule)."""
    one = jnp.ones((), z.dtype)
    return jnp.where(x == z, jnp.where(y == z, 0.5 * one, one), 0 * one)


@defvjp("max", "min")
def _max_min(ct, x, y, *, out, **_):
    return both(ct, x, y, ct * balanced_eq(x, out, y), ct * balanced_eq(y, out, x))


@defvjp("pow")
def _pow(ct, x, y, *, out, **_):
    # d/dx x^y = y x^(y-1) (0 where y == 0); d/dy x^y = log(x) x^y (0 where x == 0)
    dx = ct * jnp.where(y == 0, 0, y * jnp.power(x, y - 1)) if is_float(x) else None
    safe_x = jnp.where(x == 0, jnp.ones_like(x), x)
    dy = ct * out * jnp.log(safe_x) if is_float(y) else None
    return both(ct, x, y, dx, dy)


@defvjp("atan2")
def _atan2(ct, x, y, *, out, **_):
    denom = x * x + y * y
    return both(ct, x, y, ct * y / denom, -ct * x / denom)


@defvjp("rem")
def _rem(ct, x, y, *, out, **_):
    q = x / y
    return both(ct, x, y, ct, -ct * jnp.sign(q) * jnp.floor(jnp.abs(q)))


# --- selection ------------------------------------------------------------------------------
@defvjp("select_n")
def _select_n(ct, which, *cases, out, **_):
    zeros = jnp.zeros_like(ct)
    return (None, *(lax.select_n(which, *[ct if j == i else zeros for j in range(len(cases))])
                     for i in range(len(cases))))


@defvjp("clamp")
def _clamp(ct, lo, x, hi, *, out, **_):
    zeros = jnp.zeros_like(ct)
    d_lo = jnp.where(lo > x, ct, zeros) if is_float(lo) else None
    d_x = jnp.where((x > lo) & (x < hi), ct, zeros)
    d_hi = jnp.where(hi < x, ct, zeros) if is_float(hi) else None
    return (None if d_lo is None else unbroadcast(d_lo, jnp.shape(lo)), d_x,
            None if d_hi is None else unbroadcast(d_hi, jnp.shape(hi)))

