"""What a reference case is: ``Spec`` (how to build it) and ``Case`` (one spec in one dtype).

A spec's ``build(rng)`` returns a ``Built``: the function ``fn(params, inputs) -> {name:
array}``, float64 NumPy params and inputs drawn from ``rng`` (a ``numpy.random.Generator``
seeded from the case's name, so the same on every machine), and, for models, the probes.
The float32 case of a spec rounds exactly those arrays to float32.

Example:
    >>> case = oracle.cases.get("layer.dense.f64")
    >>> case.params["w"].shape, case.inputs["x"].shape     # (5, 3), (4, 5)
    >>> golden = case.reference()                          # {"outputs/y": ..., ...}
"""
from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import numpy as np

from oracle.tolerance import ATOL_FLOOR, rtol_for

DTYPES = {"f64": "float64", "f32": "float32"}
KINDS = ("activation", "loss", "layer", "model", "training", "example")


@dataclass
class Training:
    """Plain SGD on minibatches: step k uses rows [k * batch_size, (k + 1) * batch_size)."""

    loss: Callable  # loss(params, inputs_minibatch) -> scalar
    steps: int
    learning_rate: float
    batch_size: int


@dataclass
class Built:
    """A case's function and float64 arrays (see the module docstring)."""

    fn: Callable
    params: dict
    inputs: dict
    cotangents: dict | None = None  # None: 1 for a scalar output, else seeded normal
    probes: tuple = ()  # top-level layer names in forward order (model cases)
    probe_fn: Callable | None = None  # (params, inputs, probes) -> {"loss": scalar}
    probe_values: Callable | None = None  # (params, inputs) -> {layer name: output}
    training: Training | None = None
    kinks: tuple = ()
    convention: str | None = None  # kink cases: the CONVENTIONS key their kinks pin


@dataclass(frozen=True)
class Spec:
    base: str
    kind: str
    description: str
    config: dict = field(hash=False)
    build: Callable = field(hash=False, compare=False)
    depth: str = "shallow"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"case {self.base}: kind {self.kind!r} not in {KINDS}")


@functools.cache
def built(spec: Spec) -> Built:
    """Build a spec once (float64), shared by its float64 and float32 cases."""
    rng = np.random.default_rng(zlib.crc32(spec.base.encode()))
    return spec.build(rng)


def _cast(tree, dtype):
    def cast(x):
        x = np.asarray(x)
        return x.astype(dtype) if np.issubdtype(x.dtype, np.floating) else x
    return jax.tree_util.tree_map(cast, tree)


@dataclass(frozen=True)
class Case:
    """One reference case in one dtype, e.g. ``layer.conv2d.stride2_same.f32``."""

    spec: Spec
    dtype: str  # "float64" | "float32"

    @property
    def name(self) -> str:
        return f"{self.spec.base}.{'f64' if self.dtype == 'float64' else 'f32'}"

    kind = property(lambda self: self.spec.kind)
    description = property(lambda self: self.spec.description)
    config = property(lambda self: self.spec.config)
    depth = property(lambda self: self.spec.depth)

    def __str__(self):
        return self.name

    def __repr__(self):
        return f"Case({self.name})"

    @property
    def built(self) -> Built:
        return built(self.spec)

    @property
    def fn(self) -> Callable:
        """``fn(params, inputs) -> {output name: array}``."""
        return self.built.fn

    @property
    def params(self) -> dict:
        return _cast(self.built.params, self.dtype)

    @property
    def inputs(self) -> dict:
        return _cast(self.built.inputs, self.dtype)

    @property
    def probes(self) -> tuple:
        return self.built.probes

    @property
    def tolerance(self) -> dict:
        """``{"rtol", "atol"}``: the defaults ``verify`` applies (``oracle.tolerance``)."""
        return {"rtol": rtol_for(self.dtype, self.depth), "atol": ATOL_FLOOR[self.dtype]}

    def cotangents(self) -> dict:
        """The output cotangents, in the case's dtype."""
        from oracle.reference import cotangents
        return cotangents(self)

    def reference(self) -> dict:
        """The golden arrays ``{key: numpy array}`` (format funcnn-oracle/1 keys)."""
        from oracle.reference import reference
        return reference(self)

    def check(self, **kwargs):
        """``check_grads`` on this case (engine vs jax vs finite differences): a ``Report``."""
        from oracle.reference import check_case
        return check_case(self, **kwargs)

    def compare(self, results: dict):
        """Compare ``{key: array}`` results (another implementation's) with the golden
        values, as ``verify`` does; returns an ``oracle.verify.CaseResult``."""
        from oracle.tolerance import key_atols
        from oracle.verify import compare_case
        golden = self.reference()
        tolerance = self.tolerance
        return compare_case(self.name, golden, results, tolerance,
                            key_atols(golden, self.dtype, tolerance["rtol"]), probes=self.probes)

    def assert_matches(self, results: dict):
        """Raise ``AssertionError`` with the comparison table unless ``results`` pass."""
        verdict = self.compare(results)
        if not verdict.ok:
            raise AssertionError(verdict.table())
        return verdict


_JITTED: dict = {}


def jitted(fn):
    """``jax.jit(fn)``, one per function, so that every use shares its compilations."""
    if fn not in _JITTED:
        _JITTED[fn] = jax.jit(fn)
    return _JITTED[fn]


def draw_params(rng, shapes) -> dict:
    """Fill a pytree of shapes (``jax.ShapeDtypeStruct``) with float64 draws: N(0, 1/fan_in)
    for a weight of rank >= 2 (fan_in = product of all but the last axis), 1 + N(0, 0.1^2)
    for a layer norm ``scale``, N(0, 0.5^2) for other vectors."""

    def draw(path, leaf):
        shape = tuple(leaf.shape)
        last = str(getattr(path[-1], "key", "")) if path else ""
        if len(shape) >= 2:
            return rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))
        if last == "scale":
            return 1.0 + 0.1 * rng.standard_normal(shape)
        return 0.5 * rng.standard_normal(shape)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def away_from(rng, shape, kinks=(0.0,), margin=0.05, scale=1.0):
    """Standard normal * scale, pushed at least ``margin`` away from each kink point."""
    x = scale * rng.standard_normal(shape)
    for k in kinks:
        d = x - k
        x = np.where(np.abs(d) < margin, k + np.where(d >= 0, 1, -1) * (margin + np.abs(d)), x)
    return x
