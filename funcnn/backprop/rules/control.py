"""Nested graphs: jit / pjit / closed_call, remat / checkpoint, scan and cond (custom_jvp_call
and custom_vjp_call, whose own rules decide their derivative, are in ``rules/custom.py``).

Each keeps a residual of its own (``registry.defhigher``): a call keeps the tape of its body;
remat keeps nothing and runs its body again in the backward pass; scan keeps the tapes of
every step stacked, and its backward is a scan in the opposite direction
(backpropagation through time); cond keeps one tape per branch and switches on the index.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jcore

from funcnn.backprop.engine import Tape, activity, backward, bind, forward
from funcnn.backprop.registry import defhigher, defnorule
from funcnn.backprop.sharding_jax import zeros


def body_of(eqn):
    """The sub-jaxpr of a call-like equation and its constants."""
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        sub = eqn.params.get(key)
        if sub is not None:
            if isinstance(sub, jcore.ClosedJaxpr):
                return sub.jaxpr, sub.consts
            return sub, []
    raise AssertionError(f"no sub-jaxpr in {eqn.primitive.name}")


def dense(ct, like_aval):
    return zeros(like_aval) if ct is None else ct


# --- calls: inline the body into the tape -------------------------------------------------
def call_forward(eqn, invals, active):
    jaxpr, consts = body_of(eqn)
    return forward(jaxpr, consts, invals, active)


def call_backward(eqn, tape, invals, cts, active):
    jaxpr, _ = body_of(eqn)
    return backward(jaxpr, tape, cts, active)


defhigher("jit", "pjit", "closed_call", "core_call", "eval_jaxpr", forward=call_forward,
          backward=call_backward)


# --- remat: keep nothing, run the body again during the backward pass ---------------------
def remat_forward(eqn, invals, active):
    return bind(eqn, invals), ()


def remat_backward(eqn, _, invals, cts, active):
    jaxpr, consts = body_of(eqn)
    arrays = [i for i, x in enumerate(invals) if isinstance(x, jax.Array | jax.core.Tracer)]
    again = list(invals)
    if eqn.params.get("prevent_cse", True) and arrays:  # keep XLA from reusing the forward
        fenced = lax.optimization_barrier([invals[i] for i in arrays])
        for i, x in zip(arrays, fenced, strict=True):
            again[i] = x
    _, tape = forward(jaxpr, consts, again, active)
    return backward(jaxpr, tape, cts, active)


defhigher("remat2", "checkpoint", "remat", forward=remat_forward, backward=remat_backward)


# --- scan: the tapes of all steps, stacked; backward is a scan the other way --------------
def scan_activity(jaxpr, active, num_consts, num_carry):
    """Which body inputs are active: a carry is active if its initial value is, or if the
    body makes it depend on an active input (a fixed point)."""
    act = list(active)
    while True:
        live = activity(jaxpr, act)
        carry_out = [isinstance(v, jcore.Var) and v in live for v in jaxpr.outvars[:num_carry]]
        new = (act[:num_consts]
               + [a or b for a, b in zip(act[num_consts:num_consts + num_carry], carry_out,
                                         strict=True)]
               + act[num_consts + num_carry:])
        if new == act:
            return act
        act = new


def loop_invariant_slots(jaxpr, num_consts, num_carry):
    """Positions in the tape's values that need not be stacked: the body's constants and its
    loop-invariant inputs (given again in the backward), and its xs (sliced again)."""
    n_const = len(jaxpr.constvars)
    n_in = len(jaxpr.invars)
    return set(range(n_const + num_consts)) | set(
        range(n_const + num_consts + num_carry, n_const + n_in))


def scan_layout(eqn):
    """``(body jaxpr, its consts, num_consts, num_carry)`` of a scan equation.

    JAX 0.10 names the counts (``num_consts``, ``num_carry``). JAX 0.11 does not (its
    ``ft_in``/``ft_out`` describe pytrees, not counts), so they are read off the types, which
    fix them: inputs are consts, carry, xs in that order; an xs input (and a ys output) has a
    leading axis of ``length`` that the body's variable lacks, a const or carry has the body's
    type exactly; and the carries are the leading outputs whose type the body keeps.
    """
    p = eqn.params
    jaxpr, consts = body_of(eqn)
    if "num_consts" in p:
        return jaxpr, consts, p["num_consts"], p["num_carry"]
    return jaxpr, consts, *scan_counts_from_types(eqn, jaxpr)


def scan_counts_from_types(eqn, jaxpr):
    """``(num_consts, num_carry)`` of a scan, from its inputs' and outputs' types."""

    def same(outer, inner):
        return tuple(outer.aval.shape) == tuple(inner.aval.shape)

    n_in = next((i for i, (o, b) in enumerate(zip(eqn.invars, jaxpr.invars, strict=True))
                 if not same(o, b)), len(eqn.invars))  # consts + carry
    num_carry = next((i for i, (o, b) in enumerate(zip(eqn.outvars, jaxpr.outvars,
                                                       strict=True))
                      if not same(o, b)), len(eqn.outvars))
    return n_in - num_carry, num_carry


# Run eagerly, a scan rule would call lax.scan with a fresh step function every time, and
# JAX would compile that scan again on every call (seconds for jax.scipy.special.ndtri on
# JAX 0.10). So eagerly each rule runs as one jitted function per (scan, active inputs,
# zero cotangents), built once and kept here: an equation that comes back (inside a jitted
# library function, whose jaxpr JAX caches) finds its compiled scan. Under a trace nothing
# changes.
EAGER_SCANS: dict = {}
EAGER_SCANS_KEPT = 256


def eager_once(name, eqn, key, build, *args):
    """``build()(*args)``, the function jitted and kept for (``name``, this scan, ``key``)."""
    full_key = (name, id(eqn), key)
    hit = EAGER_SCANS.get(full_key)
    if hit is None or hit[0] is not eqn:
        if len(EAGER_SCANS) >= EAGER_SCANS_KEPT:
            EAGER_SCANS.pop(next(iter(EAGER_SCANS)))
        hit = (eqn, jax.jit(build()))  # the equation is kept, so its id stays valid
        EAGER_SCANS[full_key] = hit
    return hit[1](*args)


def concrete(tree) -> bool:
    return all(is_concrete(x) for x in jax.tree_util.tree_leaves(tree))


def scan_forward(eqn, invals, active):
    if not concrete(invals):
        return traced_scan_forward(eqn, invals, active)
    return eager_once("forward", eqn, tuple(active),
                      lambda: lambda xs: traced_scan_forward(eqn, xs, active), invals)


def scan_backward(eqn, stacked, invals, cts, active):
    if not concrete((stacked, invals, cts)):
        return traced_scan_backward(eqn, stacked, invals, cts, active)
    return eager_once("backward", eqn, (tuple(active), tuple(c is None for c in cts)),
                      lambda: lambda *a: traced_scan_backward(eqn, *a, active),
                      stacked, invals, cts)


def traced_scan_forward(eqn, invals, active):
    p = eqn.params
    jaxpr, body_consts, nc, ncar = scan_layout(eqn)
    consts, init, xs = invals[:nc], invals[nc:nc + ncar], invals[nc + ncar:]
    act = scan_activity(jaxpr, active, nc, ncar)
    skip = loop_invariant_slots(jaxpr, nc, ncar)

    def step(carry, x):
        outs, tape = forward(jaxpr, body_consts, [*consts, *carry, *x], act)
        kept = tuple(None if i in skip else v for i, v in enumerate(tape.values))
        return outs[:ncar], (outs[ncar:], Tape(kept, tape.subs))

    carry, (ys, stacked) = lax.scan(step, list(init), list(xs), length=p["length"],
                                    reverse=p["reverse"], unroll=p["unroll"])
    return [*carry, *ys], stacked


def traced_scan_backward(eqn, stacked, invals, cts, active):
    p = eqn.params
    jaxpr, body_consts, nc, ncar = scan_layout(eqn)
    consts, xs = invals[:nc], invals[nc + ncar:]
    act = scan_activity(jaxpr, active, nc, ncar)
    carry_avals = [v.aval for v in jaxpr.invars[nc:nc + ncar]]
    const_avals = [v.aval for v in jaxpr.invars[:nc]]
    ct_carry = [dense(c, a) if act[nc + i] else None
                for i, (c, a) in enumerate(zip(cts[:ncar], carry_avals, strict=True))]
    ct_ys = list(cts[ncar:])
    ct_consts = [zeros(a) if act[i] else None
                 for i, a in enumerate(const_avals)]
    n_const, n_in = len(jaxpr.constvars), len(jaxpr.invars)

    def step(state, inp):
        ct_carry, ct_consts = state
        ct_y, tape, x = inp
        values = list(tape.values)  # refill the slots that were not stacked
        values[:n_const + nc] = [*body_consts, *consts]
        values[n_const + nc + ncar:n_const + n_in] = list(x)
        ct_in = backward(jaxpr, Tape(tuple(values), tape.subs), [*ct_carry, *ct_y], act)
        new_consts = [acc if c is None or acc is None else acc + c
                      for acc, c in zip(ct_consts, ct_in[:nc], strict=True)]
        new_carry = [dense(c, a) if act[nc + i] else None
                     for i, (c, a) in enumerate(zip(ct_in[nc:nc + ncar], carry_avals,
                                                    strict=True))]
        return (new_carry, new_consts), ct_in[nc + ncar:]

    (ct_init, ct_consts), ct_xs = lax.scan(step, (ct_carry, ct_consts),
                                           (ct_ys, stacked, list(xs)), length=p["length"],
                                           reverse=not p["reverse"], unroll=p["unroll"])
    return [*ct_consts, *ct_init, *ct_xs]


defhigher("scan", forward=scan_forward, backward=scan_backward)
defnorule("while", "A while_loop has no reverse-mode derivative (its trip count is not known "
                   "ahead; JAX cannot differentiate it either): use lax.scan, or lax.fori_loop "
                   "with static bounds, which lowers to scan.")


# --- cond: one tape per branch, the unused ones zero-filled --------------------------------
def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def cond_forward(eqn, invals, active):
    index, ops = invals[0], list(invals[1:])
    act = list(active[1:])
    branches = eqn.params["branches"]
    if is_concrete(index):  # eager: run the one branch taken, keep only its tape
        i = int(np.clip(index, 0, len(branches) - 1))
        outs, tape = forward(branches[i].jaxpr, branches[i].consts, ops, act)
        return outs, [tape if j == i else None for j in range(len(branches))]

    def run(br):
        return lambda *xs: forward(br.jaxpr, br.consts, list(xs), act)

    shapes = [jax.eval_shape(run(br), *ops)[1] for br in branches]

    def taking(i):
        def f(*xs):
            outs, tape = run(branches[i])(*xs)
            tapes = [tape if j == i else jax.tree_util.tree_map(
                lambda s: jnp.zeros(s.shape, s.dtype), shapes[j]) for j in range(len(branches))]
            return outs, tapes

        return f

    return lax.switch(index, [taking(i) for i in range(len(branches))], *ops)


def cond_backward(eqn, tapes, invals, cts, active):
    index = invals[0]
    act = list(active[1:])
    branches = eqn.params["branches"]
    op_avals = [v.aval for v in eqn.invars[1:]]

    def back(i):
        def f(tapes, cts):
            ct_in = backward(branches[i].jaxpr, tapes[i], cts, act)
            return [dense(c, a) if act[k] else None
                    for k, (c, a) in enumerate(zip(ct_in, op_avals, strict=True))]

        return f

    if is_concrete(index):
        i = int(np.clip(index, 0, len(branches) - 1))
        return [None, *back(i)(tapes, cts)]
    return [None, *lax.switch(index, [back(i) for i in range(len(branches))], tapes, cts)]


defhigher("cond", forward=cond_forward, backward=cond_backward)

