"""What each VJP rule does with each param of its primitive, and the programs that show it.

``PARAMS[prim][param]`` is ``USED`` (the rule reads it) or the reason the param cannot change
the cotangent. ``EXAMPLES[prim]`` is a small program that binds ``prim`` (traced to read the
params JAX binds); ``CASES`` run the used params at values other than the example's, against
``jax.vjp``. Rules made by ``defnograd`` have no entry: they give no cotangent whatever their
params. Used by test_rule_params.py.
"""
from __future__ import annotations

import sys
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import lax
from jax._src import ad_util
from jax.extend import core as jcore

from tests.backprop.sampling import Sampler, const, distinct, normal, uniform


def jax_primitives() -> set[str]:
    """The names of the primitives the JAX running the tests defines (its loaded modules)."""
    names = set()
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] == "jax" and module is not None:
            names.update(v.name for v in list(vars(module).values())
                         if isinstance(v, jcore.Primitive))
    return names


PRIMITIVES = jax_primitives()
USED = "read by the rule"
SHARDING = "places the result on devices; no effect on values"
SHAPE_OF_CT = "the cotangent comes with the output's shape; the rule needs only the operand's"
NO_ACCURACY = "JAX's derivative does not depend on it either (the rule's formula is JAX's)"
COMBINER = "the scatter's kind (add, mul, min, max) fixes its combiner; this is its jaxpr"

UNARY_ACCURACY_USED = ("expm1", "tanh", "logistic", "sin", "cos")
UNARY_ACCURACY_INERT = ("exp", "exp2", "log", "log1p", "sqrt", "rsqrt", "cbrt", "tan", "log2",
                        "erfc")  # erfc's: JAX >= 0.12
UNARY_NO_PARAMS = ("square", "abs", "sign", "asin", "acos", "atan", "sinh", "cosh", "asinh",
                   "acosh", "atanh", "erf", "erf_inv", "lgamma", "digamma",
                   "one_minus_square", "neg", "copy", "real")
BINARY_NO_PARAMS = ("add", "add_any", "sub", "div", "max", "min", "pow", "atan2", "rem",
                    "nextafter")  # nextafter: a rule on JAX >= 0.12 only
WINDOW = dict.fromkeys(("window_dimensions", "window_strides", "padding", "base_dilation",
                        "window_dilation"), USED)
SCATTER = dict(dimension_numbers=USED, mode=USED, indices_are_sorted=USED,
               unique_indices=USED, update_jaxpr=COMBINER, update_consts=COMBINER)

PARAMS: dict[str, dict[str, str]] = {
    **{n: {"accuracy": USED} for n in UNARY_ACCURACY_USED},
    **{n: {"accuracy": NO_ACCURACY} for n in UNARY_ACCURACY_INERT},
    **{n: {} for n in UNARY_NO_PARAMS + BINARY_NO_PARAMS},
    "select_n": {}, "clamp": {}, "optimization_barrier": {},
    "integer_pow": {"y": USED},
    "reduce_precision": {"exponent_bits": USED, "mantissa_bits": USED},
    "convert_element_type": {
        "new_dtype": "the cotangent comes in it (the output's dtype); the rule casts it back "
                     "to the operand's", "weak_type": "a typing flag on the output",
        "sharding": SHARDING},
    "mul": {"out_dtype": USED},
    "polynomial": {"unroll": USED},
    # structural
    "broadcast_in_dim": {"shape": USED, "broadcast_dimensions": USED, "sharding": SHARDING},
    "reshape": {"new_sizes": SHAPE_OF_CT, "dimensions": USED, "sharding": SHARDING},
    "squeeze": {"dimensions": SHAPE_OF_CT},
    "transpose": {"permutation": USED},
    "rev": {"dimensions": USED},
    "concatenate": {"dimension": USED},
    "stack": {"axis": USED},
    "unstack": {"axis": USED},
    "split": {"sizes": USED, "axis": USED},
    "tile": {"reps": USED},
    "pad": {"padding_config": USED},
    "slice": {"start_indices": USED, "limit_indices": USED, "strides": USED},
    "dynamic_slice": {"slice_sizes": USED},
    "dynamic_update_slice": {},
    # reductions
    "reduce_sum": {"axes": USED, "out_sharding": SHARDING},
    "reduce_max": {"axes": USED, "out_sharding": SHARDING},
    "reduce_min": {"axes": USED, "out_sharding": SHARDING},
    "reduce_prod": {"axes": USED, "out_sharding": SHARDING},
    **{n: {"axis": USED, "reverse": USED}
       for n in ("cumsum", "cummax", "cummin", "cumprod", "cumlogsumexp")},
    "sort": {"dimension": USED, "is_stable": USED, "num_keys": USED},
    # indexing
    "gather": {"dimension_numbers": USED, "mode": USED, "indices_are_sorted": USED,
               "unique_indices": USED, "slice_sizes": SHAPE_OF_CT,
               "fill_value": "a filled position reads no operand element, so gets nothing"},
    **{n: SCATTER for n in ("scatter-add", "scatter-sub", "scatter-mul", "scatter-min",
                            "scatter-max")},
    "scatter": {**SCATTER, "update_jaxpr": "None for .set; an update function (.apply) "
                "raises NotImplementedError (test_rules_indexing.py)"},
    # linalg, conv, windows
    "dot_general": {"dimension_numbers": USED, "precision": USED,
                    "preferred_element_type": USED, "out_sharding": SHARDING},
    "ragged_dot_general": {
        "ragged_dot_dimension_numbers": USED, "precision": USED, "preferred_element_type": USED,
        "group_offset": "JAX cannot evaluate a ragged dot with it (its implementation raises); "
                        "the rule raises NotImplementedError (test_rules_ragged.py)",
        "out_sharding": SHARDING},
    "conv_general_dilated": {
        **dict.fromkeys(("window_strides", "padding", "lhs_dilation", "rhs_dilation",
                         "dimension_numbers", "feature_group_count", "batch_group_count",
                         "precision", "preferred_element_type"), USED),
        "out_sharding": SHARDING},
    "reduce_window_sum": WINDOW, "reduce_window_max": WINDOW, "reduce_window_min": WINDOW,
    "reduce_window": {**WINDOW, "jaxpr": USED,
                      "consts": "a reducer with constants raises NotImplementedError"},
}

# Rule modules written while this table was (decompositions, FFT, complex parts, sharding, ...):
# their entries are owed by their authors. A module not named here must have its entries.
NOT_YET_TABLED = {"complex", "decompositions", "fft", "generic_reduce", "integer", "linear_solve",
                  "markers", "matrices", "random", "selection", "shard_map", "sharding",
                  "solves", "special", "spectral"}

# Names with a rule that no primitive of the JAX running the tests has: older spellings.
OTHER_VERSIONS = {"copy_p", "expand_dims", "scatter_add", "scatter_sub", "scatter_mul",
                  "scatter_min", "scatter_max"}


# --- one program per primitive --------------------------------------------------------------
M = (3, 4)
N = normal(M)
IDX = const(np.array([2, 0, 2]))
OOB = const(np.array([4, -5, 1, 0]))  # out of bounds for 3 rows


def unary(name):
    return lambda x: getattr(lax, name)(x)


def at(kind, **flags):
    """``x.at[idx].<kind>(u, **flags)``: a scatter of that kind."""
    return lambda x, idx, u: getattr(x.at[idx], kind)(u, **flags)


def window(op, init, **kw):
    config = dict(window_dimensions=(2, 2), window_strides=(1, 1), padding=((0, 0), (0, 0)))
    config.update(kw)
    return lambda x: lax.reduce_window(x, init, op, **config)


CONV_DN = ("NCHW", "OIHW", "NCHW")
EXAMPLES: dict[str, tuple] = {
    **{n: (unary(n), (uniform(0.2, 0.8, M),)) for n in
       UNARY_ACCURACY_USED + UNARY_ACCURACY_INERT + UNARY_NO_PARAMS
       if n not in ("neg", "copy", "real", "acosh")},
    "acosh": (unary("acosh"), (uniform(1.2, 3.0, M),)),
    "neg": (lax.neg, (N,)),
    "copy": (lambda x: lax.copy_p.bind(x), (N,)),
    "real": (lax.real, (lambda rng: N(rng) + 1j * N(rng),)),
    **{n: (getattr(lax, n), (uniform(0.5, 2.0, M), uniform(0.5, 2.0, M)))
       for n in BINARY_NO_PARAMS if n != "add_any"},
    "add_any": (lambda x, y: ad_util.add_jaxvals_p.bind(x, y), (N, N)),
    "select_n": (lambda x, y: lax.select_n(x > y, x, y), (N, N)),
    "clamp": (lambda x: lax.clamp(-0.5, x, 0.5), (N,)),
    "optimization_barrier": (lambda x, y: lax.optimization_barrier((x, y))[0] * y, (N, N)),
    "integer_pow": (lambda x: lax.integer_pow(x, 3), (N,)),
    "reduce_precision": (lambda x: lax.reduce_precision(x, 11, 52), (N,)),
    "convert_element_type": (lambda x: x.astype(jnp.float32), (N,)),
    "mul": (lax.mul, (N, N)),
    "polynomial": (lambda x: lax.polynomial(x, [1.0, 2.0, x, -1.0], unroll=8), (N,)),
    "broadcast_in_dim": (lambda x: lax.broadcast_in_dim(x, (2, 3, 4), (1, 2)), (N,)),
    "reshape": (lambda x: lax.reshape(x, (4, 3)), (N,)),
    "squeeze": (lambda x: lax.squeeze(x, (0,)), (normal((1, 3)),)),
    "transpose": (lambda x: lax.transpose(x, (1, 0)), (N,)),
    "rev": (lambda x: lax.rev(x, (0,)), (N,)),
    "concatenate": (lambda x, y: lax.concatenate([x, y], 0), (N, N)),
    "stack": (lambda x, y: jnp.stack([x, y]), (N, N)),
    "unstack": (lambda x: jnp.unstack(x)[1], (N,)),
    "split": (lambda x: jnp.split(x, [1], axis=1)[1], (N,)),
    "tile": (lambda x: jnp.tile(x, (2, 1)), (N,)),
    "pad": (lambda x: lax.pad(x, 0.0, [(0, 0, 0), (1, 0, 0)]), (N,)),
    "slice": (lambda x: lax.slice(x, (0, 0), (2, 2)), (N,)),
    "dynamic_slice": (lambda x: lax.dynamic_slice(x, (0, 1), (2, 2)), (N,)),
    "dynamic_update_slice": (lambda x, u: lax.dynamic_update_slice(x, u, (1, 1)),
                             (N, normal((2, 2)))),
    "reduce_sum": (lambda x: x.sum(0), (N,)),
    "reduce_max": (lambda x: x.max(0), (distinct(M),)),
    "reduce_min": (lambda x: x.min(0), (distinct(M),)),
    "reduce_prod": (lambda x: x.prod(0), (N,)),
    **{n: ((lambda name: lambda x: getattr(lax, name)(x, axis=1))(n), (distinct(M),))
       for n in ("cumsum", "cummax", "cummin", "cumprod", "cumlogsumexp")},
    "sort": (lambda x: lax.sort(x), (distinct(M),)),
    "gather": (lambda x, i: x[i], (N, IDX)),
    **{f"scatter-{k}": (at(m), (N, IDX, normal((3, 4))))
       for k, m in (("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                    ("min", "min"), ("max", "max"))},
    "scatter": (at("set"), (N, IDX, normal((3, 4)))),
    "dot_general": (lambda x, y: x @ y, (N, normal((4, 2)))),
    "ragged_dot_general": (lambda x, y: lax.ragged_dot(x, y, np.array([2, 0, 1], np.int32)),
                           (N, normal((3, 4, 2)))),
    "conv_general_dilated": (
        lambda x, k: lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=CONV_DN),
        (normal((1, 2, 5, 5)), normal((4, 2, 3, 3)))),
    "reduce_window_sum": (window(lax.add, 0.0), (N,)),
    "reduce_window_max": (window(lax.max, -jnp.inf), (distinct(M),)),
    "reduce_window_min": (window(lax.min, jnp.inf), (distinct(M),)),
    "reduce_window": (window(lax.add, 1.0), (N,)),
}


# --- the used params at other values, against jax.vjp -------------------------------------------
class Case(NamedTuple):
    prim: str
    params: tuple[str, ...]  # the params this case binds at values other than the example's
    f: object
    args: tuple[Sampler, ...]
    rtol: float = 1e-10
    fd: bool = True
    against_jax: bool = True  # False where JAX cannot differentiate it: finite differences


HIGHEST = lax.AccuracyMode.HIGHEST
CLIP = {"mode": "clip"}
RAGGED_BATCHED = lax.RaggedDotDimensionNumbers(  # x [b, m, k], y [b, k, g, n], sizes [b, g]
    dot_dimension_numbers=(((2,), (1,)), ((0,), (0,))), lhs_ragged_dimensions=[1],
    rhs_group_dimensions=[2])
F32 = np.float32
TAILS = uniform(7.5, 9.0, (4,), F32)  # tanh(x) rounds to 1 in float32: only HIGHEST is exact
BF16 = (lambda shape: lambda rng: normal(shape)(rng).astype(jnp.bfloat16))
CASES: list[Case] = [
    Case("tanh", ("accuracy",), lambda x: lax.tanh(x, accuracy=HIGHEST), (TAILS,), 1e-5, False),
    Case("logistic", ("accuracy",), lambda x: lax.logistic(2 * x, accuracy=HIGHEST), (TAILS,),
         1e-5, False),
    Case("expm1", ("accuracy",), lambda x: lax.expm1(x, accuracy=HIGHEST), (N,)),
    Case("sin", ("accuracy",), lambda x: lax.sin(x, accuracy=HIGHEST), (N,)),
    Case("cos", ("accuracy",), lambda x: lax.cos(x, accuracy=HIGHEST), (N,)),
    Case("integer_pow", ("y",), lambda x: lax.integer_pow(x, -2), (uniform(0.5, 2.0, M),)),
    Case("reduce_precision", ("exponent_bits", "mantissa_bits"),
         lambda x: lax.reduce_precision(x, 5, 2), (N,), fd=False),
    Case("mul", ("out_dtype",), lambda x, y: lax.mul(x, y, out_dtype=jnp.float32),
         (BF16(M), BF16(M)), fd=False),
    Case("polynomial", ("unroll",),
         lambda x: lax.polynomial(x, [1.0, -2.0, x, 0.5, 0.25, -0.125], unroll=2), (N,)),
    Case("broadcast_in_dim", ("shape", "broadcast_dimensions"),
         lambda x: lax.broadcast_in_dim(x, (4, 5, 3), (0, 2)), (normal((4, 1)),)),
    Case("reshape", ("dimensions",), lambda x: jnp.reshape(x, (2, 6), order="F"), (N,)),
    Case("reshape", ("dimensions",), lambda x: lax.reshape(x, (6, 4), (2, 0, 1)),
         (normal((2, 3, 4)),)),
    Case("transpose", ("permutation",), lambda x: lax.transpose(x, (2, 0, 1)),
         (normal((2, 3, 4)),)),
    Case("rev", ("dimensions",), lambda x: lax.rev(x, (0, 1)), (N,)),
    Case("concatenate", ("dimension",), lambda x, y: lax.concatenate([x, y], 1),
         (N, normal((3, 2)))),
    Case("stack", ("axis",), lambda x, y: jnp.stack([x, y], axis=2), (N, N)),
    Case("unstack", ("axis",), lambda x: jnp.unstack(x, axis=1)[2] * 2.0, (N,)),
    Case("split", ("sizes", "axis"), lambda x: lax.split(x, (1, 2), axis=0)[1], (N,)),
    Case("tile", ("reps",), lambda x: jnp.tile(x, (1, 3)), (N,)),
    Case("pad", ("padding_config",), lambda x: lax.pad(x, 0.5, [(1, -1, 2), (-1, 2, 1)]),
         (N,)),
    Case("slice", ("start_indices", "limit_indices", "strides"),
         lambda x: lax.slice(x, (1, 0), (3, 4), (1, 3)), (N,)),
    Case("dynamic_slice", ("slice_sizes",), lambda x: lax.dynamic_slice(x, (1, 0), (1, 3)),
         (N,)),
    Case("reduce_sum", ("axes",), lambda x: x.sum((0, 2)), (normal((2, 3, 4)),)),
    Case("reduce_max", ("axes",), lambda x: x.max(1), (distinct(M),)),
    Case("reduce_min", ("axes",), lambda x: x.min((0, 1)), (distinct(M),)),
    Case("reduce_prod", ("axes",), lambda x: x.prod((0, 2)), (normal((2, 3, 4)),)),
    *[Case(n, ("axis", "reverse"),
           (lambda name: lambda x: getattr(lax, name)(x, axis=0, reverse=True))(n),
           (distinct(M),)) for n in ("cumsum", "cummax", "cummin", "cumprod", "cumlogsumexp")],
    Case("sort", ("dimension", "is_stable", "num_keys"),
         lambda k, j, v: lax.sort((k, j, v), dimension=0, is_stable=False, num_keys=2)[2],
         (distinct(M), distinct(M), N)),
    Case("gather", ("mode",), lambda x, i: jnp.take(x, i, axis=0, mode="clip"), (N, OOB)),
    Case("gather", ("mode",), lambda x, i: jnp.take(x, i, axis=0, mode="fill",
                                                    fill_value=-1.0), (N, OOB)),
    Case("gather", ("dimension_numbers", "indices_are_sorted", "unique_indices"),
         lambda x: x.at[:, np.array([0, 2, 3])].get(indices_are_sorted=True,
                                                    unique_indices=True), (N,)),
    *[Case(f"scatter-{k}", ("mode", "indices_are_sorted", "unique_indices"),
           at(m, mode="promise_in_bounds", indices_are_sorted=True, unique_indices=True),
           (N, const(np.array([0, 1, 2])), normal((3, 4)))) for k, m in
      (("add", "add"), ("sub", "subtract"), ("mul", "multiply"), ("min", "min"),
       ("max", "max"))],
    # JAX's scatter-min/max rule counts the contenders with the default mode: inf where "clip"
    # clipped an index (-7 here), so those two are checked by finite differences.
    *[Case(f"scatter-{k}", ("dimension_numbers", "mode"),
           lambda x, u, m=m, f=f: getattr(x.at[:, np.array([1, -7, 3])], m)(u, **f),
           (N, normal((3, 3))), against_jax=k not in ("min", "max")) for k, m, f in
      (("add", "add", CLIP), ("sub", "subtract", CLIP), ("min", "min", CLIP),
       ("max", "max", CLIP), ("mul", "multiply", {**CLIP, "unique_indices": True}))],
    Case("scatter", ("mode", "indices_are_sorted", "unique_indices"),
         at("set", mode="promise_in_bounds", indices_are_sorted=True, unique_indices=True),
         (N, const(np.array([0, 1, 2])), normal((3, 4)))),
    Case("scatter", ("dimension_numbers", "mode"),
         lambda x, u: x.at[:, np.array([1, -7, 3])].set(u, mode="clip"), (N, normal((3, 3)))),
    Case("dot_general", ("dimension_numbers", "precision"),
         lambda x, y: lax.dot_general(x, y, (((0,), (1,)), ((), ())),
                                      precision=lax.Precision.DEFAULT), (N, normal((2, 3)))),
    Case("dot_general", ("preferred_element_type",),
         lambda x, y: lax.dot_general(x, y, (((1,), (0,)), ((), ())),
                                      preferred_element_type=jnp.float32),
         (BF16(M), BF16((4, 2))), 1e-2, False),
    Case("ragged_dot_general", ("ragged_dot_dimension_numbers", "precision"),
         lambda x, y: lax.ragged_dot_general(
             x, y, np.array([[1, 2], [3, 0]], np.int32), RAGGED_BATCHED,
             precision=lax.Precision.DEFAULT), (normal((2, 3, 4)), normal((2, 4, 2, 3)))),
    Case("ragged_dot_general", ("preferred_element_type",),
         lambda x, y: lax.ragged_dot(x, y, np.array([1, 2, 0], np.int32),
                                     preferred_element_type=jnp.float32),
         (BF16(M), BF16((3, 4, 2))), 1e-2, False),
    Case("conv_general_dilated",
         ("window_strides", "padding", "lhs_dilation", "rhs_dilation", "dimension_numbers",
          "feature_group_count", "precision"),
         lambda x, k: lax.conv_general_dilated(
             x, k, (2, 1), [(1, 0), (2, -1)], lhs_dilation=(1, 2), rhs_dilation=(2, 1),
             dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=2,
             precision=lax.Precision.DEFAULT),
         (normal((1, 6, 5, 4)), normal((2, 3, 2, 6)))),
    Case("conv_general_dilated", ("batch_group_count", "preferred_element_type"),
         lambda x, k: lax.conv_general_dilated(
             x, k, (1, 1), "SAME", dimension_numbers=CONV_DN, batch_group_count=2,
             preferred_element_type=jnp.float32),
         (BF16((4, 2, 5, 5)), BF16((4, 2, 3, 3))), 1e-2, False),
    *[Case(n, tuple(WINDOW), window(op, init, window_dimensions=(2, 3), window_strides=(2, 1),
                                    padding=((1, 0), (0, 2)), base_dilation=(1, 2),
                                    window_dilation=(2, 1)), (distinct(M),),
           against_jax=n == "reduce_window_sum")  # JAX raises for a dilated max/min window
      for n, op, init in (("reduce_window_sum", lax.add, 0.0),
                          ("reduce_window_max", lax.max, -jnp.inf),
                          ("reduce_window_min", lax.min, jnp.inf))],
    Case("reduce_window", ("jaxpr", *WINDOW),  # JAX cannot differentiate a generic one
         window(lax.max, 0.25, window_dimensions=(1, 3), window_strides=(1, 2),
                padding=((0, 1), (1, 1)), base_dilation=(2, 1), window_dilation=(1, 2)),
         (distinct(M),), against_jax=False),
]
