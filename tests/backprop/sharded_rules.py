"""Every rule of the table under explicit sharding: ``rule_params.EXAMPLES`` (one small program
per primitive) run on a 4 x 2 mesh ("data", "model") whose axes are ``AxisType.Explicit``, in
a child process on 8 simulated CPU devices (``python -m tests.backprop.sharded_rules`` prints
one JSON line per program: ``{"prim": name, "outcome": ..., "why": ..., "specs": ...}``, the
outcomes as ``check`` gives them).

Each array input is placed along dims its mesh axes divide (``spec_for``: "data" on the first
dim of a size divisible by 4, "model" on another divisible by 2; replicated where none is;
the next of ``LAYOUTS`` where jax.grad cannot differentiate a layout, all replicated last),
and the gradient of ``sum(out * c)`` (``c`` a fixed random array) is taken with respect to
the float inputs. The engine under ``jax.jit`` and ``jax.grad`` run in one jitted function
(one compile per example); the engine's values must match at 1e-12, and each gradient's
sharding must be jax.grad's. The engine also runs eagerly on ``EAGER`` (a sample: eager
dispatch compiles every op on its own). Where ``jax.grad`` itself fails under explicit
sharding even replicated, the program is skipped, with JAX's error as the reason.
``DIVISIBLE`` adds, for the primitives whose example JAX cannot shard (ops along the only
dim a mesh axis divides), the same primitive on shapes it can: named ``"<prim>:divisible"``.
"""
from __future__ import annotations

import os

if __name__ == "__main__":
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from tests.backprop.rule_params import EXAMPLES, PRIMITIVES
from tests.backprop.sampling import const, distinct, normal, rng_for
from tests.backprop.sharded_programs import explicit_mesh_of, mesh_of, same_sharding

# The layouts tried, in order, until one jax.grad can differentiate: the mesh axes (and
# sizes) placed, each on the first free dim it divides; last, every input replicated (still
# on the explicit mesh: the rules take the sharded path, with replicated shardings).
LAYOUTS = ((("data", 4), ("model", 2)), (("model", 2), ("data", 4)), (("model", 2),), ())

# --- the same primitives on shapes the mesh divides --------------------------------------------
# The examples' [3, 4] inputs leave JAX nothing it can shard for ops along the shardable dim
# (a slice to 2 of a dim split 4 ways, a window, a cumulative sum along it): these programs
# bind the same primitives with the op along a dim no mesh axis divides (the last, of size 3
# or 5) and the others split ("data" on the first, "model" on the second; spec_for).
B4 = (4, 2, 5)
IDX3 = const(np.array([2, 0, 2]))
NHWC = ("NHWC", "HWIO", "NHWC")


def pool(op, init):
    return lambda x: lax.reduce_window(x, init, op, (1, 1, 3), (1, 1, 1), "VALID")


DIVISIBLE: dict[str, tuple] = {
    **{n: ((lambda name: lambda x: getattr(lax, name)(x, axis=2))(n), (distinct(B4),))
       for n in ("cumsum", "cummax", "cummin", "cumprod", "cumlogsumexp")},
    "sort": (lambda x: lax.sort(x, dimension=2), (distinct(B4),)),
    "pad": (lambda x: lax.pad(x, 0.0, [(0, 0, 0), (0, 0, 0), (1, 2, 1)]), (normal(B4),)),
    "reshape": (lambda x: lax.reshape(x, (4, 2, 3, 2)), (normal((4, 2, 6)),)),
    "split": (lambda x: jnp.split(x, [2], axis=2)[1], (normal(B4),)),
    "slice": (lambda x: lax.slice(x, (0, 0, 1), (4, 2, 4)), (normal(B4),)),
    "squeeze": (lambda x: lax.squeeze(x, (1,)), (normal((4, 1, 3)),)),
    "dynamic_slice": (lambda x: lax.dynamic_slice(x, (0, 0, 1), (4, 2, 3)), (normal(B4),)),
    "dynamic_update_slice": (lambda x, u: lax.dynamic_update_slice(x, u, (0, 0, 2)),
                             (normal(B4), normal((4, 2, 2)))),
    "dot_general": (lambda x, y: jnp.tanh(x @ y), (normal((4, 3)), normal((3, 2)))),
    "conv_general_dilated": (  # batch-split images, a replicated kernel
        lambda x, k: lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=NHWC),
        (normal((4, 5, 5, 3)), normal((3, 3, 3, 3)))),
    "reduce_window_sum": (pool(lax.add, 0.0), (normal(B4),)),
    "reduce_window_max": (pool(lax.max, -jnp.inf), (distinct(B4),)),
    "reduce_window_min": (pool(lax.min, jnp.inf), (distinct(B4),)),
    "reduce_prod": (lambda x: x.prod(2), (normal(B4),)),
    "mul": (lambda s, x: jnp.sin(lax.mul(s, x)), (normal(()), normal(B4))),  # a rank-0 operand
    "gather": (lambda x, i: x[:, i], (normal((4, 3)), IDX3)),
    "scatter": (lambda x, u: x.at[:, np.array([2, 0, 2])].set(u), (normal((4, 3)),
                                                                  normal((4, 3)))),
    "scatter-mul": (lambda x, u: x.at[:, np.array([2, 0, 1])].multiply(u, unique_indices=True),
                    (normal((4, 3)), normal((4, 3)))),
}
PROGRAMS = {**EXAMPLES, **{f"{n}:divisible": p for n, p in DIVISIBLE.items()}}
# Run eagerly too: the families whose rules build values (zeros, pads, scatters, selects).
EAGER = ("gather", "scatter-add", "broadcast_in_dim", "reduce_max", "select_n",
         "gather:divisible", "scatter:divisible", "reduce_window_max:divisible",
         "reduce_window_sum:divisible", "conv_general_dilated:divisible",
         "dot_general:divisible", "pad:divisible", "dynamic_update_slice:divisible",
         "cumsum:divisible", "sort:divisible")


def spec_for(shape, layout=LAYOUTS[0]) -> P:
    """Each of ``layout``'s mesh axes on the first dim it divides that no earlier axis took
    (by default "data" first, then "model"); a dim no axis divides stays replicated."""
    parts = [None] * len(shape)
    for axis, size in layout:
        for d, n in enumerate(shape):
            if parts[d] is None and n % size == 0 and n >= size:
                parts[d] = axis
                break
    return P(*parts)


def is_float(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def program(prim):
    """``(loss, args, nums)``: the example's program as a real scalar of its inputs, its
    inputs drawn from its samplers, and the positions of the float ones."""
    f, samplers = PROGRAMS[prim]
    rng = rng_for(f"sharded-{prim}")
    args = tuple(np.asarray(s(rng)) for s in samplers)
    out = jax.eval_shape(f, *args)
    c = rng.standard_normal(out.shape)

    def loss(*a):
        y = f(*a)
        return jnp.sum(jnp.real(y) * jnp.asarray(c, jnp.real(y).dtype))

    return loss, args, tuple(i for i, a in enumerate(args) if is_float(a))


def placements(args) -> list[tuple[P, ...]]:
    """The specs of ``args`` under each layout, the same ones once."""
    found = []
    for layout in LAYOUTS:
        specs = tuple(spec_for(np.shape(a), layout) for a in args)
        if specs not in found:
            found.append(specs)
    return found


def compare(label, got, want) -> None:
    from tests.helpers import assert_trees_close

    assert_trees_close(got, want, rtol=1e-12, atol=1e-12, what=f"{label} vs jax.grad: ")
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert same_sharding(g, w), (f"{label}: gradient {i} sharded {g.sharding.spec}, "
                                     f"jax.grad's {w.sharding.spec}")


def check(prim, mesh) -> tuple[str, str | None, str | None]:
    """``(outcome, why, specs)``: ``"pass"`` (with an input sharded), ``"replicated"``
    (passed, but jax.grad fails on every layout that shards an input: ``why`` is its error on
    the first), ``"skip"`` (jax.grad fails even replicated: ``why``, its error then; or the
    running JAX lacks the primitive) or ``"fail"`` (what failed); and the specs of the inputs
    it ran with."""
    from funcnn import backprop

    if prim.split(":")[0] not in PRIMITIVES:
        return "skip", f"JAX {jax.__version__} has no {prim!r}", None
    jax_errors = []
    with jax.set_mesh(mesh):
        try:
            loss, args, nums = program(prim)
        except Exception as jax_error:  # JAX cannot run it forward, even replicated
            return "skip", f"JAX fails forward: {type(jax_error).__name__}: {jax_error}", None
        for specs in placements(args):
            placed = tuple(jax.device_put(a, NamedSharding(mesh, s))
                           for a, s in zip(args, specs, strict=True))
            try:
                want, got = jax.jit(lambda *a: (jax.grad(loss, nums)(*a),
                                                backprop.grad(loss, nums)(*a)))(*placed)
            except Exception as e:
                try:
                    jax.jit(jax.grad(loss, nums)).trace(*placed)
                except Exception as jax_error:
                    jax_errors.append(f"{type(jax_error).__name__}: {jax_error}")
                    continue
                return "fail", f"jit: {type(e).__name__}: {e}", str(specs)
            try:
                compare("jit", got, want)
                if prim in EAGER:
                    compare("eager", backprop.grad(loss, nums)(*placed), want)
            except Exception as e:
                return "fail", f"{type(e).__name__}: {e}", str(specs)
            sharded = any(p is not None for spec in specs for p in spec)
            if sharded:
                return "pass", None, str(specs)
            why = f"jax.grad fails sharded: {jax_errors[0]}" if jax_errors else None
            return "replicated", why, str(specs)
    return "skip", f"jax.grad fails: {jax_errors[-1]}", None  # even replicated


def main(prims) -> int:
    jax.config.update("jax_enable_x64", True)
    assert len(jax.devices()) >= 8, jax.devices()
    mesh = explicit_mesh_of(mesh_of())
    for prim in prims:
        try:
            outcome, why, specs = check(prim, mesh)
        except Exception as e:  # reported to the parent test, which fails on it
            outcome, why, specs = "fail", f"{type(e).__name__}: {e}", None
        print(json.dumps({"prim": prim, "outcome": outcome, "why": why, "specs": specs}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or sorted(PROGRAMS)))
