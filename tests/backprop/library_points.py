"""Pieces of the library-function tests: which public functions a module has, the points each
is evaluated at, the scalar loss built from a function's output, and the comparison with
``jax.grad``.

Points are named. Every float argument of a function gets the same special point (so a
two-argument function at "ties" has x == y), except "random", which draws each argument from
its own domain sampler.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType

import jax
import jax.numpy as jnp
import numpy as np

from tests.backprop.sampling import QUICK_COMPILE, Sampler

# Bit for bit where jax.grad is exact, within 1e-12 relative elsewhere (issue #11). NaN where
# jax.grad gives NaN, inf (same sign) where it gives inf; ATOL only absorbs denormal noise.
# Entry by entry (np.isclose, the criterion of tests/helpers.py::assert_trees_close), with a
# message that names the first differing entry even when other entries are NaN in both.
RTOL = 1e-12
ATOL = 1e-300
NOISE_ULPS = 64  # the oracle's FLOOR_ULPS: rounding noise of an entry that cancels to ~0


# --- which functions ---------------------------------------------------------------------------
def public_functions(module: ModuleType) -> dict[str, Callable]:
    """``{qualified name: function}`` for every public callable of ``module`` that is not a
    submodule or a class: a function added in a new release shows up here by itself."""
    out = {}
    for name in sorted(dir(module)):
        obj = getattr(module, name)
        if name.startswith("_") or inspect.ismodule(obj) or inspect.isclass(obj):
            continue
        if callable(obj):
            out[f"{module.__name__}.{name}"] = obj
    return out


def required_positional(f: Callable) -> int:
    """How many positional parameters ``f`` needs (those without a default)."""
    params = inspect.signature(f).parameters.values()
    return sum(p.default is inspect.Parameter.empty
               and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


# --- where ---------------------------------------------------------------------------------------
TIE_PATTERN = [0.5, 0.5, -1.0, 0.5, 2.0, 2.0, 2.0, 2.0, -0.25, 1.5, 1.5, -0.25]
WIDE_PATTERN = [-1000.0, -30.0, -1.0, 0.0, 1.0, 30.0, 1000.0, 0.5, -0.5, 2.0, -2.0, 1e-3]
CONSTANT_POINTS = {"zero": 0.0, "pos30": 30.0, "neg30": -30.0, "pos1000": 1000.0,
                   "neg1000": -1000.0}
ARRAY_POINTS = ("random", *CONSTANT_POINTS, "ties", "wide")
SCALAR_POINTS = ("random", *CONSTANT_POINTS)


def point(name: str, shape: tuple, domain: Sampler, rng: np.random.Generator) -> np.ndarray:
    """One float64 argument of shape ``shape`` at the named point. "ties" repeats values along
    the last axis (a row of equal maxima among them); "wide" mixes +-1000, +-30, 0 and small."""
    if name == "random":  # a scalar point takes the first entry of the sampler's draw
        draw = np.asarray(domain(rng), np.float64)
        return draw.reshape(-1)[0].reshape(()) if shape == () else draw.reshape(shape)
    if name in CONSTANT_POINTS:
        return np.full(shape, CONSTANT_POINTS[name])
    if name == "ties":
        return np.resize(np.asarray(TIE_PATTERN), shape)
    if name == "wide":
        return np.resize(np.asarray(WIDE_PATTERN), shape)
    raise ValueError(f"unknown point {name!r}; expected one of {ARRAY_POINTS}")


# --- what is differentiated ----------------------------------------------------------------------
def weighted_sum(fn: Callable, n_args: int, example_args, rng) -> Callable:
    """``loss(*args) = sum over output leaves of <leaf, w>`` with fixed random weights ``w``
    (real and imaginary parts weighted apart; integer and boolean leaves dropped)."""
    out_shapes = jax.tree_util.tree_leaves(jax.eval_shape(fn, *example_args))
    weights = [(rng.standard_normal(o.shape), rng.standard_normal(o.shape)) for o in out_shapes]

    def loss(*args):
        assert len(args) == n_args
        total = jnp.zeros((), jnp.float64)
        for leaf, (w_re, w_im) in zip(jax.tree_util.tree_leaves(fn(*args)), weights, strict=True):
            if jnp.issubdtype(leaf.dtype, jnp.complexfloating):
                total = total + jnp.sum(jnp.real(leaf) * w_re) + jnp.sum(jnp.imag(leaf) * w_im)
            elif jnp.issubdtype(leaf.dtype, jnp.floating):
                total = total + jnp.sum(leaf * w_re)
        return total

    return loss


def compile_quick(f: Callable, *args):
    """``jax.jit(f)`` compiled once for ``args``'s shapes, with XLA's CPU optimization passes
    off (codegen only, same HLO and numerics), so each point is one call, not one compile."""
    lowered = jax.jit(f).lower(*args)
    if jax.default_backend() == "cpu" and QUICK_COMPILE:
        try:
            return lowered.compile(QUICK_COMPILE)
        except Exception as error:  # an XLA without one of these options
            if "compile option" not in str(error):
                raise
            QUICK_COMPILE.clear()
    return lowered.compile()


# --- comparing -----------------------------------------------------------------------------------
def mismatch(actual, expected, check_weak_type: bool = False, rtol: float = RTOL,
             atol: float = ATOL, spread=None) -> str | None:
    """Why the engine's gradients ``actual`` differ from ``jax.grad``'s ``expected`` (dtype,
    weak type, shape, or a value beyond rtol/atol, NaN and inf included), or None if they
    agree. Names the first differing entry and how many differ.

    ``check_weak_type``: where jax.grad's gradient of a Python float is weakly typed, the
    engine's must be too. Not the converse: whether jax.grad's is depends on how each of its
    rules spells constants (strong for custom_jvp functions, and on JAX 0.12 for erf, celu,
    huber_loss, ...), while the engine's is weak wherever its primal is.

    Two allowances, each a measured property of jax.grad's own result, not a tolerance
    chosen to pass: an entry whose true value cancels to about 0 carries rounding noise of the
    size of the array's other terms (``NOISE_ULPS`` ulps of its largest entry, the oracle's
    floor); and ``spread`` (per argument, per entry), where given, is how far jax.grad's own
    gradient moves between two compilations of the same program, which no second
    implementation can be asked to beat.
    """
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if jnp.result_type(a) != jnp.result_type(e):
            return f"argument {i}: dtype {jnp.result_type(a)} != jax.grad's {jnp.result_type(e)}"
        if check_weak_type and getattr(e, "weak_type", False) and not getattr(a, "weak_type",
                                                                             False):
            return f"argument {i}: jax.grad's gradient is weakly typed, the engine's is not"
        a, e = np.asarray(a), np.asarray(e)
        if a.shape != e.shape:
            return f"argument {i}: shape {a.shape} != jax.grad's {e.shape}"
        finite = np.abs(e[np.isfinite(e)]) if e.dtype.kind in "fc" else np.abs(e)
        floor = NOISE_ULPS * np.finfo(np.float64).eps * (finite.max() if finite.size else 0.0)
        extra = 0.0 if spread is None else np.nan_to_num(np.asarray(spread[i]), nan=0.0,
                                                           posinf=0.0)
        bad = ~np.isclose(a, e, rtol=rtol, atol=atol + floor + extra, equal_nan=True)
        if bad.any():
            idx = tuple(int(j) for j in np.argwhere(bad)[0])
            return (f"argument {i}: {int(bad.sum())}/{bad.size} entries differ, first at {idx}: "
                    f"engine {a[idx]!r}, jax.grad {e[idx]!r}")
    return None
