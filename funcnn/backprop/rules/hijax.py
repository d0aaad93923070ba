"""``call_hi_primitive``: library operations staged as one "hijax" equation (JAX >= 0.11:
``lax.custom_root``; from 0.12 ``jnp.ldexp``, ``jnp.frexp``). Each carries the derivative
JAX's library declares for it, and the engine honours that declaration, as it honours a
program's custom_vjp / custom_jvp (the forms: ``funcnn.backprop.hijax_jax``):

- a class's own VJP pair: its ``vjp_fwd`` runs in the forward pass, ``vjp_bwd`` backward;
- its own ``jvp``: traced to a jaxpr and transposed with the engine's reverse mode, as for
  custom_jvp. The tangent program is linear in the tangents, and every hijax equation in it
  that declares a ``transpose`` is transposed by that (``ldexp``'s tangent is an ``ldexp`` of
  the tangent; ``frexp``'s too), as JAX transposes a linearized program;
- its own ``transpose`` alone (a class linear in the inputs handed to it as accumulators):
  the forward pass binds the equation, the backward pass calls the transpose.
So the engine takes the route JAX's reverse mode takes, and gets its numbers.

``lax.custom_root`` declares its derivative through JAX's own linearization of ``f``, which
the engine does not call. By the implicit function theorem (``f(p, x*(p)) = 0`` gives
``dx* = -(D_x f)^{-1} D_p f dp``; JAX's docstring of custom_root), its VJP is

    ct_p = (D_p f)^T w,   w = T^T (-ct_x),

with ``T`` the user's ``tangent_solve(g, .)``, a linear solve of ``g = D_x f``: ``w`` is the
engine's VJP of ``tangent_solve`` in its right-hand side, and ``(D_p f)^T w`` the engine's VJP
of ``f`` in its parameters (the negation first, as JAX transposes it, so zeros keep JAX's
sign). Inside ``tangent_solve``, ``g`` is a ``_RootLinearMap`` equation (``D_x f v``, or
``D_x f^T v``): the engine computes it with its own reverse mode (``J^T v`` is a VJP of ``f``,
``J v`` the VJP of that linear map) and differentiates that.
The solve's own constants, the guess and tangent_solve's constants get no cotangent (JAX's
rule gives none).
"""
from __future__ import annotations

import jax.numpy as jnp

from funcnn.backprop import hijax_jax as hj
from funcnn.backprop.engine import MissingRuleError, backward, bind, forward, read, where
from funcnn.backprop.registry import defhigher
from funcnn.backprop.rules.control import body_of

CALLS = ("jit", "pjit", "closed_call", "core_call", "eval_jaxpr")


def dense(ct, aval):
    return jnp.zeros(aval.shape, aval.dtype) if ct is None else ct


def avals_of(prim) -> list:
    return list(prim.in_avals_flat)


# --- the declared forms ----------------------------------------------------------------
LINEAR: list = []  # non-empty while the engine runs a declared JVP's tangent program


def form_for(prim) -> str | None:
    forms = hj.declared_forms(prim)
    if "vjp" in forms:
        return "vjp"
    if LINEAR and "transpose" in forms:
        return "transpose"
    return "jvp" if "jvp" in forms else "transpose" if "transpose" in forms else None


def in_tangent_program(run, *args):
    LINEAR.append(True)
    try:
        return run(*args)
    finally:
        LINEAR.pop()


def jvp_forward(prim, invals, active):
    rule = hj.traced_jvp(prim, active)
    tangents = [dense(None, a.to_tangent_aval())
                for a, act in zip(avals_of(prim), active, strict=True) if act]
    outs, tape = in_tangent_program(forward, rule.jaxpr, rule.consts, [*invals, *tangents],
                                    [False] * len(invals) + [True] * len(tangents))
    return outs[:len(prim.out_avals_flat)], tape


def jvp_backward(prim, tape, cts, active):
    rule = hj.traced_jvp(prim, active)
    ct_tangents = [ct for ct, nz in zip(cts, rule.tangent_out, strict=True) if nz]
    n, k = len(active), sum(active)
    ct_in = in_tangent_program(backward, rule.jaxpr, tape, [None] * len(cts) + ct_tangents,
                               [False] * n + [True] * k)
    got = iter(ct_in[n:])
    return [next(got) if act else None for act in active]


# --- lax.custom_root ---------------------------------------------------------------------
def split(flat, counts):
    out, at = [], 0
    for n in counts:
        out.append(list(flat[at:at + n]))
        at += n
    return out


def is_root_map(eqn) -> bool:
    return (eqn.primitive.name == hj.PRIMITIVE
            and hj.class_name(hj.prim_of(eqn)) == "_RootLinearMap")


def evaluate_expanding(jaxpr, consts, args) -> list:
    """Evaluate ``jaxpr`` with every ``_RootLinearMap`` in it (inside jit calls too) computed
    by the engine's expansion, never by JAX's (which runs JAX's forward mode). Root maps
    inside a scan, cond or loop body are bound as they are."""
    env = dict(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    for eqn in jaxpr.eqns:
        invals = [read(env, v) for v in eqn.invars]
        if is_root_map(eqn):
            outs = evaluate_expanding(*linear_map_expansion(hj.prim_of(eqn)), invals)
        elif eqn.primitive.name in CALLS:
            outs = evaluate_expanding(*body_of(eqn), invals)
        else:
            outs = bind(eqn, invals)
        env.update((v, x) for v, x in zip(eqn.outvars, outs, strict=True))
    return [read(env, v) for v in jaxpr.outvars]


def vjp_of(fn, avals, values, active, cts):
    """The engine's VJP of flat ``fn`` at ``values`` for inputs ``active``, at ``cts``
    (``fn``'s root maps computed by the engine: :func:`evaluate_expanding`)."""
    jaxpr, consts = hj.trace(fn, avals)
    jaxpr, consts = hj.trace(lambda *a: evaluate_expanding(jaxpr, consts, a), avals)
    _, tape = forward(jaxpr, consts, values, active)
    got = backward(jaxpr, tape, cts, active)
    return [dense(g, a) if act else None for g, a, act in zip(got, avals, active, strict=True)]


def root_forward(eqn, prim, invals, active):
    outs = bind(eqn, invals)
    parts = hj.root_parts(prim)
    return outs, outs[:parts.counts[1]]  # the root: the residual the backward needs


def root_backward(eqn, prim, root, invals, cts, active):
    parts = hj.root_parts(prim)
    n_solve, n_x, n_p, n_t = parts.counts
    _, _, p, t_consts = split(invals, parts.counts)
    ct_root = cts[:n_x]
    if all(ct is None for ct in ct_root) or not any(active[n_solve + n_x:][:n_p]):
        return [None] * len(invals)
    avals = avals_of(prim)
    x_avals = avals[n_solve:n_solve + n_x]
    p_avals = avals[n_solve + n_x:n_solve + n_x + n_p]
    t_avals = avals[n_solve + n_x + n_p:]
    groups = hj.tree_groups(prim)

    def tangent_solve(*flat):
        tc, x, b = split(flat, (n_t, n_x, n_x))
        return hj.leaves(parts.tangent_solve(hj.unflatten(groups[3], tc),
                                             hj.unflatten(groups[1], x),
                                             hj.unflatten(groups[1], b)))

    def f(*flat):
        params, x = split(flat, (n_p, n_x))
        return hj.leaves(parts.f(hj.unflatten(groups[2], params), hj.unflatten(groups[1], x)))

    w = vjp_of(tangent_solve, [*t_avals, *x_avals, *x_avals],
               [*t_consts, *root, *[dense(None, a) for a in x_avals]],
               [False] * (n_t + n_x) + [True] * n_x,
               [-dense(ct, a) for ct, a in zip(ct_root, x_avals, strict=True)])[n_t + n_x:]
    p_active = list(active[n_solve + n_x:n_solve + n_x + n_p])
    ct_p = vjp_of(f, [*p_avals, *x_avals], [*p, *root], p_active + [False] * n_x, w)[:n_p]
    return [None] * (n_solve + n_x) + ct_p + [None] * n_t


# --- _RootLinearMap: D_x f v, or its transpose, computed by the engine ----------------------
def linear_map_expansion(prim):
    """``(jaxpr, consts)`` of the map over flat ``(consts, x, v)``, in the engine's terms."""
    f, transposed, (n_c, n_x, n_v) = hj.root_linear_map_parts(prim)
    avals = avals_of(prim)
    c_avals, x_avals, v_avals = split(avals, (n_c, n_x, n_v))
    groups = hj.tree_groups(prim)

    def f_flat(*flat):
        c, x = split(flat, (n_c, n_x))
        return hj.leaves(f(hj.unflatten(groups[0], c), hj.unflatten(groups[1], x)))

    def jt_v(c, x, v):  # D_x f^T v: the engine's VJP of f in x
        return vjp_of(f_flat, [*c_avals, *x_avals], [*c, *x],
                      [False] * n_c + [True] * n_x, list(v))[n_c:]

    def apply(*flat):
        c, x, v = split(flat, (n_c, n_x, n_v))
        if transposed:
            return jt_v(c, x, v)
        u_avals = [a.to_tangent_aval() for a in prim.out_avals_flat]
        # D_x f v as the VJP of the linear map u -> D_x f^T u (its transpose), at v
        return vjp_of(lambda *cxu: jt_v(cxu[:n_c], cxu[n_c:n_c + n_x], cxu[n_c + n_x:]),
                      [*c_avals, *x_avals, *u_avals],
                      [*c, *x, *[dense(None, a) for a in u_avals]],
                      [False] * (n_c + n_x) + [True] * len(u_avals), list(v))[n_c + n_x:]

    return hj.trace(apply, avals)


SPECIAL = {"CustomRoot": (root_forward, root_backward)}
OWN_RULES = {"CustomRoot", "_RootLinearMap"}  # classes the engine has rules of its own for


def hi_forward(eqn, invals, active):
    prim = hj.prim_of(eqn)
    name = hj.class_name(prim)
    if name in SPECIAL:
        return SPECIAL[name][0](eqn, prim, invals, active)
    if name == "_RootLinearMap":
        jaxpr, consts = linear_map_expansion(prim)
        return forward(jaxpr, consts, invals, active)
    form = form_for(prim)
    if form == "vjp":
        return hj.vjp_fwd(prim, invals, active)
    if form == "transpose":
        return bind(eqn, invals), None
    if form == "jvp":
        return jvp_forward(prim, invals, active)
    raise MissingRuleError(
        f"the hijax primitive {name} at {where(eqn)} declares its derivative only through "
        "JAX's own linearization, which funcnn.backprop does not call; give the engine a "
        "rule for it in funcnn/backprop/rules/hijax.py.")


def hi_backward(eqn, residual, invals, cts, active):
    prim = hj.prim_of(eqn)
    name = hj.class_name(prim)
    if name in SPECIAL:
        return SPECIAL[name][1](eqn, prim, residual, invals, cts, active)
    if name == "_RootLinearMap":
        jaxpr, _ = linear_map_expansion(prim)
        return backward(jaxpr, residual, cts, active)
    form = form_for(prim)
    if form == "vjp":
        got = hj.vjp_bwd(prim, residual, cts)
    elif form == "transpose":
        got = hj.transpose(prim, invals, cts, active)
    else:
        got = jvp_backward(prim, residual, cts, active)
    return [g if a else None for g, a in zip(got, active, strict=True)]


defhigher(hj.PRIMITIVE, forward=hi_forward, backward=hi_backward)
