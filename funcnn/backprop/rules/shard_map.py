"""``shard_map`` as a higher-order primitive: the body's forward and backward each run inside a
shard_map on the same mesh.

Forward: a shard_map over the body's forward pass returns the outputs (with the equation's
``out_specs``) and the body's tape. Each device's tape is its own, so every kept value leaves
the shard_map stacked along a new leading axis over the mesh axes along which it varies (its
type says which: ``aval.mat.varying``; without replication checking, over every manual axis),
and comes back into the backward shard_map with that same spec: each device gets its own
values, with their original replication type.

Backward: a shard_map whose inputs are the stacked tape, the primal inputs (the forward's
``in_specs``) and the nonzero output cotangents (the forward's ``out_specs``), and whose
outputs are the active inputs' cotangents (the forward's ``in_specs``). Inside, the engine's
backward pass runs over the body; the collectives' rules (``rules/sharding.py``) do the
communication. Without replication checking every value counts as varying, so, as JAX does,
an output cotangent is divided by the number of devices along the axes its spec leaves out
(each of them holds a copy) and an input cotangent is summed over the axes its spec leaves out.
"""
from __future__ import annotations

import math

import jax
from jax import lax
from jax.sharding import PartitionSpec

from funcnn.backprop import sharding_jax as sj
from funcnn.backprop.engine import Tape, backward, forward, recorded_vars
from funcnn.backprop.registry import defhigher


def mentioned(spec) -> set:
    names = set()
    for entry in spec:
        if entry is None:
            continue
        names.update(entry if isinstance(entry, tuple) else (entry,))
    return names


def unmentioned(sm: sj.ShardMap, spec) -> tuple:
    used = mentioned(spec)
    return tuple(a for a in sm.manual if a not in used)


def kept_slots(body) -> range:
    """Tape positions a device must keep: every equation's output (constants and inputs are
    given again to the backward shard_map)."""
    first = len(body.constvars) + len(body.invars)
    return range(first, len(recorded_vars(body)))


def stack_spec(sm: sj.ShardMap, axes) -> PartitionSpec:
    """The spec of a per-device value stacked along a new leading axis over ``axes``."""
    axes = tuple(a for a in sm.manual if a in axes)
    return PartitionSpec(axes if axes else None)


def per_device_tape(body, args, active):
    """The body's forward pass on one device: outputs, and the tape values to keep."""
    outs, tape = forward(body, [], list(args), active)
    return tuple(outs), (tuple(tape.values[i] for i in kept_slots(body)), tape.subs)


def tape_specs(sm: sj.ShardMap, invals, active):
    """One spec per kept tape value: stacked over the manual axes along which it varies (all
    of them without replication checking). Read off the values' types in a trace of the body
    (no computation): a nested equation's residuals have no variable in the body's jaxpr."""
    found = {}

    def probe(*args):
        outs, kept = per_device_tape(sm.body, args, active)
        found["specs"] = jax.tree_util.tree_map(lambda x: stack_spec(
            sm, sj.varying_axes(jax.typeof(x)) if sm.check_vma else sm.manual), kept)
        return outs

    jax.eval_shape(sj.shard_map_call(probe, sm, sm.in_specs, sm.out_specs), *invals)
    return found["specs"]


def shard_map_forward(eqn, invals, active):
    sm = sj.shard_map_of(eqn)
    if sm.body.constvars:
        raise AssertionError("a shard_map body with constvars: not produced by JAX")

    def per_device(*args):
        outs, kept = per_device_tape(sm.body, args, active)
        return outs, jax.tree_util.tree_map(lambda x: x[None], kept)

    specs = tape_specs(sm, invals, active)
    outs, stacked = sj.shard_map_call(per_device, sm, sm.in_specs, (sm.out_specs, specs))(*invals)
    return list(outs), stacked


def shard_map_backward(eqn, stacked, invals, cts, active):
    sm = sj.shard_map_of(eqn)
    body = sm.body
    live = [i for i, c in enumerate(cts) if c is not None]
    wanted = [i for i, a in enumerate(active) if a]
    n_first = len(body.constvars) + len(body.invars)
    mesh_size = dict(zip(sm.mesh.axis_names, sm.mesh.devices.shape, strict=True))

    def per_device(stacked, primals, live_cts):
        values, subs = jax.tree_util.tree_map(lambda x: x[0], stacked)
        tape = Tape((*primals, *values), subs)
        assert len(primals) == n_first
        cts_in = [None] * len(cts)
        for i, c in zip(live, live_cts, strict=True):
            if not sm.check_vma:  # every device holds a copy along the unmentioned axes
                copies = math.prod(mesh_size[a] for a in unmentioned(sm, sm.out_specs[i]))
                c = c / copies if copies != 1 else c
            cts_in[i] = c
        ct_in = backward(body, tape, cts_in, active)
        result = []
        for i in wanted:
            c = ct_in[i]
            if c is None:
                c = sj.zeros(body.invars[i].aval)
            elif not sm.check_vma and unmentioned(sm, sm.in_specs[i]):
                c = lax.psum(c, unmentioned(sm, sm.in_specs[i]))
            result.append(c)
        return tuple(result)

    specs = tape_specs(sm, invals, active)
    run = sj.shard_map_call(
        per_device, sm, (specs, tuple(sm.in_specs), tuple(sm.out_specs[i] for i in live)),
        tuple(sm.in_specs[i] for i in wanted))
    grads = run(stacked, tuple(invals), tuple(cts[i] for i in live))
    result = [None] * len(invals)
    for i, g in zip(wanted, grads, strict=True):
        result[i] = g
    return result


defhigher("shard_map", forward=shard_map_forward, backward=shard_map_backward)
