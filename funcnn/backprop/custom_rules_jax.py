"""Where the engine reaches a program's own derivative rules inside JAX: the one module that
touches the internals of ``custom_jvp_call`` and ``custom_vjp_call`` equations.

A ``jax.custom_jvp`` or ``jax.custom_vjp`` function is staged as one equation whose params
hold the user's rule. This module reads them and nothing else of JAX's differentiation: it
traces the user's JVP rule to a jaxpr (tracing, as ``jax.make_jaxpr`` does) and calls the
user's ``fwd`` and ``bwd``. The engine then transposes the JVP jaxpr with its own reverse mode
(``rules/custom.py``).

The params, on the JAX versions CI runs (0.10, 0.11, 0.12):

- ``custom_jvp_call``: ``call_jaxpr`` (the primal body over consts + args), ``num_consts``,
  ``symbolic_zeros``, ``jvp_jaxpr_fun`` with ``call_wrapped(*in_zeros) -> (jaxpr, consts,
  out_zeros)``: the rule as a jaxpr over ``(*primals, *nonzero tangents)`` returning
  ``(*primal outs, *nonzero tangent outs)``; the equation's consts carry no tangent. The rule's
  own constants are its constvars on 0.10 and its leading inputs from 0.11 on.
- ``custom_vjp_call``: ``fwd_jaxpr_thunk``, ``bwd``, ``out_trees``, ``num_consts``,
  ``symbolic_zeros``; ``get_bind_params`` lifts them to ``fwd(x0, nz0, x1, nz1, ...) ->
  (*residuals not forwarded, *primal outs)`` and ``bwd(*residuals, *cts) -> one cotangent per
  input`` (``Zero`` objects for zeros), and ``out_trees() -> (out_tree, res_tree,
  input_forwards)`` says which residuals are inputs passed through.

Two differences between version families: from 0.11 on, ``bwd`` returns ``(cotangents,
logs)`` (``custom_vjp.defvjp_with_logs``; :data:`FAMILY`), and a JVP rule's constants are its
leading inputs (:func:`jvp_rule` reads which from the jaxpr's arity).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np
from jax._src import ad_util
from jax.custom_derivatives import SymbolicZero

from funcnn.backprop.sharding_jax import zeros


class JvpRule(NamedTuple):
    """A custom JVP rule as a jaxpr: ``jaxpr(*leading, *primals, *tangents)`` over ``consts``
    gives ``(*primal outs, *tangent outs)``; ``leading`` are constants the jaxpr takes as its
    first inputs (no tangent); ``tangent_in[i]`` says whether input i has a tangent in the
    jaxpr, ``tangent_out[j]`` whether output j does (the others are symbolic zeros)."""

    jaxpr: object
    consts: list
    leading: list
    tangent_in: list
    tangent_out: list


def bwd_cotangents_010(out):
    return out


def bwd_cotangents_011(out):  # (cotangents, logs): logs are the rule's own side output
    cts, _logs = out
    return cts


FAMILY = {"0.10": bwd_cotangents_010, "0.11+": bwd_cotangents_011}
BWD_COTANGENTS = FAMILY["0.10" if jax.__version_info__ < (0, 11) else "0.11+"]


def num_consts(eqn) -> int:
    """How many leading inputs are the body's closed-over constants (no tangent of their own)."""
    return eqn.params["num_consts"]


def symbolic_zeros(eqn) -> bool:
    return bool(eqn.params["symbolic_zeros"])


def jvp_rule(eqn, nonzero: Sequence[bool]) -> JvpRule:
    """The JVP rule of a ``custom_jvp_call`` for tangents ``nonzero`` (one flag per input after
    the consts). Without ``symbolic_zeros`` JAX hands the rule dense zeros for the inputs
    that carry no tangent, so every input gets one; with it, the rule sees ``SymbolicZero``s."""
    in_nonzero = list(nonzero) if symbolic_zeros(eqn) else [True] * len(nonzero)
    jaxpr, consts, out_zeros = eqn.params["jvp_jaxpr_fun"].call_wrapped(
        *[not nz for nz in in_nonzero])
    consts = list(consts)
    # 0.10 binds every constant to a constvar; 0.11+ gives constants the jaxpr takes as its
    # leading inputs (no constvars): the inputs beyond primals and tangents are those.
    n_leading = len(jaxpr.invars) - len(nonzero) - sum(in_nonzero)
    n_constvars = len(jaxpr.constvars)
    if n_leading < 0 or n_constvars + n_leading != len(consts):
        raise AssertionError(f"custom_jvp rule of {len(jaxpr.invars)} inputs and "
                             f"{len(consts)} constants for {len(nonzero)} primals")
    return JvpRule(jaxpr, consts[:n_constvars], consts[n_constvars:], in_nonzero,
                   [not z for z in out_zeros])


def vjp_fwd(eqn, invals: Sequence, nonzero: Sequence[bool]):
    """Run the user's ``fwd`` on all inputs (consts first): ``(primal outs, residuals)``, the
    residuals flat, with the inputs that ``fwd`` passed through put back in place."""
    fwd = eqn.primitive.get_bind_params(eqn.params)["subfuns"][1]
    interleaved = [x for pair in zip(invals, nonzero, strict=True) for x in pair]
    res_and_outs = fwd.call_wrapped(*interleaved)
    _, res_tree, input_forwards = eqn.params["out_trees"]()
    n_computed = res_tree.num_leaves - sum(f is not None for f in input_forwards)
    computed = iter(res_and_outs[:n_computed])
    residuals = [next(computed) if f is None else invals[f] for f in input_forwards]
    return list(res_and_outs[n_computed:]), residuals


def vjp_bwd(eqn, residuals: Sequence, cts: Sequence) -> list:
    """Call the user's ``bwd`` on the residuals and one cotangent per output (``None`` for a
    zero one, handed over as a ``SymbolicZero`` or as dense zeros, as JAX does). Returns one
    cotangent per input, consts first, ``None`` where the rule gives none."""
    bwd = eqn.primitive.get_bind_params(eqn.params)["subfuns"][2]
    symbolic = symbolic_zeros(eqn)
    dense = []
    for ct, v in zip(cts, eqn.outvars, strict=True):
        if ct is not None:
            dense.append(ct)
        else:
            dense.append(SymbolicZero(v.aval.to_tangent_aval()) if symbolic
                         else zeros_for(v.aval))
    out = BWD_COTANGENTS(bwd.call_wrapped(*residuals, *dense))
    return [None if is_zero(c) else c for c in out]


def is_zero(ct) -> bool:
    """A cotangent the rule left out: ``None``, JAX's ``Zero``/``SymbolicZero``, or float0."""
    if ct is None or isinstance(ct, ad_util.Zero | SymbolicZero):
        return True
    return getattr(ct, "dtype", None) == jax.dtypes.float0


def zeros_for(aval):
    """A dense tangent of zeros for ``aval`` (float0 for an integer input, as JAX's; inside a
    shard_map, varying along the primal's manual axes)."""
    tangent = aval.to_tangent_aval()
    if tangent.dtype == jax.dtypes.float0:
        return np.zeros(tangent.shape, jax.dtypes.float0)
    return zeros(tangent)


# --- linear_call: a linear function with a user-given transpose ------------------------------
def linear_call_counts(eqn) -> tuple[int, int]:
    """``(callee consts, residuals)``: the inputs before the linear ones."""
    return eqn.params["num_callee_consts"], eqn.params["num_res"]


def bind_transpose(eqn, invals: Sequence, cts: Sequence) -> list:
    """Apply the user's transpose to ``cts`` (dense) as a ``linear_call`` of its own whose
    declared transpose is the original function, as JAX's transpose of a linear_call does:
    differentiating the backward pass again then uses the pair as declared. ``callee`` and
    the thunk's jaxpr have one form on each version (ClosedJaxpr on 0.10, Jaxpr from 0.11),
    so they pass through as given."""
    n_consts, n_res = linear_call_counts(eqn)
    transpose, t_consts = eqn.params["transpose_thunk"]()
    callee, f_consts = eqn.params["callee"], list(invals[:n_consts])
    residuals = list(invals[n_consts:n_consts + n_res])
    return list(eqn.primitive.bind(*t_consts, *residuals, *cts, callee=transpose,
                                   transpose_thunk=lambda: (callee, f_consts),
                                   num_callee_consts=len(t_consts), num_res=n_res))
