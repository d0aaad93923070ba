"""Every public function of ``jax.nn``, ``jax.scipy.special`` and ``optax.losses`` (found by
inspecting the modules, so a function added in a new release is covered without a code
change): the engine's gradient of ``sum(f(x) * w)`` against ``jax.grad``'s, in float64, at a
random point of the function's domain, at 0, at ties, at +-30, +-1000 and at a mix of them;
and with Python floats as inputs (under jit at the same points but ties; eagerly, op by op, at
a random point and at 0 for jax.nn and optax.losses).

The standard (issue #11): bit for bit where jax.grad is exact, within 1e-12 relative elsewhere,
NaN where jax.grad gives NaN, inf where it gives inf, the same dtype (and a weakly typed
gradient of a Python float where jax.grad's is). Where jax.grad cannot differentiate a
function, the engine must raise a clear error.

How to call functions with labels, orders or keyword-only arguments, and the few exclusions:
``library_calls``. Points and the comparison: ``library_points``.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest

from funcnn import backprop
from tests.backprop.library_calls import EXCLUDED, HOW, MODULES, NOT_IN_EVERY_RELEASE, SHAPE, Call
from tests.backprop.library_points import (
    SCALAR_POINTS,
    compile_quick,
    mismatch,
    point,
    public_functions,
    required_positional,
    weighted_sum,
)
from tests.backprop.sampling import normal, rng_for

FUNCTIONS = {name: f for module in MODULES for name, f in public_functions(module).items()}
CASES = [(name, call) for name in FUNCTIONS if name not in EXCLUDED
         for call in HOW.get(name, (Call(),))]
# Errors that say what is wrong with a request (MissingRuleError is a NotImplementedError);
# an AttributeError or KeyError from inside a rule is a bug, not a clear refusal.
CLEAR_ERRORS = (TypeError, ValueError, NotImplementedError)


def case_id(case) -> str:
    name, call = case
    return name if call.label == "default" else f"{name}[{call.label}]"


def bind(name: str, call: Call):
    """``(fn(*diff_args), n_diff, shapes, domain)`` for one case."""
    f = FUNCTIONS[name]
    n = call.n_diff if call.n_diff is not None else required_positional(f)
    fn = (lambda *x: f(*x)) if call.apply is None else (lambda *x: call.apply(f, *x))
    shapes = call.shapes or (SHAPE,) * n
    domain = call.domain or tuple(normal(s) for s in shapes)
    return fn, n, shapes, domain


def callable_or_fail(name, fn, args):
    """The forward pass must run on ``args`` with JAX itself; else the test cannot call it."""
    try:
        jax.eval_shape(fn, *args)
    except Exception as error:
        kinds = sorted({type(a).__name__ for a in args})
        pytest.fail(f"{name}: cannot call it on {len(args)} arguments of type {kinds} "
                    f"({error!r}). Add how to call it to library_calls.HOW (scalar=False where "
                    "it needs arrays), or exclude it in EXCLUDED saying why")


def assert_no_failures(case, failures: dict):
    """``failures``: point name -> why the engine differs from jax.grad there."""
    assert not failures, f"{case_id(case)}: engine != jax.grad at " + "; ".join(
        f"[{p}] {why}" for p, why in failures.items())


def assert_engine_refuses(name, error, run_engine):
    """jax.grad raised ``error``: the engine must refuse too, with a clear error."""
    try:
        run_engine()
    except CLEAR_ERRORS as engine_error:
        assert str(engine_error), f"{name}: the engine raised {type(engine_error)} with no message"
        return
    except Exception as engine_error:
        pytest.fail(f"{name}: jax.grad raises {error!r}; the engine raises an unclear "
                    f"{engine_error!r}")
    pytest.fail(f"{name}: jax.grad raises {error!r}; the engine returns a gradient")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_float64_arrays_match_jax_grad(case):
    name, call = case
    fn, n, shapes, domain = bind(*case)
    rng = rng_for(case_id(case))
    points = {p: tuple(point(p, s, d, rng) for s, d in zip(shapes, domain, strict=True))
              for p in call.points}
    callable_or_fail(name, fn, points["random"])
    loss = weighted_sum(fn, n, points["random"], rng)
    argnums = tuple(range(n))
    try:
        reference = compile_quick(jax.grad(loss, argnums), *points["random"])
    except Exception as error:
        assert_engine_refuses(name, error, lambda: compile_quick(
            backprop.grad(loss, argnums), *points["random"]))
        return
    engine = compile_quick(backprop.grad(loss, argnums), *points["random"])
    failures = {p: why for p, args in points.items()
                if (why := mismatch(engine(*args), reference(*args), rtol=call.rtol,
                                    atol=call.atol)) is not None}
    if failures:  # allow what jax.grad itself moves between two compilations of it
        optimized = jax.jit(jax.grad(loss, argnums))
        failures = {p: why for p in failures
                    if (why := mismatch(engine(*points[p]), reference(*points[p]),
                                        rtol=call.rtol, atol=call.atol,
                                        spread=spread(reference(*points[p]),
                                                      optimized(*points[p])))) is not None}
    assert_no_failures(case, failures)


def spread(a, b):
    """Per argument, per entry: |a - b| (two compilations of jax.grad's program)."""
    return [np.abs(np.asarray(x) - np.asarray(y)) for x, y in zip(a, b, strict=True)]


SCALAR_CASES = [c for c in CASES if c[1].scalar]
# Eagerly (op by op, as a user's first try) for the activations and losses; the special
# functions' eager runs cost seconds each in compilation, their Python-float cases run jitted.
EAGER_CASES = [c for c in SCALAR_CASES if not c[0].startswith("jax.scipy.")]


def scalar_case(case, salt):
    """``(name, call, loss, argnums, points)``: each point a tuple of Python floats."""
    name, call = case
    fn, n, shapes, domain = bind(*case)
    rng = rng_for(salt + case_id(case))
    points = {p: tuple(float(point(p, (), d, rng)) for d in domain) for p in SCALAR_POINTS}
    callable_or_fail(name, fn, points["random"])
    return name, call, weighted_sum(fn, n, points["random"], rng), tuple(range(n)), points


@pytest.mark.parametrize("case", SCALAR_CASES, ids=case_id)
def test_python_floats_match_jax_grad(case):
    """Python floats in (weakly typed float64 scalars under jit): the gradient is a weakly
    typed float64 scalar where jax.grad's is."""
    name, call, loss, argnums, points = scalar_case(case, "scalar ")
    try:
        reference = compile_quick(jax.grad(loss, argnums), *points["random"])
    except Exception as error:
        assert_engine_refuses(name, error, lambda: compile_quick(
            backprop.grad(loss, argnums), *points["random"]))
        return
    engine = compile_quick(backprop.grad(loss, argnums), *points["random"])
    failures = {p: why for p, args in points.items()
                if (why := mismatch(engine(*args), reference(*args), check_weak_type=True,
                                    rtol=call.rtol, atol=call.atol)) is not None}
    assert_no_failures(case, failures)


@pytest.mark.parametrize("case", EAGER_CASES, ids=case_id)
def test_python_floats_eagerly(case):
    """``backprop.grad(f)(0.5)`` with no jit anywhere: rules see concrete values and literals."""
    name, call, loss, argnums, points = scalar_case(case, "eager ")
    failures = {}
    for p in ("random", "zero"):
        args = points[p]
        try:
            expected = jax.grad(loss, argnums)(*args)
        except Exception as error:
            assert_engine_refuses(name, error, lambda a=args: backprop.grad(loss, argnums)(*a))
            continue
        actual = backprop.grad(loss, argnums)(*args)
        why = mismatch(actual, expected, check_weak_type=True, rtol=call.rtol, atol=call.atol)
        if why is not None:
            failures[p] = why
    assert_no_failures(case, failures)


def test_tables_name_existing_functions():
    """An entry for a function that no module has (a typo, a removed function) tests nothing."""
    stale = sorted(set(HOW) - set(FUNCTIONS) - NOT_IN_EVERY_RELEASE)
    stale += sorted(set(EXCLUDED) - set(FUNCTIONS))
    assert not stale, f"library_calls names functions the modules do not have: {stale}"


def test_enumeration_finds_the_modules_functions():
    """The cases come from inspecting the modules: if that found nothing, every parametrized
    test above would silently vanish."""
    assert len(FUNCTIONS) > 100, sorted(FUNCTIONS)
    for name in ("jax.nn.relu", "jax.scipy.special.erf", "optax.losses.softmax_cross_entropy"):
        assert name in FUNCTIONS and any(n == name for n, _ in CASES), name
    assert all(isinstance(reason, str) and reason for reason in EXCLUDED.values())
