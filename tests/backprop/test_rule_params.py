"""Every param of every primitive with a VJP rule is handled: the table in rule_params.py
says, per primitive, which params the rule reads and why the others cannot change the
cotangent; this file checks the table against the params JAX's primitives actually bind
(``jax.make_jaxpr`` of a small program per primitive, on the JAX running the tests). A param
the table does not know fails, so one that a new JAX adds shows up here. Every param the rule
reads runs at a value other than the example's, against ``jax.vjp`` and finite differences.

(``reshape``'s ``dimensions``, which ``jnp.reshape(x, s, order="F")`` binds, was ignored this
way; so were ``reduce_precision``'s bits, the ``accuracy`` of tanh and logistic, and
``mul``'s ``out_dtype``.)
"""
from __future__ import annotations

import jax
import pytest
from jax.extend import core as jcore

from funcnn.backprop.registry import VJP_RULES
from tests.backprop.rule_params import (
    CASES,
    EXAMPLES,
    NOT_YET_TABLED,
    OTHER_VERSIONS,
    PARAMS,
    PRIMITIVES,
    USED,
)
from tests.backprop.sampling import check_vjp, rng_for
from tests.backprop.test_rules_indexing import check_fd

RULES = sorted(n for n, r in VJP_RULES.items() if getattr(r, "family", None) != "nograd")


def eqns_of(prim, f, args):
    """Every equation of ``prim`` in ``f``'s jaxpr, nested jaxprs included."""
    found, todo = [], [jax.make_jaxpr(f)(*args).jaxpr]
    while todo:
        jaxpr = todo.pop()
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == prim:
                found.append(eqn)
            todo.extend(s.jaxpr if isinstance(s, jcore.ClosedJaxpr) else s
                        for s in jcore.jaxprs_in_params(eqn.params))
    assert found, f"the program for {prim!r} does not bind it"
    return found


def draw(prim, samplers):
    rng = rng_for(f"params-{prim}")
    return rng, tuple(sample(rng) for sample in samplers)


def example_params(prim) -> dict:
    f, samplers = EXAMPLES[prim]
    return dict(eqns_of(prim, f, draw(prim, samplers)[1])[0].params)


def test_every_rule_is_a_primitive_here_or_an_older_spelling():
    unknown = [n for n in VJP_RULES if n not in PRIMITIVES and n not in OTHER_VERSIONS]
    assert not unknown, f"rules named after no primitive of JAX {jax.__version__}: {unknown}"


def test_every_rule_has_a_params_entry_and_an_example():
    here = [n for n in RULES if n in PRIMITIVES
            and VJP_RULES[n].__module__.rsplit(".", 1)[-1] not in NOT_YET_TABLED]
    assert not [n for n in here if n not in PARAMS], "add these to rule_params.PARAMS"
    assert not [n for n in here if n not in EXAMPLES], "add these to rule_params.EXAMPLES"


@pytest.mark.parametrize("prim", sorted(EXAMPLES))
def test_jax_binds_only_params_the_table_knows(prim):
    if prim not in PRIMITIVES:
        pytest.skip(f"JAX {jax.__version__} has no {prim!r}")
    f, samplers = EXAMPLES[prim]
    bound = set().union(*(e.params for e in eqns_of(prim, f, draw(prim, samplers)[1])))
    unknown = bound - set(PARAMS[prim])
    assert not unknown, (
        f"JAX {jax.__version__}'s {prim!r} binds params the rule's table does not know: "
        f"{sorted(unknown)}. Handle them in the rule, then say how in rule_params.PARAMS.")


def test_every_used_param_has_a_case():
    covered = {(c.prim, p) for c in CASES for p in c.params}
    missing = [(prim, p) for prim in sorted(EXAMPLES) if prim in PRIMITIVES
               for p in example_params(prim)
               if PARAMS[prim].get(p) == USED and (prim, p) not in covered]
    assert not missing, f"used params no case runs at another value: {missing}"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.prim}-{'-'.join(c.params)}" for c in CASES])
def test_used_param_at_another_value(case):
    if case.prim not in PRIMITIVES:
        pytest.skip(f"JAX {jax.__version__} has no {case.prim!r}")
    rng, args = draw(f"{case.prim}-{case.params}", case.args)
    reference = example_params(case.prim)
    eqns = eqns_of(case.prim, case.f, args)
    for p in case.params:
        if p in reference:
            assert any(e.params[p] != reference[p] for e in eqns), (
                f"the case binds {case.prim}'s {p} at the example's value {reference[p]!r}")
    if case.against_jax:
        check_vjp(case.f, args, rng, rtol=case.rtol, fd=case.fd, jit=True)
    else:
        check_fd(case.f, tuple(jax.numpy.asarray(a) for a in args), rng)
