"""How to call the distributions of ``jax.scipy.stats`` (``norm.logpdf``, ``gamma.cdf``, ...):
every public function of every distribution module, found by inspecting them, called with
one float64 (3, 4) array per positional parameter, ``loc`` and ``scale`` included, and
differentiated with respect to all of them but the integer-valued ones (counts ``k``, trial
numbers ``n``), which are fixed.

Which value each parameter gets is said by its NAME (``ARGUMENT``), with per-distribution
overrides for the support (``SUPPORT``). A new distribution or a new parameter name makes
``calls_of`` raise, naming what to add here. ``loc`` and ``scale`` stay near 0 and 1, so that
``x`` stays inside the support of the bounded distributions.
"""
from __future__ import annotations

import inspect
from types import ModuleType

import numpy as np

from tests.backprop.library_calls import Call, promoting
from tests.backprop.library_points import public_functions
from tests.backprop.matrix_specs import positive_definite
from tests.backprop.numpy_calls import POINTS, SHAPE
from tests.backprop.sampling import Sampler, normal, uniform

POS = uniform(0.2, 4.0, SHAPE)
PROB = uniform(0.05, 0.95, SHAPE)

ARGUMENT: dict[str, Sampler] = {
    "x": normal(SHAPE), "q": PROB, "p": PROB, "c": PROB,
    "loc": uniform(-0.04, 0.04, SHAPE), "scale": uniform(1.0, 1.2, SHAPE),
    "a": POS, "b": POS, "df": POS, "beta": POS, "kappa": POS, "mu": POS, "n": POS,
}
SUPPORT: dict[str, dict[str, Sampler]] = {  # distribution -> parameter -> sampler
    "beta": {"x": uniform(0.1, 0.9, SHAPE)},
    "chi2": {"x": POS}, "expon": {"x": POS}, "gamma": {"x": POS},
    "pareto": {"x": uniform(1.5, 4.0, SHAPE)},
    "uniform": {"x": uniform(0.1, 0.9, SHAPE)},
    "truncnorm": {"x": uniform(-1.0, 1.0, SHAPE), "a": uniform(-2.0, -1.5, SHAPE),
                  "b": uniform(1.5, 2.0, SHAPE)},
    "vonmises": {"x": uniform(-3.0, 3.0, SHAPE)},
    "wrapcauchy": {"x": uniform(0.1, 6.2, SHAPE)},
}
_rng = np.random.default_rng(5)
COUNTS = _rng.integers(0, 4, SHAPE).astype(np.float64)  # k: 0..3
FIXED: dict[str, dict[str, np.ndarray]] = {  # integer-valued parameters, not differentiated
    "bernoulli": {"k": (COUNTS > 1).astype(np.float64)},
    "binom": {"k": COUNTS, "n": np.full(SHAPE, 4.0)},
    "betabinom": {"k": COUNTS, "n": np.full(SHAPE, 4.0)},
    "geom": {"k": COUNTS + 1}, "nbinom": {"k": COUNTS}, "poisson": {"k": COUNTS},
}
# In the default run: each distribution's log density (CI cost); its other functions are slow.
DEFAULT_RUN = ("logpdf", "logpmf")
QUANTILE_FUNCTIONS = ("ppf", "isf")  # their first argument is a probability, whatever its name

# Multivariate distributions: vectors of length 3, a simplex, a positive definite covariance.
SIMPLEX = (lambda rng: (lambda v: v / v.sum())(rng.uniform(0.2, 1.0, (3,))))
MULTIVARIATE = {
    "dirichlet": ((SIMPLEX, uniform(0.5, 3.0, (3,))), {}),
    "multivariate_normal": ((normal((3,)), normal((3,)), positive_definite(3)), {}),
    "multinomial": ((SIMPLEX,), {"x": np.array([1, 0, 3]), "n": np.array(4)}),  # integers
}
POINTS_OF: dict[str, tuple] = {}  # a distribution whose points differ from POINTS
# poisson.entropy sums the pmf over a grid of counts, broadcasting (K, 1) against the raveled
# mu inside JAX: allowed while it traces (the strict test configuration refuses it).
PROMOTING = {"poisson.entropy"}


def positional(f) -> list[inspect.Parameter]:
    """The array parameters: positional, without a default or with a numeric one (``loc=0``),
    not flags such as ``allow_singular=None``."""
    return [p for p in inspect.signature(f).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and (p.default is p.empty or isinstance(p.default, int | float))]


def inserting(fixed: dict[int, np.ndarray], n_args: int):
    """``apply(f, *diff_args)`` that puts the fixed arguments at their positions."""
    def apply(f, *diff):
        it = iter(diff)
        return f(*(fixed[i] if i in fixed else next(it) for i in range(n_args)))

    return apply


def call_of(dist: str, fname: str, f) -> Call:
    params = positional(f)
    if dist in MULTIVARIATE:
        samplers, fixed_by_name = MULTIVARIATE[dist]
    else:
        fixed_by_name = FIXED.get(dist, {})
        samplers = []
        for i, p in enumerate(params):
            if p.name in fixed_by_name:
                continue
            if i == 0 and fname in QUANTILE_FUNCTIONS:
                samplers.append(PROB)
                continue
            sampler = SUPPORT.get(dist, {}).get(p.name, ARGUMENT.get(p.name))
            if sampler is None:
                raise KeyError(f"jax.scipy.stats.{dist}.{fname}: no sampler for its parameter "
                               f"{p.name!r}; add it to stats_calls.ARGUMENT or SUPPORT")
            samplers.append(sampler)
        samplers = tuple(samplers)
    fixed = {i: fixed_by_name[p.name] for i, p in enumerate(params) if p.name in fixed_by_name}
    shapes = tuple(np.shape(s(np.random.default_rng(0))) for s in samplers)
    apply = inserting(fixed, len(params))
    if f"{dist}.{fname}" in PROMOTING:
        apply = promoting(apply)
    return Call(apply, len(samplers), shapes, samplers, scalar=False,
                points=POINTS_OF.get(dist, POINTS))


def distributions(stats: ModuleType) -> dict[str, ModuleType]:
    return {n: m for n in sorted(dir(stats)) if inspect.ismodule(m := getattr(stats, n))
            and not n.startswith("_")}


def calls_of(stats: ModuleType) -> dict[str, tuple[Call, ...]]:
    """``{qualified name: (Call,)}`` for every function of every distribution of ``stats``."""
    return {name: (call_of(dist, name.rsplit(".", 1)[-1], f),)
            for dist, module in distributions(stats).items()
            for name, f in public_functions(module).items()}


def is_slow(name: str) -> bool:
    """Whether a distribution's function runs only with the slow tests."""
    return name.rsplit(".", 1)[-1] not in DEFAULT_RUN
