"""Every public function of ``jax.numpy``, ``jax.numpy.linalg``, ``jax.numpy.fft``,
``jax.scipy.linalg`` and ``jax.scipy.stats`` (its distributions' logpdf/cdf/... included),
found by inspecting the modules, so a function added in a new release is covered without a
code change: the engine's gradient of ``sum(f(x) * w)`` against ``jax.grad``'s, in float64,
at a random point of the function's domain, at 0 and at ties (``numpy_calls.POINTS``).

The standard is test_library_functions's (issue #11): bit for bit where jax.grad is exact,
within 1e-12 relative elsewhere, NaN where jax.grad gives NaN, inf where it gives inf, the
same dtype; where jax.grad cannot differentiate a function, the engine must raise a clear
error. To keep CI bounded (~550 functions), each case is ONE compilation of a program that
computes both gradients, run at each point; jit only (no eager, no Python-float cases); the
distributions' functions other than their log density, and expm, run with the slow tests.

How to call each function, and the exclusions with their reasons: ``numpy_calls``,
``numpy_linalg_calls`` and ``stats_calls``. Points and the comparison: ``library_points``.
Known differences from jax.grad, each with its reason, are strict xfails (``KNOWN``).
"""
from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import backprop
from tests.backprop.library_calls import Call
from tests.backprop.library_points import (
    compile_quick,
    mismatch,
    point,
    public_functions,
    required_positional,
    weighted_sum,
)
from tests.backprop.numpy_calls import JNP, JNP_EXCLUDED, JNP_NOT_IN_EVERY_RELEASE, SHAPE
from tests.backprop.numpy_calls import POINTS as DEFAULT_POINTS
from tests.backprop.numpy_linalg_calls import (
    FFT,
    LINALG,
    SCIPY_LINALG,
    SCIPY_LINALG_EXCLUDED,
    SCIPY_LINALG_SLOW,
    SQ,
    square_or_normal,
)
from tests.backprop.sampling import normal, rng_for
from tests.backprop.stats_calls import calls_of, distributions, is_slow

JAX_VERSION = tuple(int(p) for p in jax.__version__.split(".")[:2])
STATS = jax.scipy.stats


class Module(NamedTuple):
    """A module whose public functions are enumerated, with its calling table (keys: the
    function's name in the module), its exclusions, and the default call's argument."""

    module: ModuleType
    how: dict
    excluded: dict
    shape: tuple = SHAPE
    domain: Callable = normal  # shape -> sampler


MODULES = (
    Module(jnp, JNP, JNP_EXCLUDED), Module(jnp.linalg, LINALG, {}), Module(jnp.fft, FFT, {}),
    Module(jax.scipy.linalg, SCIPY_LINALG, SCIPY_LINALG_EXCLUDED, SQ, square_or_normal),
    Module(STATS, {}, {}),
    *(Module(m, {}, {}) for m in distributions(STATS).values()),
)
OWNER = {name: m for m in MODULES for name in public_functions(m.module)}
FUNCTIONS = {name: f for m in MODULES for name, f in public_functions(m.module).items()}
HOW = {f"{m.module.__name__}.{k}": v for m in MODULES for k, v in m.how.items()}
STATS_HOW = calls_of(STATS)
HOW |= STATS_HOW
EXCLUDED = {f"{m.module.__name__}.{k}": v for m in MODULES for k, v in m.excluded.items()}
NOT_IN_EVERY_RELEASE = {f"jax.numpy.{k}" for k in JNP_NOT_IN_EVERY_RELEASE}
DEFAULT = (Call(scalar=False, points=DEFAULT_POINTS),)

# Known differences from jax.grad: case id -> (JAX versions [lo, hi), reason). Strict xfail:
# a case turns red when the difference goes, and its entry goes with it. (jnp.ldexp and
# jnp.frexp on JAX 0.12, call_hi_primitive, were here until rules/hijax.py.)
RAW_CHOLESKY = ("JAX 0.10 differentiates the cholesky primitive as if it read all of its "
                "input (it reads the lower triangle); the engine gives the true derivative, "
                "as JAX >= 0.11 (deliberate: test_rules_decompositions.RAW_CHOLESKY_LIKE_JAX)")
KNOWN: dict[str, tuple[tuple[int, int], tuple[int, int], str]] = {
    "jax.scipy.linalg.cholesky": ((0, 0), (0, 11), RAW_CHOLESKY),
    "jax.scipy.linalg.cholesky[lower]": ((0, 0), (0, 11), RAW_CHOLESKY),
    "jax.scipy.linalg.cho_factor": ((0, 0), (0, 11), RAW_CHOLESKY),
}
# Errors that say what is wrong with a request (MissingRuleError is a NotImplementedError).
CLEAR_ERRORS = (TypeError, ValueError, NotImplementedError)


def case_id(case) -> str:
    name, call = case
    return name if call.label == "default" else f"{name}[{call.label}]"


SLOW = {f"jax.scipy.linalg.{n}" for n in SCIPY_LINALG_SLOW}
SLOW |= {n for n in STATS_HOW if is_slow(n)}


def marks(case) -> list:
    found = [pytest.mark.slow] if case[0] in SLOW else []
    known = KNOWN.get(case_id(case))
    if known and known[0] <= JAX_VERSION < known[1]:
        found.append(pytest.mark.xfail(strict=True, reason=known[2]))
    return found


CASES = [(name, call) for name in FUNCTIONS if name not in EXCLUDED
         for call in HOW.get(name, DEFAULT)]
PARAMS = [pytest.param(c, id=case_id(c), marks=marks(c)) for c in CASES]


def n_inputs(f) -> int:
    """A ``jnp.ufunc`` takes ``nin`` arrays (its signature is ``*args``); else the required
    positional parameters."""
    return f.nin if isinstance(f, jnp.ufunc) else required_positional(f)


def bind(name: str, call: Call):
    """``(fn(*diff_args), n_diff, shapes, domain)`` for one case."""
    f = FUNCTIONS[name]
    n = call.n_diff if call.n_diff is not None else n_inputs(f)
    fn = (lambda *x: f(*x)) if call.apply is None else (lambda *x: call.apply(f, *x))
    shapes = call.shapes or (OWNER[name].shape,) * n
    domain = call.domain or tuple(OWNER[name].domain(s) for s in shapes)
    return fn, n, shapes, domain


def callable_or_fail(name, fn, args):
    try:
        jax.eval_shape(fn, *args)
    except Exception as error:
        pytest.fail(f"{name}: cannot call it on {len(args)} float64 arrays of shapes "
                    f"{[np.shape(a) for a in args]} ({error!r}). Add how to call it to "
                    "numpy_calls.JNP (or numpy_linalg_calls), or exclude it in JNP_EXCLUDED "
                    "saying why")


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


@pytest.mark.parametrize("case", PARAMS)
def test_float64_matches_jax_grad(case):
    name, call = case
    fn, n, shapes, domain = bind(*case)
    rng = rng_for("jnp " + case_id(case))
    points = {p: tuple(point(p, s, d, rng) for s, d in zip(shapes, domain, strict=True))
              for p in call.points}
    callable_or_fail(name, fn, points["random"])
    loss = weighted_sum(fn, n, points["random"], rng)
    argnums = tuple(range(n))
    try:
        jax.eval_shape(jax.grad(loss, argnums), *points["random"])
    except AssertionError:  # the test's own (weighted_sum's argument count): a table bug
        raise
    except Exception as error:
        assert_engine_refuses(name, error, lambda: jax.eval_shape(
            backprop.grad(loss, argnums), *points["random"]))
        return
    both = compile_quick(lambda *x: (backprop.grad(loss, argnums)(*x),
                                     jax.grad(loss, argnums)(*x)), *points["random"])
    results = {p: both(*args) for p, args in points.items()}
    failures = {p: why for p, (engine, reference) in results.items()
                if (why := mismatch(engine, reference, rtol=call.rtol,
                                    atol=call.atol)) is not None}
    if failures:  # allow what jax.grad itself moves between two compilations of it
        optimized = jax.jit(jax.grad(loss, argnums))
        failures = {p: why for p in failures
                    if (why := mismatch(*results[p], rtol=call.rtol, atol=call.atol,
                                        spread=spread(results[p][1],
                                                      optimized(*points[p])))) is not None}
    assert not failures, f"{case_id(case)}: engine != jax.grad at " + "; ".join(
        f"[{p}] {why}" for p, why in failures.items())


def spread(a, b):
    """Per argument, per entry: |a - b| (two compilations of jax.grad's program; inf - inf
    counts as no spread: mismatch compares infinities exactly)."""
    with np.errstate(invalid="ignore"):
        return [np.abs(np.asarray(x) - np.asarray(y)) for x, y in zip(a, b, strict=True)]


def test_tables_name_existing_functions():
    """An entry for a function that no module has (a typo, a removed function) tests nothing."""
    stale = sorted(set(HOW) - set(FUNCTIONS) - NOT_IN_EVERY_RELEASE)
    stale += sorted(set(EXCLUDED) - set(FUNCTIONS))
    stale += sorted(SLOW - set(FUNCTIONS)) + sorted(set(KNOWN) - {case_id(c) for c in CASES})
    assert not stale, f"numpy_calls names functions the modules do not have: {stale}"


def test_enumeration_finds_the_modules_functions():
    """The cases come from inspecting the modules: if that found nothing, every parametrized
    test above would silently vanish."""
    assert len(FUNCTIONS) > 500, len(FUNCTIONS)
    for name in ("jax.numpy.sin", "jax.numpy.add", "jax.numpy.linalg.solve", "jax.numpy.fft.fft",
                 "jax.scipy.linalg.expm", "jax.scipy.stats.norm.logpdf"):
        assert name in FUNCTIONS and any(n == name for n, _ in CASES), name
    assert all(isinstance(reason, str) and reason for reason in EXCLUDED.values())

