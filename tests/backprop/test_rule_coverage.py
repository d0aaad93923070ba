"""Completeness: every primitive for which JAX registers a derivative has an engine rule
(``registry.VJP_RULES`` / ``HIGHER_RULES``), or is in one of the commented tables below. A
primitive JAX learns to differentiate in a new version then shows up here as a red test,
not as a ``MissingRuleError`` in a user's program.

The names are read from JAX's rule tables (``jax._src.interpreters.ad.primitive_jvps``,
``primitive_transposes``, ``fancy_transposes``, ... : reading names, never calling a rule), in
a fresh interpreter that imports JAX's public, non-experimental modules and the engine, so
what other tests import cannot change the answer. Experimental modules (``jax.experimental``:
sparse, pallas, ...) are not loaded: their primitives are not in scope.
"""
from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

LIST_NAMES = r"""
import json
import jax, jax.numpy, jax.nn, jax.random, jax.lax.linalg, jax.ad_checkpoint
import jax.scipy.linalg, jax.scipy.signal, jax.scipy.sparse.linalg, jax.scipy.special
import jax.scipy.stats
from jax._src.interpreters import ad
from funcnn.backprop import registry

tables = sorted(name for name, value in vars(ad).items() if isinstance(value, dict)
                and name.endswith(("jvps", "transposes", "linearizations")))
names = sorted({getattr(key, "name", str(key)) for t in tables for key in getattr(ad, t)})
try:  # JAX >= 0.11: the classes of call_hi_primitive equations, and their declared forms
    from jax.experimental.hijax import HiPrim
    from funcnn.backprop import hijax_jax
    from funcnn.backprop.rules.hijax import OWN_RULES

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    hiprims = {c.__name__: sorted(hijax_jax.declared_forms(c)) + (
        ["engine rule"] if c.__name__ in OWN_RULES else []) for c in subclasses(HiPrim)}
except ImportError:
    hiprims = {}
print(json.dumps({"version": jax.__version__, "tables": tables, "names": names,
                  "rules": sorted(set(registry.VJP_RULES) | set(registry.HIGHER_RULES)),
                  "hiprims": hiprims}))
"""


@pytest.fixture(scope="module")
def jax_tables():
    done = subprocess.run([sys.executable, "-c", LIST_NAMES], capture_output=True, text=True,
                          check=False, cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# JAX has a table entry, but cannot reverse-differentiate the primitive either: the entry is
# forward mode only, or a rule that raises.
JAX_CANNOT = {
    "while": "forward mode only: the transpose needs a trip count known ahead (lax.scan, or "
             "fori_loop with static bounds, which lowers to scan, are differentiable)",
    "pure_callback": "its JVP rule raises ('Pure callbacks do not support JVP'): a host "
                     "function is opaque; wrap it in jax.custom_jvp / custom_vjp",
    "io_callback": "its JVP rule raises: a side-effecting host call has no derivative",
    "ffi_call": "its JVP rule raises: a foreign function is opaque without a custom rule",
    "custom_vmap_call": "jax.custom_batching.custom_vmap: forward mode only; reverse mode "
                        "fails in JAX ('Linearization failed to produce known values')",
}

# Nothing to differentiate: no outputs, so the backward pass never reaches them (they run in
# the forward pass as written). test_rules_markers.py checks jax.debug.print / callback.
NO_OUTPUTS = {
    "debug_callback": "jax.debug.callback: a side effect, no outputs",
    "debug_print": "jax.debug.print (JAX >= 0.10): a side effect, no outputs",
    "dce_sink": "keeps a value alive for the compiler: no outputs",
    "check": "checkify.check: a runtime assertion, no outputs",
}

# Out of scope here, each with the reason.
OUT_OF_SCOPE = {
    # issue #13: sharding annotations, memory placement and the collectives of shard_map
    # bodies (the ones with rules are in rules/sharding.py)
    **{name: "out of scope here: issue #13 (sharding and collectives)" for name in (
        "all_gather_reduced", "inspect_sharding", "layout_constraint", "pbroadcast",
        "pbroadcast_dynamic", "preduced", "ragged_all_to_all", "reduced_vary_cast",
        "reduced_vary_cast_p", "relayout", "unreduced_psum", "unreduced_reduce_scatter",
        "vary_unreduced_cast", "vary_unreduced_cast_p", "with_memory_space_constraint")},
    # mutable references and state (jax.new_ref, run_state, Pallas-style refs): the engine
    # differentiates pure programs; a Ref's derivative needs JAX's state discipline
    **{name: "out of scope: mutable references / state, not a pure function of arrays"
       for name in ("accum_grad_in_ref", "addupdate", "get", "swap", "new_ref", "empty_ref",
                    "free_ref", "freeze", "run_state", "box_get", "box_set", "new_box",
                    "log_extend", "log_read", "new_log")},
    "remat_opt": "JAX-internal: the forward of a custom_vjp with optimize_remat=True binds it; "
                 "the engine calls that forward and differentiates the bwd rule, never it",
    "call_hi_primitive_linearized": "JAX-internal: a hijax primitive's linearization, only in "
                                    "programs JAX's own linearize builds",
    # JAX-internal: never in the jaxpr of a user's function (only in programs JAX's own
    # autodiff or tracing machinery builds)
    "custom_lin": "JAX-internal: only inside JAX's own linearized programs",
    "select_and_gather_add": "JAX-internal: JAX's own JVP of max pooling emits it (the "
                             "engine's reduce_window_max rule does not)",
    "select_and_scatter_add": "JAX-internal: the transpose of select_and_gather_add, in "
                              "programs jax.grad built for max pooling",
    "call": "JAX-internal (JAX 0.10): core.call_p of the tracing machinery",
    "stage": "JAX-internal: stages an eager value; never in a traced jaxpr",
    "tie": "JAX-internal: orders two values for the compiler in JAX's own rules",
    "program_order": "JAX-internal (JAX 0.11): orders effects in jit lowering",
    "from_edtype": "JAX-internal: conversion out of an extended dtype (PRNG keys, ...)",
    "to_edtype": "JAX-internal: conversion into an extended dtype",
}

# JAX differentiates these, the rule belongs in a file this change does not own: listed so
# the gap is visible (test_listed_primitives_have_no_rule fails once the rule lands, so the
# entry gets deleted).
PENDING_ELSEWHERE: dict[str, str] = {}

TABLES = {"JAX_CANNOT": JAX_CANNOT, "NO_OUTPUTS": NO_OUTPUTS, "OUT_OF_SCOPE": OUT_OF_SCOPE,
          "PENDING_ELSEWHERE": PENDING_ELSEWHERE}


# Hijax classes (``call_hi_primitive``'s ``_prim``) that declare no derivative form of their
# own the engine can honour (rules/hijax.py), and have no engine rule, with the reason.
HIJAX_WITHOUT_RULE = {
    "OptRemat": "JAX-internal: the rematerialized forward of a hijax custom_vjp with "
                "optimize_remat, only in programs JAX's own differentiation builds",
}


def listed():
    return {name for table in TABLES.values() for name in table}


def test_tables_do_not_overlap():
    names = [name for table in TABLES.values() for name in table]
    assert len(names) == len(set(names))


def test_jax_tables_were_read(jax_tables):
    assert {"primitive_jvps", "primitive_transposes"} <= set(jax_tables["tables"])
    assert {"dot_general", "cholesky", "fft", "scan"} <= set(jax_tables["names"])


def test_every_primitive_jax_differentiates_has_a_rule_or_an_entry(jax_tables):
    missing = sorted(set(jax_tables["names"]) - set(jax_tables["rules"]) - listed())
    assert not missing, (
        f"JAX {jax_tables['version']} registers a derivative for {missing}, and the engine "
        "has no rule for them: write one (registry.defvjp / defhigher, in the file of its "
        "family), or add the name to a table in this file with the reason.")


def test_listed_primitives_have_no_rule(jax_tables):
    """A table entry for a primitive that now has a rule is stale: delete it."""
    stale = sorted(listed() & set(jax_tables["rules"]))
    assert not stale, f"the engine has rules for {stale}: remove them from the tables here"


# --- the claims of JAX_CANNOT, where cheap to witness --------------------------------------------
def looped(x):
    return jax.lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * x), (0, x))[1]


def host_sin(x):
    return jax.pure_callback(lambda v: jnp.sin(v), jax.ShapeDtypeStruct((), x.dtype), x)


@jax.custom_batching.custom_vmap
def batched_sin(x):
    return jnp.sin(x)


@batched_sin.def_vmap
def _batched_sin_rule(axis_size, in_batched, x):
    return jnp.sin(x), in_batched[0]


@pytest.mark.parametrize("f", [looped, host_sin, lambda x: batched_sin(x) * x],
                         ids=["while", "pure_callback", "custom_vmap_call"])
def test_jax_cannot_either(f):
    from funcnn import backprop
    from funcnn.backprop.engine import MissingRuleError

    with pytest.raises((ValueError, TypeError, NotImplementedError)):
        jax.grad(f)(0.5)
    with pytest.raises(MissingRuleError):
        backprop.grad(f)(0.5)


def test_every_hijax_class_declares_a_form_the_engine_honours(jax_tables):
    """A HiPrim class whose derivative the engine cannot take (no VJP pair, JVP or transpose
    of its own, no engine rule) would raise in a user's program: it must be listed."""
    missing = sorted(name for name, forms in jax_tables["hiprims"].items()
                     if not forms and name not in HIJAX_WITHOUT_RULE)
    assert not missing, (
        f"JAX {jax_tables['version']}: hijax classes {missing} declare their derivative only "
        "through JAX's linearization: give them a rule in rules/hijax.py or list them here.")
    stale = sorted(set(HIJAX_WITHOUT_RULE) & {n for n, f in jax_tables["hiprims"].items() if f})
    assert not stale, f"{stale} now declare a form the engine honours: remove them here"
