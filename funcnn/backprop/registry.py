"""The table of vector-Jacobian rules, keyed by primitive name, and the helpers for families.

A rule is one small function registered right under the primitive's family:

    @defvjp("sin")
    def _sin(ct, x, *, out, **params):
        return (ct * jnp.cos(x),)

It takes the output cotangent ``ct`` (for a primitive with several results, a list whose
entries may be ``None`` for "zero"), the primal inputs (arrays, or Python/NumPy scalars for
literals), the primal output(s) as ``out``, and the primitive's params as keywords. It returns
one cotangent per input, ``None`` for an input with no cotangent (integer operands, indices,
or a zero). Cotangents have the shape and dtype of their primal.

Higher-order primitives (jit, scan, cond, custom_jvp_call, ...) keep residuals of their own
and register a forward/backward pair with :func:`defhigher` instead.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax

VJP_RULES: dict[str, Callable] = {}
HIGHER_RULES: dict[str, Higher] = {}
NO_RULE_BECAUSE: dict[str, str] = {}  # why a primitive has no rule, for its error message


class Higher(NamedTuple):
    """Forward/backward pair for a primitive that holds a sub-program.

    ``forward(eqn, invals, active) -> (outvals, residual)``: ``active[i]`` says whether input
    i carries a derivative; ``residual`` is a pytree of arrays (so a scan can stack it).
    ``backward(eqn, residual, invals, cts, active) -> list of input cotangents``: ``cts`` has
    one entry per output, ``None`` for a zero cotangent.
    """

    forward: Callable
    backward: Callable


def defvjp(*names: str):
    """Register the decorated function as the VJP rule of each primitive in ``names``."""

    def register(rule):
        for name in names:
            VJP_RULES[name] = rule
        return rule

    return register


def defnorule(name: str, because: str) -> None:
    """Say why primitive ``name`` has no rule (JAX cannot differentiate it either, ...): the
    engine's error on it then tells the user."""
    NO_RULE_BECAUSE[name] = because


def defhigher(*names: str, forward: Callable, backward: Callable) -> None:
    """Register a forward/backward pair for higher-order primitives ``names``."""
    for name in names:
        HIGHER_RULES[name] = Higher(forward, backward)


def as_dtype_of(d, ct):
    """``d`` (an array, or a Python or NumPy scalar: a literal's value, or a derivative that
    came out constant) as an array of ``ct``'s dtype."""
    return lax.convert_element_type(d, ct.dtype)


def defunary(name: str, derivative: Callable, params: tuple[str, ...] = ()) -> None:
    """An elementwise unary op given by its derivative ``derivative(x, out) -> dy/dx``.

    ``x`` reaches ``derivative`` as an array (a Python scalar literal too); ``params`` names
    the primitive's params it takes as keywords (``accuracy``, where JAX's own derivative
    depends on it); the others do not change the derivative. For a complex ``x`` the rule is
    ``ct * dy/dx`` without conjugation: JAX's convention for holomorphic functions.
    """

    def rule(ct, x, *, out, **given):
        d = derivative(jnp.asarray(x), out, **{k: given.get(k) for k in params})
        return (ct * as_dtype_of(d, ct),)

    rule.__name__ = f"vjp_{name}"
    rule.family = "unary"
    VJP_RULES[name] = rule


def defquotient(name: str, denominator: Callable, params: tuple[str, ...] = ()) -> None:
    """An elementwise unary op whose derivative is 1 / ``denominator(x, out)``: the rule
    divides (one fused op) instead of multiplying by a reciprocal computed apart. ``x`` and
    ``params`` as in :func:`defunary`."""

    def rule(ct, x, *, out, **given):
        d = denominator(jnp.asarray(x), out, **{k: given.get(k) for k in params})
        return (ct / as_dtype_of(d, ct),)

    rule.__name__ = f"vjp_{name}"
    rule.family = "unary"
    VJP_RULES[name] = rule


def defnograd(*names: str) -> None:
    """Ops whose outputs carry no derivative: comparisons, integer ops, argmax, iota, ...
    (none of their params can change that)."""

    def rule(ct, *primals, out, **_):
        return (None,) * len(primals)

    rule.family = "nograd"
    for name in names:
        VJP_RULES[name] = rule


def deflinear(name: str, transpose: Callable) -> None:
    """A unary op linear in its input: the rule is ``transpose(ct, **params)``."""

    def rule(ct, x, *, out, **params):
        return (transpose(ct, **params),)

    rule.__name__ = f"vjp_{name}"
    rule.family = "linear"
    VJP_RULES[name] = rule


def unbroadcast(ct, shape) -> jnp.ndarray:
    """Sum ``ct`` down to ``shape``: undo the implicit broadcast of a rank-0 or size-1 operand.

    Jaxprs broadcast only rank-0 literals implicitly, but the rule is written in general:
    leading extra axes are summed away, then every axis where ``shape`` has 1 and ``ct`` not.
    """
    shape = tuple(np.shape(shape) if not isinstance(shape, tuple) else shape)
    if ct.shape == shape:
        return ct
    lead = ct.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and ct.shape[lead + i] != 1
    )
    summed = ct.sum(axis=axes) if axes else ct
    return summed.reshape(shape)


def is_float(x) -> bool:
    """Whether values like ``x`` carry a derivative (inexact dtypes only)."""
    return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def like(ct, x):
    """Cast a cotangent to the primal's dtype (rules compute in the ct's dtype). A complex
    cotangent of a real primal keeps its real part (JAX's transpose of a real-to-complex
    cast), taken explicitly rather than by a cast that warns."""
    dtype = jnp.result_type(x)
    if ct.dtype == dtype:
        return ct
    if jnp.iscomplexobj(ct) and not jnp.issubdtype(dtype, jnp.complexfloating):
        ct = lax.real(ct)
    return lax.convert_element_type(ct, dtype)
