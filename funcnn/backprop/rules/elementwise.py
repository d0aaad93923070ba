"""VJP rules of elementwise primitives: unary ops by their derivative, binary arithmetic,
selection, and the ops with no derivative.

Conventions at points with no derivative (JAX's, see ``funcnn.backprop.conventions``):
abs'(0) = +1 (JAX >= 0.10: ``select(x >= 0, g, -g)``); sign' = step' = floor' = round' = 0
for real x (complex sign has a derivative, JAX >= 0.12's, see ``_sign``);
max/min at a tie split the cotangent evenly (0.5 each); clamp passes the cotangent to the
operand only strictly inside (lo, hi).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn.backprop.registry import (
    deflinear,
    defnograd,
    defnorule,
    defquotient,
    defunary,
    defvjp,
    is_float,
    like,
    unbroadcast,
)


# --- unary ops, each defined by its derivative d(out)/dx given (x, out) -------------------
# Where 1 - x^2 appears it is written (1 + x)(1 - x): no cancellation near |x| = 1 (JAX >= 0.12
# does the same, its one_minus_square). asinh avoids overflowing x^2 at large |x|.
def one_minus_square(x):
    return (1 + x) * (1 - x)


def tanh_derivative(x, y, accuracy=None):
    # JAX's: with AccuracyMode.HIGHEST, 4 logistic(2x) logistic(-2x), accurate in the tails.
    if accuracy is lax.AccuracyMode.HIGHEST:
        up, down = (lax.logistic(k * x, accuracy=accuracy) for k in (2, -2))
        return 4 * (up * down)
    return one_minus_square(y)


def logistic_derivative(x, y, accuracy=None):
    if accuracy is lax.AccuracyMode.HIGHEST:  # JAX's: y * logistic(-x), accurate for y near 1
        return y * lax.logistic(-x)
    return y * (1 - y)


# JAX < 0.12 takes expm1' = expm1(x) + 1 unless accuracy=HIGHEST (which cancels for x << 0:
# 1.7e-4 relative at x = -30); JAX >= 0.12 always exp(x). The engine gives the running JAX's.
EXPM1_SLOPE_IS_EXP = jax.__version_info__ >= (0, 12)


def expm1_derivative(x, y, accuracy=None):
    if EXPM1_SLOPE_IS_EXP or accuracy is lax.AccuracyMode.HIGHEST:
        return lax.exp(x, accuracy=accuracy)
    return y + 1


# JAX 0.10 takes acosh' = rsqrt(x^2 - 1) (cancels near x = 1; +-inf at x = -1); JAX >= 0.11
# rsqrt(x - 1) rsqrt(x + 1) (NaN at x = -1). The engine gives the running JAX's.
ACOSH_SLOPE_IS_PRODUCT = jax.__version_info__ >= (0, 11)


def acosh_derivative(x, y):
    if ACOSH_SLOPE_IS_PRODUCT:
        return lax.rsqrt(x - 1) * lax.rsqrt(x + 1)
    return lax.rsqrt(x * x - 1)


def asinh_derivative(x, y):
    # 1 / sqrt(x^2 + 1), as 1 / (s sqrt((x/s)^2 + (1/s)^2)) with s = max(|x|, 1): no overflow.
    s = lax.stop_gradient(jnp.maximum(jnp.abs(x), 1))  # real, also for a complex x
    return lax.rsqrt(jnp.square(x / s) + jnp.square(1 / s)) / s


ACCURACY = ("accuracy",)
defunary("exp", lambda x, y: y)
defunary("exp2", lambda x, y: y * math.log(2.0))
defunary("expm1", expm1_derivative, ACCURACY)
defquotient("log", lambda x, y: x)
defquotient("log1p", lambda x, y: 1 + x)
defunary("tanh", tanh_derivative, ACCURACY)
defunary("logistic", logistic_derivative, ACCURACY)
defunary("sqrt", lambda x, y: 0.5 / y)  # sqrt, rsqrt, cbrt: JAX's formulas, op for op
defunary("rsqrt", lambda x, y: -0.5 * (y / x))
defunary("cbrt", lambda x, y: (1 / 3) * lax.integer_pow(y, -2))
defunary("square", lambda x, y: 2 * x)
defunary("sin", lambda x, y, accuracy: lax.cos(x, accuracy=accuracy), ACCURACY)
defunary("cos", lambda x, y, accuracy: -lax.sin(x, accuracy=accuracy), ACCURACY)
defunary("tan", lambda x, y: 1 + y * y)
defunary("asin", lambda x, y: lax.rsqrt(one_minus_square(x)))
defunary("acos", lambda x, y: -lax.rsqrt(one_minus_square(x)))
defquotient("atan", lambda x, y: 1 + x * x)
defunary("sinh", lambda x, y: jnp.cosh(x))
defunary("cosh", lambda x, y: jnp.sinh(x))
defunary("asinh", asinh_derivative)
defunary("acosh", acosh_derivative)
defquotient("atanh", lambda x, y: one_minus_square(x))
defunary("erf", lambda x, y: (2 / math.sqrt(math.pi)) * jnp.exp(-x * x))
defunary("erfc", lambda x, y: (-2 / math.sqrt(math.pi)) * jnp.exp(-x * x))
defunary("erf_inv", lambda x, y: (math.sqrt(math.pi) / 2) * jnp.exp(y * y))
defunary("lgamma", lambda x, y: lax.digamma(x))
defunary("digamma", lambda x, y: lax.polygamma(jnp.ones_like(x), x))
if hasattr(lax, "log2_p"):  # JAX >= 0.12: jnp.log2 is a primitive of its own
    defquotient("log2", lambda x, y: x * math.log(2.0))
if hasattr(lax, "one_minus_square_p"):  # JAX >= 0.12
    defunary("one_minus_square", lambda x, y: -2 * x)

# Piecewise-constant or boolean-valued: derivative zero everywhere it exists. Not nextafter:
# see below.
defnograd("floor", "ceil", "round", "is_finite", "stop_gradient",
          "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "xor",
          "shift_left", "shift_right_logical", "shift_right_arithmetic", "population_count",
          "clz", "iota", "argmax", "argmin", "random_bits", "random_seed", "random_wrap",
          "random_unwrap", "threefry2x32", "rng_bit_generator", "reduce_and", "reduce_or",
          "reduce_xor")


# nextafter(x, y) (jnp.nextafter, jnp.spacing): JAX >= 0.12 differentiates it as the identity
# in x and a constant in y (a step of one ulp); older JAX has no derivative for it, and the
# engine then has no rule either, so it refuses it on an active value (MissingRuleError).
NEXTAFTER_HAS_DERIVATIVE = jax.__version_info__ >= (0, 12)
if NEXTAFTER_HAS_DERIVATIVE:
    @defvjp("nextafter")
    def _nextafter(ct, x, y, *, out, **_):
        return (unbroadcast(ct, np.shape(x)) if is_float(x) else None, None)
else:
    defnorule("nextafter", f"JAX {jax.__version__} has no derivative for nextafter either "
                           "(JAX >= 0.12 takes it as the identity in x).")


@defvjp("abs")
def _abs(ct, x, *, out, **_):
    x = jnp.asarray(x)
    if not jnp.iscomplexobj(x):
        return (jnp.where(x >= 0, ct, -ct),)  # abs'(0) = +1, as JAX
    # JAX's tangent for complex x: re(conj(x) t) / |x| (|x| taken as 1 at 0); transposed under
    # JAX's pairing re(a b) (no conjugation), ct_x = ct conj(x) / |x|.
    safe_abs = jnp.where(out == 0, jnp.ones_like(out), out)
    return (lax.convert_element_type(ct, x.dtype) * (lax.conj(x) / safe_abs.astype(x.dtype)),)


@defvjp("sign")
def _sign(ct, x, *, out, **_):
    x = jnp.asarray(x)
    if not jnp.iscomplexobj(x):
        return (None,)  # piecewise constant
    # sign(x) = s = x / |x|: its tangent is i s im(conj(s) t) / |x| (JAX >= 0.12; 0 at x = 0).
    # Transposed under the pairing re(a b): ct_x = i im(s ct) conj(s) / |x|.
    r = jnp.abs(x)
    safe_r = jnp.where(r == 0, jnp.ones_like(r), r)
    turn = lax.complex(jnp.zeros_like(r), jnp.imag(out * ct))
    return (turn * lax.conj(out) / safe_r.astype(x.dtype),)


@defvjp("neg")
def _neg(ct, x, *, out, **_):
    return (-ct,)


@defvjp("integer_pow")
def _integer_pow(ct, x, *, out, y):
    d = jnp.zeros_like(x) if y == 0 else y * (x if y == 2 else lax.integer_pow(x, y - 1))
    return (ct * d,)


@defvjp("copy", "copy_p", "real")
def _identity(ct, x, *, out, **_):
    return (ct,)


# JAX's: reduce_precision is linear (in the rounding it does) and rounds its cotangent too.
deflinear("reduce_precision", lambda ct, exponent_bits, mantissa_bits: lax.reduce_precision(
    ct, exponent_bits=exponent_bits, mantissa_bits=mantissa_bits))


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
def _mul(ct, x, y, *, out, out_dtype=None, **_):
    if out_dtype is None:
        return both(ct, x, y, ct * y, ct * x)
    # lax.mul(x, y, out_dtype=...) multiplies in out_dtype; its transpose multiplies in each
    # operand's own dtype (JAX's rule).
    return both(ct, x, y, lax.mul(ct, y, out_dtype=jnp.result_type(x)),
                lax.mul(x, ct, out_dtype=jnp.result_type(y)))


@defvjp("div")
def _div(ct, x, y, *, out, **_):
    # JAX's formulas, op for op: d/dy = (-ct x) y^-2. The shorter -(ct / y) out rounds
    # differently where a program cancels (boxcox1p's d/dlambda: 2e-10) and where y^-2
    # underflows (bessel_jn at z = 1e-3), so it would not give JAX's autodiff's number.
    dx = ct / y if is_float(x) else None
    dy = (-ct * x) * lax.integer_pow(jnp.asarray(y), -2) if is_float(y) else None
    return both(ct, x, y, dx, dy)


def balanced_eq(x, z, y):
    """1 where x alone attains z, 0.5 where x and y tie, 0 elsewhere (JAX's tie rule)."""
    one = jnp.ones((), z.dtype)
    return jnp.where(x == z, jnp.where(y == z, 0.5 * one, one), 0 * one)


@defvjp("max", "min")
def _max_min(ct, x, y, *, out, **_):
    return both(ct, x, y, ct * balanced_eq(x, out, y), ct * balanced_eq(y, out, x))


@defvjp("pow")
def _pow(ct, x, y, *, out, **_):
    """d/dx x^y = y x^(y-1); d/dy x^y = log(x) x^y (JAX's: 0 where x = 0).

    As JAX, d/dx is 0 wherever an integer y is 0 (masked, and x replaced there before the
    power, so no inf in the branch not taken: the engine differentiates the rule again
    exactly, d/dy d/dx x^y = x^(y-1) (1 + y log x)). For a float y it is y x^(y-1) everywhere,
    NaN at x = y = 0 (0 * inf) as in JAX.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    dx = dy = None
    if is_float(x):
        y_as_x = lax.convert_element_type(y, x.dtype)
        if is_float(y):
            dx = ct * (y_as_x * jnp.power(x, y_as_x - 1))  # y in x's dtype, as JAX
        else:
            masked = y == 0
            safe_x = jnp.where(masked, jnp.ones_like(x), x)
            power = y_as_x * jnp.power(safe_x, y_as_x - 1)
            dx = ct * jnp.where(masked, jnp.zeros_like(power), power)
    if is_float(y):
        safe_x = jnp.where(x == 0, jnp.ones_like(x), x)
        dy = ct * (jnp.log(safe_x) * out)
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
    # JAX's: lo gets the cotangent where lo > x (and lo < hi), hi where hi < x, x strictly
    # inside (lo, hi).
    if jnp.iscomplexobj(x):
        raise TypeError("funcnn.backprop: clamp of complex operands has no derivative (no "
                        f"order on the complex numbers; JAX raises too); got {jnp.result_type(x)}")
    zeros = jnp.zeros_like(ct)
    d_lo = jnp.where((lo > x) & (lo < hi), ct, zeros) if is_float(lo) else None
    d_x = jnp.where((x > lo) & (x < hi), ct, zeros)
    d_hi = jnp.where(hi < x, ct, zeros) if is_float(hi) else None
    return (None if d_lo is None else unbroadcast(d_lo, jnp.shape(lo)), d_x,
            None if d_hi is None else unbroadcast(d_hi, jnp.shape(hi)))


# --- polynomial (JAX >= 0.12: lax.polynomial, Horner's rule as one primitive) -----------------
if hasattr(lax, "polynomial_p"):
    @defvjp("polynomial")
    def _polynomial(ct, x, *coeffs, out, unroll=None):
        """out = sum_k c_k x^k (``lax.polynomial``'s docstring), all operands broadcast
        together: d out / dx = sum_{k>=1} k c_k x^(k-1), itself a polynomial (so the engine
        differentiates it again); d out / d c_k = x^k."""
        x = jnp.asarray(x)
        ct_x = None
        if is_float(x):
            slope = [k * jnp.asarray(c, x.dtype) for k, c in enumerate(coeffs[1:], 1)]
            ct_x = unbroadcast(ct * lax.polynomial(x, slope, unroll=unroll), np.shape(x))
        ct_coeffs, x_power_ct = [], ct  # ct * x^k
        for k, c in enumerate(coeffs):
            ct_coeffs.append(unbroadcast(x_power_ct, np.shape(c)) if is_float(c) else None)
            if k + 1 < len(coeffs):
                x_power_ct = x_power_ct * x
        return (ct_x, *ct_coeffs)
