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

- ``linear_call`` (``jax.custom_derivatives.linear_call(f, f_transpose, residuals, linear)``):
  the forward pass binds it; the backward pass applies the user's transpose to the output
  cotangents, as a linear_call whose own transpose is the function (a second derivative
  uses the declared pair, as in JAX). Only differentiable in its linear arguments.

The equations' params are read in one place, ``funcnn.backprop.custom_rules_jax``.
"""
from __future__ import annotations

from funcnn.backprop import custom_rules_jax as jaxrules
from funcnn.backprop.engine import backward, bind, forward, where
from funcnn.backprop.registry import defhigher


class ClosedOverDifferentiatedValue(TypeError):
    """A custom_vjp function closes over a value being differentiated (JAX refuses it too)."""


class NonLinearInputDifferentiated(TypeError):
    """A linear_call differentiated in a residual argument (JAX refuses it too)."""


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


# --- linear_call: the user's transpose is the VJP in the linear inputs ----------------------
def linear_call_forward(eqn, invals, active):
    n_consts, n_res = jaxrules.linear_call_counts(eqn)
    if any(active[:n_consts + n_res]):
        raise NonLinearInputDifferentiated(
            f"the linear_call at {where(eqn)} is differentiated with respect to one of its "
            "residual arguments (or a value its function closes over): linear_call only "
            "declares a transpose in its linear arguments (JAX cannot differentiate this "
            "either). Pass the value as a linear argument, or compute it outside.")
    return bind(eqn, invals), None


def linear_call_backward(eqn, _, invals, cts, active):
    n_consts, n_res = jaxrules.linear_call_counts(eqn)
    dense = [jaxrules.zeros_for(v.aval) if ct is None else ct
             for ct, v in zip(cts, eqn.outvars, strict=True)]
    ct_lin = jaxrules.bind_transpose(eqn, invals, dense)
    return [None] * (n_consts + n_res) + [
        c if a else None for c, a in zip(ct_lin, active[n_consts + n_res:], strict=True)]


defhigher("linear_call", forward=linear_call_forward, backward=linear_call_backward)

