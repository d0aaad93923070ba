"""What a reference case is: ``Spec`` (how to build it) and ``Case`` (one spec in one dtype).

A spec's ``build(rng)`` returns a ``Built``: the function ``fn(params, inputs) -> {name:
array}``, float64 NumPy params and inputs drawn from ``rng`` (a ``numpy.random.Generator``
seeded from the case's name, so the same on every machine), and, for models, the probes.
The float32 case of a spec rounds exactly those arrays to float32; the opt-in float16 and
bfloat16 cases (``LOW_PRECISION``) round them to those dtypes.

A case is data: what the function is, its arrays, probes and written-out spec. It knows
nothing of how it is checked or verified; that is ``oracle.reference`` (golden values, the
three-way check) and ``oracle.verify`` (``oracle.api`` has both as functions of a case, and
``oracle`` also makes them methods: ``case.reference()``, ``case.compare(results)``).

Example:
    >>> case = oracle.cases.get("layer.dense.f64")
    >>> case.params["w"].shape, case.inputs["x"].shape     # (5, 3), (4, 5)
    >>> case.function_spec["function"]                     # ["y = x @ w + b", ...]
"""
from __future__ import annotations

import fnmatch
import functools
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import numpy as np

from oracle.tolerance import ATOL_FLOOR, rtol_for

DTYPES = {"f64": "float64", "f32": "float32", "f16": "float16", "bf16": "bfloat16"}
DEFAULT_DTYPES = ("float64", "float32")
LOW_PRECISION = ("float16", "bfloat16")  # opt-in: oracle.cases.all(dtypes=["bf16"])
# How arrays of a dtype are stored in a golden archive: .npy has no bfloat16, so a bfloat16
# case stores float32 arrays that hold bfloat16 values exactly (results likewise).
STORAGE = {"bfloat16": "float32"}


def numpy_dtype(name: str):
    """The NumPy dtype called ``name`` (bfloat16 from ml_dtypes, which JAX brings)."""
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)
KINDS = ("activation", "loss", "layer", "model", "training", "example", "linalg", "fft", "top_k")


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
    probe_graph: dict | None = None  # {probe: [what it is computed from]}; None: a chain
    probe_axes: dict | None = None  # {probe: [axis names]}
    step_scale: float | None = None  # finite-difference step scale (check_grads), if not |x|


@dataclass(frozen=True)
class Spec:
    base: str
    kind: str
    description: str
    config: dict = field(hash=False)
    build: Callable = field(hash=False, compare=False)
    depth: str = "shallow"
    written: dict = field(default_factory=dict, hash=False, compare=False)  # see cases.written

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"case {self.base}: kind {self.kind!r} not in {KINDS}")


@functools.cache
def built(spec: Spec) -> Built:
    """Build a spec once (float64), shared by its float64 and float32 cases."""
    rng = np.random.default_rng(zlib.crc32(spec.base.encode()))
    return spec.build(rng)


@dataclass(frozen=True)
class Case:
    """One reference case in one dtype, e.g. ``layer.conv2d.stride2_same.f32``."""

    spec: Spec
    dtype: str  # "float64" | "float32" | "float16" | "bfloat16"

    @property
    def name(self) -> str:
        short = next(k for k, v in DTYPES.items() if v == self.dtype)
        return f"{self.spec.base}.{short}"

    @property
    def storage_dtype(self) -> str:
        """The dtype of the case's float arrays in an archive (``STORAGE``)."""
        return STORAGE.get(self.dtype, self.dtype)

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
        return to_dtype(self.built.params, numpy_dtype(self.dtype))

    @property
    def inputs(self) -> dict:
        return to_dtype(self.built.inputs, numpy_dtype(self.dtype))

    @property
    def probes(self) -> tuple:
        return self.built.probes

    @property
    def kappa(self) -> float:
        """The case's condition number (``config["kappa"]``, 1 where it names none)."""
        return float(self.config.get("kappa", 1.0))

    @property
    def tolerance(self) -> dict:
        """``{"rtol", "atol"}`` (and ``"kappa"`` where the config names one): the defaults
        ``verify`` applies (``oracle.tolerance``)."""
        tol = {"rtol": rtol_for(self.dtype, self.depth, self.kappa),
               "atol": ATOL_FLOOR[self.dtype]}
        return tol | ({"kappa": self.kappa} if "kappa" in self.config else {})

    @property
    def probe_graph(self) -> dict:
        """``{probe: [what it is computed from]}`` (a chain where the case gives none)."""
        b = self.built
        if b.probe_graph is not None:
            return b.probe_graph
        return {p: [b.probes[i - 1]] if i else ["inputs"] for i, p in enumerate(b.probes)}

    @property
    def probe_axes(self) -> dict:
        return dict(self.built.probe_axes or {})

    def cotangents(self) -> dict:
        """The output cotangents in the case's dtype: as the case gives them, else 1 for a
        scalar output and standard normal from ``default_rng(crc32(base + "/cotangents"))``
        for an array output."""
        b = self.built
        dtype = numpy_dtype(self.dtype)
        if b.cotangents is not None:
            return to_dtype(b.cotangents, dtype)
        with jax.enable_x64(True):
            shapes = jax.eval_shape(b.fn, to_dtype(b.params, np.float64),
                                    to_dtype(b.inputs, np.float64))
        rng = np.random.default_rng(zlib.crc32((self.spec.base + "/cotangents").encode()))
        return {k: (np.ones((), dtype) if v.shape == () else
                    rng.standard_normal(v.shape).astype(dtype)) for k, v in shapes.items()}

    @property
    def function_spec(self) -> dict:
        """The case's written-out function (the manifest's ``spec``): the family's text with
        the shape and dtype of every ``params/`` and ``inputs/`` key filled in."""
        written = dict(self.spec.written)
        for group, tree in (("parameters", self.params), ("inputs", self.inputs)):
            roles = written.get(group, {})
            prefix = "params" if group == "parameters" else "inputs"
            filled = {k: _describe(k, v, roles) for k, v in flat_keys(prefix, tree).items()}
            if filled:
                written[group] = filled
            else:
                written.pop(group, None)
        return written


def _describe(key, array, roles) -> str:
    role = roles.get(key) or next((r for pattern, r in roles.items()
                                   if fnmatch.fnmatchcase(key, pattern)), "")
    return f"{list(array.shape)} {array.dtype}" + (f": {role}" if role else "")


def to_dtype(tree, dtype):
    """Every float leaf of ``tree`` as a NumPy array of ``dtype``; integer leaves kept."""
    def cast(x):
        x = np.asarray(x)
        return x.astype(dtype) if _is_float_dtype(x.dtype) else x
    return jax.tree_util.tree_map(cast, tree)


def _is_float_dtype(dtype) -> bool:
    return np.issubdtype(dtype, np.floating) or dtype == numpy_dtype("bfloat16")


def flat_keys(prefix, tree) -> dict:
    """``{"prefix/a/b": leaf}`` for a pytree of dicts (empty dicts contribute nothing)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]
        out["/".join([prefix] + parts)] = np.asarray(leaf)
    return out


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
