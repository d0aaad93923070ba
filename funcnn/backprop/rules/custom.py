"""A program's own derivative rules: ``jax.custom_jvp`` and ``jax.custom_vjp`` functions are
differentiated by the rule they declare, as JAX's reverse mode does, never through their
primal body (``jax.nn.relu'(0) = 0`` is relu's rule; a gradient-clipping ``bwd`` clips).

- ``custom_vjp_call``: the forward pass runs the user's ``fwd`` and keeps its residuals; the
  backward pass calls the user's ``bwd`` with the output cotangents.
- ``custom_jvp_call``: the user's JVP rule, traced to a jaxpr, maps ``(primals, tangents)`` to
  ``(primal outs, tangent outs)`` and is linear in the tangents. The forward pass runs it with
  the engine (tangents zero, only they active), so the primal outputs are the rule's, as in
  JAX. The backward pass is the engine's own VJP of the tangent outputs with respect to the
  tangent inputs, the primals held fixed: the transpose of the linear map, which is the VJP.

The equations' params are read in one place, ``funcnn.backprop.custom_rules_jax``.
"""
from __future__ import annotations

from funcnn.backprop import custom_rules_jax as jaxrules
from funcnn.backprop.engine import backward, forward, where
from funcnn.backprop.registry import defhigher


class ClosedOverDifferentiatedValue(TypeError):
    """A custom_vjp function closes over a value being differentiated (JAX refuses it too)."""


# --- custom_jvp_call: transpose the user's JVP rule with the engine -----------------------
def tangent_inputs(eqn, active):
    """The rule of ``eqn`` for these active inputs, and which of its tangents are active."""
    nc = jaxrules.num_consts(eqn)
    act = list(active[nc:])
    rule = jaxrules.jvp_rule(eqn, act)
    tangent_active = [a for a, nz in zip(act, rule.tangent_in, strict=True) if nz]
    return rule, act, tangent_active


def custom_jvp_forward(eqn, invals, active):
    nc = jaxrules.num_consts(eqn)
    args = list(invals[nc:])
    rule, _, tangent_active = tangent_inputs(eqn, active)
    tangents = [jaxrules.zeros_for(v.aval)
                for v, nz in zip(eqn.invars[nc:], rule.tangent_in, strict=True) if nz]
    outs, tape = forward(rule.jaxpr, rule.consts, [*rule.leading, *args, *tangents],
                         [False] * (len(rule.leading) + len(args)) + tangent_active)
    return outs[:len(eqn.outvars)], tape


def custom_jvp_backward(eqn, tape, invals, cts, active):
    nc = jaxrules.num_consts(eqn)
    rule, act, tangent_active = tangent_inputs(eqn, active)
    ct_tangents = [ct for ct, nz in zip(cts, rule.tangent_out, strict=True) if nz]
    n_fixed = len(rule.leading) + len(act)
    ct_in = backward(rule.jaxpr, tape, [None] * len(eqn.outvars) + ct_tangents,
                     [False] * n_fixed + tangent_active)
    ct_tangent_in = iter(ct_in[n_fixed:])
    return [None] * nc + [next(ct_tangent_in) if nz else None for nz in rule.tangent_in]


defhigher("custom_jvp_call", forward=custom_jvp_forward, backward=custom_jvp_backward)


# --- custom_vjp_call: the user's fwd keeps residuals, the user's bwd maps cotangents --------
def custom_vjp_forward(eqn, invals, active):
    nc = jaxrules.num_consts(eqn)
    if any(active[:nc]):
        raise ClosedOverDifferentiatedValue(
            f"the custom_vjp function at {where(eqn)} closes over a value that is being "
            "differentiated; its bwd rule only gives cotangents for its explicit arguments. "
            "Pass the value to the custom_vjp function as an argument and extend fwd and bwd.")
    return jaxrules.vjp_fwd(eqn, invals, active)


def custom_vjp_backward(eqn, residuals, invals, cts, active):
    ct_in = jaxrules.vjp_bwd(eqn, residuals, cts)
    return [c if a else None for c, a in zip(ct_in, active, strict=True)]


defhigher("custom_vjp_call", forward=custom_vjp_forward, backward=custom_vjp_backward)
