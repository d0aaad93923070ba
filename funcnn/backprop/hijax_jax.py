"""Where the engine reaches JAX's "hijax" primitives: the one module that touches the
internals of ``call_hi_primitive`` equations (JAX >= 0.11).

From JAX 0.11 on, some library functions are staged as one ``call_hi_primitive`` equation
whose ``_prim`` param is an object of a ``HiPrim`` subclass (``lax.custom_root``; from 0.12
also ``jnp.ldexp``, ``jnp.frexp``, ...). The object carries the operation (``expand``: its
implementation in ordinary primitives, which for ``ldexp`` is bit manipulation with no
derivative) and the derivative JAX's library declares for it, in one of these forms:

- ``vjp_fwd(nzs_in, *args) -> (out, residuals)`` and ``vjp_bwd_retval(res, out_ct)``, written
  by the class itself (a program's custom_vjp staged the hijax way);
- ``transpose(out_ct, *maybe_accums)``: the class is linear in the inputs handed to it as
  accumulators (``jnp.ldexp`` in its mantissa); cotangents are given by ``accum(ct)``;
- ``jvp(primals, tangents)``: a JVP rule in terms of other primitives (``jnp.frexp``);
- ``lin`` / ``linearized`` built on JAX's own linearization (``lax.custom_root``): the engine
  cannot call those, and has rules of its own for the two classes that use them
  (``CustomRoot``, ``_RootLinearMap``; ``rules/hijax.py``).

Forms JAX derives from another one (``vjp_from_jvp``, ``jvp_from_lin``, ...) are not the
class's own: they run JAX's differentiation, so :func:`declared_forms` looks past them.
The objects are passed flat: ``prim.in_tree`` / ``prim.out_tree`` rebuild the trees.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
from jax._src import ad_util
from jax.tree_util import tree_unflatten

try:  # JAX >= 0.11: the public (experimental) hijax interface. ``ValAccum`` is the value
    # holder a declared transpose rule writes its cotangents into (``accum(ct)`` adds,
    # ``freeze()`` reads).
    from jax.experimental import hijax
    from jax.experimental.hijax import ValAccum
except ImportError:  # JAX 0.10: no hijax primitives
    hijax = None
    ValAccum = None

PRIMITIVE = "call_hi_primitive"


def prim_of(eqn):
    """The ``HiPrim`` object of a ``call_hi_primitive`` equation."""
    return eqn.params["_prim"]


def class_name(prim) -> str:
    return (prim if isinstance(prim, type) else type(prim)).__name__


def own(prim, method: str) -> bool:
    """Whether ``prim``'s class defines ``method`` itself (not HiPrim's default raising one,
    nor one JAX derives from another form through its own differentiation)."""
    cls = prim if isinstance(prim, type) else type(prim)
    fn = getattr(cls, method, None)
    derived = {getattr(hijax.HiPrim, method, None), hijax.jvp_from_lin,
               *hijax.vjp_from_jvp, *hijax.vjp_from_lin, *hijax.linearize_from_jvp}
    return fn is not None and fn not in derived


def declared_forms(prim) -> set[str]:
    """The derivative forms ``prim`` (an object or its class) declares itself, of
    ``"vjp"``, ``"transpose"``, ``"jvp"`` (empty: only JAX-derived ones)."""
    forms = set()
    if own(prim, "vjp_fwd") and (own(prim, "vjp_bwd") or own(prim, "vjp_bwd_retval")):
        forms.add("vjp")
    forms.update(m for m in ("transpose", "jvp") if own(prim, m))
    return forms


def unflatten_in(prim, flat: Sequence):
    return tree_unflatten(prim.in_tree, list(flat))


def flatten_out(prim, tree) -> list:
    return list(prim.out_tree.flatten_up_to(tree))


def is_zero(t) -> bool:
    return t is None or isinstance(t, ad_util.Zero | ad_util.SymbolicZero)


def zero_tangent(aval):
    return ad_util.Zero(aval.to_tangent_aval())


# --- the declared forms, called --------------------------------------------------------
def vjp_fwd(prim, invals: Sequence, active: Sequence[bool]):
    """The class's own ``vjp_fwd``: ``(flat outputs, residuals)``."""
    out, res = prim.vjp_fwd(unflatten_in(prim, active), *unflatten_in(prim, invals))
    return flatten_out(prim, out), res


def vjp_bwd(prim, res, cts: Sequence) -> list:
    """The class's own backward rule on flat output cotangents (``None``: zero); one
    cotangent per flat input, ``None`` for a zero."""
    out_ct = tree_unflatten(prim.out_tree, [
        zero_tangent(a) if ct is None else ct for ct, a in zip(cts, prim.out_avals_flat,
                                                               strict=True)])
    in_cts, _logs = prim.vjp_bwd_retval_logs(res, out_ct)
    return [None if is_zero(c) else c for c in prim.in_tree.flatten_up_to(in_cts)]


def transpose(prim, invals: Sequence, cts: Sequence, active: Sequence[bool]) -> list:
    """The class's own transpose rule: accumulators for the active inputs, values for the
    others; one cotangent per flat input (``None``: the rule gave none)."""
    out_ct = tree_unflatten(prim.out_tree, [
        zero_tangent(a) if ct is None else ct for ct, a in zip(cts, prim.out_avals_flat,
                                                               strict=True)])
    accums = [ValAccum(a.to_ct_aval()) if act else None
              for a, act in zip(prim.in_avals_flat, active, strict=True)]
    args = [acc if act else x for acc, x, act in zip(accums, invals, active, strict=True)]
    prim.transpose(out_ct, *unflatten_in(prim, args))
    return [None if acc is None or is_zero(acc.freeze()) else acc.freeze() for acc in accums]


class TracedJvp(NamedTuple):
    """A declared JVP rule as a jaxpr over ``(*primals, *tangents of the active inputs)``
    giving ``(*primal outs, *nonzero tangent outs)``; ``tangent_out[j]`` says whether output
    j has a tangent in the jaxpr (the others are symbolic zeros)."""

    jaxpr: object
    consts: list
    tangent_out: list


def traced_jvp(prim, active: Sequence[bool]) -> TracedJvp:
    """Trace the class's own ``jvp`` (tracing only, as ``jax.make_jaxpr``); inactive inputs
    get symbolic zero tangents, as JAX hands them."""
    avals = list(prim.in_avals_flat)
    tangent_avals = [a.to_tangent_aval() for a, act in zip(avals, active, strict=True) if act]
    flags: list = []

    def rule(*flat):
        primals, given = flat[:len(avals)], iter(flat[len(avals):])
        tangents = [next(given) if act else zero_tangent(a)
                    for a, act in zip(avals, active, strict=True)]
        out, out_dot = prim.jvp(unflatten_in(prim, primals), unflatten_in(prim, tangents))
        dots = prim.out_tree.flatten_up_to(out_dot)
        flags[:] = [not is_zero(t) for t in dots]
        return flatten_out(prim, out) + [t for t in dots if not is_zero(t)]

    closed = jax.make_jaxpr(rule)(*avals, *tangent_avals)
    return TracedJvp(closed.jaxpr, list(closed.consts), list(flags))


def trace(fn, avals: Sequence):
    """``fn`` over flat arrays of ``avals`` as ``(jaxpr, consts)``."""
    closed = jax.make_jaxpr(fn)(*avals)
    return closed.jaxpr, list(closed.consts)


# --- lax.custom_root (CustomRoot) and its linear map (_RootLinearMap) -----------------------
class Root(NamedTuple):
    """A ``CustomRoot``'s parts: flat inputs are ``(solve_consts, guess, f_consts,
    tangent_consts)`` in that order, with the counts of each; ``f(f_consts, x)`` and
    ``tangent_solve(tangent_consts, x, b)`` as callables of trees."""

    counts: tuple
    f: object
    tangent_solve: object
    has_aux: bool
    x_tree: object


def root_parts(prim) -> Root:
    groups = prim.in_avals  # (solve_consts, guess, f_consts, tangent_consts) as trees
    counts = tuple(len(jax.tree_util.tree_leaves(g)) for g in groups)
    return Root(counts, prim.f, prim.tangent_solve, prim.has_aux,
                jax.tree_util.tree_structure(groups[1]))


def root_linear_map_parts(prim):
    """``(f, transposed, (n consts, n x, n v))`` of a ``_RootLinearMap``: it applies
    ``D_x f(consts, x)`` to ``v`` (its transpose when ``transposed``)."""
    counts = tuple(len(jax.tree_util.tree_leaves(g)) for g in prim.in_avals)
    return prim.f, prim.transposed, counts


def tree_groups(prim) -> list:
    """The tree structure of each top-level input of ``prim`` (its flat inputs are theirs,
    in order)."""
    groups = [jax.tree_util.tree_structure(g) for g in prim.in_avals]
    if sum(g.num_leaves for g in groups) != len(prim.in_avals_flat):
        raise AssertionError(f"{class_name(prim)}: input trees {groups} do not flatten to its "
                             f"{len(prim.in_avals_flat)} inputs")
    return groups


def leaves(tree) -> list:
    return jax.tree_util.tree_leaves(tree)


def unflatten(treedef, flat: Sequence):
    return tree_unflatten(treedef, list(flat))
