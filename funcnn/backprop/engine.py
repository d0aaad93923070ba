"""The notes' algorithm over a jaxpr: a forward pass that keeps every node's value, and a
backward pass that visits the nodes in reverse and accumulates each adjoint

    dL/dv_i = sum over children j of dL/dv_j * dv_j/dv_i

with one hand-written vector-Jacobian rule per primitive (``registry.VJP_RULES``).
No recursion over the graph: both passes are loops over ``jaxpr.eqns``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax.numpy as jnp
from jax import lax
from jax.extend import core as jcore
from jax.extend import source_info_util

from funcnn.backprop.registry import HIGHER_RULES, NO_RULE_BECAUSE, VJP_RULES, is_float

Literal = jcore.Literal
Var = jcore.Var


class MissingRuleError(NotImplementedError):
    """A primitive the engine has no VJP rule for (never a silent zero)."""


class Tape(NamedTuple):
    """What the forward pass kept: ``values`` in the order of :func:`recorded_vars`, and one
    residual per equation (``None`` for a plain primitive). A pytree of arrays."""

    values: tuple
    subs: tuple


def recorded_vars(jaxpr) -> list:
    """The variables whose values a tape keeps: constvars, invars, then every eqn output."""
    out = list(jaxpr.constvars) + list(jaxpr.invars)
    for eqn in jaxpr.eqns:
        out.extend(v for v in eqn.outvars if not isinstance(v, jcore.DropVar))
    return out


def read(env: dict, v) -> Any:
    return v.val if isinstance(v, Literal) else env[v]


def is_active_var(v, active: set) -> bool:
    return isinstance(v, Var) and not isinstance(v, jcore.DropVar) and v in active


ENCLOSING: list = []  # the higher-order equations being run, outermost first


def where(eqn) -> str:
    """The user's source line that produced ``eqn``, for error messages. An equation inside
    a library function (``jnp.take_along_axis`` is itself a jit) has no user frame of its own:
    then the nearest enclosing equation's line is given."""
    for e in [eqn, *reversed(ENCLOSING)]:
        text = source_info_util.summarize(e.source_info)
        if text:
            return text
    return "<unknown location>"


def run_higher(fn, eqn, *args):
    """Call a higher-order rule with ``eqn`` on the stack of enclosing equations."""
    ENCLOSING.append(eqn)
    try:
        return fn(eqn, *args)
    finally:
        ENCLOSING.pop()


def missing_rule(eqn) -> MissingRuleError:
    name = eqn.primitive.name
    hint = f" {NO_RULE_BECAUSE[name]}" if name in NO_RULE_BECAUSE else ""
    return MissingRuleError(
        f"funcnn.backprop has no VJP rule for primitive '{name}', produced at {where(eqn)}."
        f"{hint} Register one with funcnn.backprop.registry.defvjp('{name}').")


def bind(eqn, invals: Sequence) -> list:
    """Evaluate one equation on its input values; always returns a list of outputs."""
    params = eqn.primitive.get_bind_params(eqn.params)
    subfuns = ()
    if isinstance(params, tuple):  # older JAX: (subfuns, params)
        subfuns, params = params
    with source_info_util.user_context(eqn.source_info.traceback), eqn.ctx.manager:
        out = eqn.primitive.bind(*subfuns, *invals, **params)
    return list(out) if eqn.primitive.multiple_results else [out]


def forward(jaxpr, consts: Sequence, args: Sequence, active_in: Sequence[bool]):
    """Run ``jaxpr`` on ``args``, keeping every value. Returns ``(outs, tape)``.

    ``active_in[i]`` says whether ``args[i]`` is differentiated; higher-order equations with an
    active input keep the residuals their backward needs (``registry.defhigher``).
    """
    env: dict = {}
    active: set = set()
    env.update(zip(jaxpr.constvars, consts, strict=True))
    for v, x, a in zip(jaxpr.invars, args, active_in, strict=True):
        env[v] = x
        if a and is_float(v.aval):
            active.add(v)
    subs = []
    for eqn in jaxpr.eqns:
        invals = [read(env, v) for v in eqn.invars]
        eqn_active = [is_active_var(v, active) for v in eqn.invars]
        res = None
        higher = HIGHER_RULES.get(eqn.primitive.name)
        if higher is not None and any(eqn_active):
            outvals, res = run_higher(higher.forward, eqn, invals, eqn_active)
        else:
            outvals = bind(eqn, invals)
        for v, x in zip(eqn.outvars, outvals, strict=True):
            if isinstance(v, jcore.DropVar):
                continue
            env[v] = x
            if any(eqn_active) and is_float(v.aval):
                active.add(v)
        subs.append(res)
    outs = [read(env, v) for v in jaxpr.outvars]
    values = tuple(env[v] for v in recorded_vars(jaxpr))
    return outs, Tape(values, tuple(subs))


def activity(jaxpr, active_in: Sequence[bool]) -> set:
    """The variables that depend on an active input and carry a derivative."""
    active = {v for v, a in zip(jaxpr.invars, active_in, strict=True)
              if a and is_float(v.aval)}
    for eqn in jaxpr.eqns:
        if any(is_active_var(v, active) for v in eqn.invars):
            active.update(v for v in eqn.outvars
                          if not isinstance(v, jcore.DropVar) and is_float(v.aval))
    return active


def accumulate(adjoints: dict, v, ct, eqn=None) -> None:
    """adjoint[v] += ct, checking the rule kept the primal's shape and dtype."""
    aval = v.aval
    if tuple(ct.shape) != tuple(aval.shape):
        origin = f"the rule of '{eqn.primitive.name}' at {where(eqn)}" if eqn else "an output"
        raise AssertionError(f"{origin} returned a cotangent of shape {ct.shape} for an input "
                             f"of shape {aval.shape}")
    if ct.dtype != aval.dtype:
        if jnp.iscomplexobj(ct) and not jnp.issubdtype(aval.dtype, jnp.complexfloating):
            ct = lax.real(ct)  # a real primal's cotangent is the real part (no warning cast)
        ct = lax.convert_element_type(ct, aval.dtype)
    prev = adjoints.get(v)
    adjoints[v] = ct if prev is None else lax.add(prev, ct)


def backward(jaxpr, tape: Tape, cts_out: Sequence, active_in: Sequence[bool],
             record: Callable | None = None) -> list:
    """Walk ``jaxpr`` in reverse; return one cotangent per invar (``None`` for zero).

    ``cts_out`` has one entry per output (``None`` for zero). ``record(eqn, cts)``, when given,
    sees each equation's output adjoints as they are final (used by ``graph``).
    """
    env = dict(zip(recorded_vars(jaxpr), tape.values, strict=True))
    active = activity(jaxpr, active_in)
    adjoints: dict = {}
    for v, ct in zip(jaxpr.outvars, cts_out, strict=True):
        if ct is not None and is_active_var(v, active):
            accumulate(adjoints, v, jnp.asarray(ct))
    for eqn, res in zip(reversed(jaxpr.eqns), reversed(tape.subs), strict=True):
        eqn_active = [is_active_var(v, active) for v in eqn.invars]
        if not any(eqn_active):
            continue
        cts = [adjoints.pop(v, None) if isinstance(v, Var) else None for v in eqn.outvars]
        if record is not None:
            record(eqn, cts)
        if all(ct is None for ct in cts):
            continue
        invals = [read(env, v) for v in eqn.invars]
        name = eqn.primitive.name
        higher = HIGHER_RULES.get(name)
        if higher is not None:
            ct_in = run_higher(higher.backward, eqn, res, invals, cts, eqn_active)
        else:
            rule = VJP_RULES.get(name)
            if rule is None:
                raise missing_rule(eqn)
            outs = [env.get(v) for v in eqn.outvars]
            if eqn.primitive.multiple_results:
                ct_in = rule(cts, *invals, out=outs, **eqn.params)
            else:
                ct_in = rule(cts[0], *invals, out=outs[0], **eqn.params)
        for v, a, ct in zip(eqn.invars, eqn_active, ct_in, strict=True):
            if a and ct is not None:
                accumulate(adjoints, v, ct, eqn)
    return [adjoints.get(v) if is_active_var(v, active) else None for v in jaxpr.invars]

