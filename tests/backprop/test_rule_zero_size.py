"""Empty axes and zero-size arrays through every structural, reduction, indexing, linalg,
conv and window rule (and the elementwise ones on empty operands): against ``jax.vjp`` and
finite differences, the rules under ``jax.jit`` (shapes are static, so the rules' Python
logic on shapes runs as it would eagerly).

The reductions over an empty axis give the op's identity (a constant: zero cotangent of the
right, empty, shape); a zero-size array anywhere makes every cotangent empty or zero. Found
this way: ``reduce_prod`` over an empty axis failed to reshape. ``test_every_rule_has_a_case``
fails for a rule of those families with no case here.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from funcnn.backprop.registry import VJP_RULES
from tests.backprop.rule_params import PRIMITIVES
from tests.backprop.sampling import check_vjp, const, distinct, normal, primitive_names, rng_for
from tests.backprop.test_rules import S
from tests.backprop.test_rules_indexing import check_fd

EMPTY_ROWS = normal((0, 4))  # no rows
EMPTY_COLS = normal((3, 0))  # no columns
NO_IDX = const(np.zeros((0,), np.int32))
CONV_DN = ("NCHW", "OIHW", "NCHW")


ROWS_G = lax.GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(0,),
                                    start_index_map=(0,))
COLS_G = lax.GatherDimensionNumbers(offset_dims=(0,), collapsed_slice_dims=(1,),
                                    start_index_map=(1,))
ROWS_S = lax.ScatterDimensionNumbers(update_window_dims=(1,), inserted_window_dims=(0,),
                                     scatter_dims_to_operand_dims=(0,))
COLS_S = lax.ScatterDimensionNumbers(update_window_dims=(0,), inserted_window_dims=(1,),
                                     scatter_dims_to_operand_dims=(1,))
NO_ROWS = const(np.zeros((0, 1), np.int32))  # jnp indexing skips the gather for these: lax
COLUMNS = const(np.array([[1], [3]], np.int32))


def scatter(kind, dnums, **flags):
    fn = {"add": lax.scatter_add, "sub": lax.scatter_sub, "mul": lax.scatter_mul,
          "min": lax.scatter_min, "max": lax.scatter_max, "set": lax.scatter}[kind]
    return lambda x, i, u: fn(x, i, u, dnums, **flags)


def window(op, init):
    return lambda x: lax.reduce_window(x, init, op, (1, 2), (1, 1), "VALID")


SPECS = [
    # reductions: over an empty axis (the identity comes out), and over a full axis of an
    # empty array (an empty result)
    S("sum_empty_axis", "reduce_sum", lambda x: x.sum(1), EMPTY_COLS),
    S("sum_of_empty", "reduce_sum", lambda x: x.sum(1), EMPTY_ROWS),
    S("sum_all_empty", "reduce_sum", lambda x: x.sum(), EMPTY_COLS),
    S("max_empty_axis", "reduce_max", lambda x: lax.reduce_max(x, (1,)), EMPTY_COLS, fd=False),
    S("max_of_empty", "reduce_max", lambda x: x.max(1), EMPTY_ROWS),
    S("min_empty_axis", "reduce_min", lambda x: lax.reduce_min(x, (1,)), EMPTY_COLS, fd=False),
    S("min_of_empty", "reduce_min", lambda x: x.min(1), EMPTY_ROWS),
    S("prod_empty_axis", "reduce_prod", lambda x: x.prod(1), EMPTY_COLS),
    S("prod_of_empty", "reduce_prod", lambda x: x.prod(1), EMPTY_ROWS),
    S("prod_empty_axes_3d", "reduce_prod", lambda x: x.prod((0, 2)), normal((2, 0, 3))),
    S("prod_empty_kept_axis", "reduce_prod", lambda x: x.prod((0, 2)), normal((2, 3, 0))),
    *[S(f"{n}_empty_axis", n, (lambda name: lambda x: getattr(lax, name)(x, axis=1))(n),
        EMPTY_COLS) for n in ("cumsum", "cummax", "cummin", "cumprod", "cumlogsumexp")],
    *[S(f"{n}_of_empty", n,
        (lambda name: lambda x: getattr(lax, name)(x, axis=1, reverse=True))(n), EMPTY_ROWS)
      for n in ("cumsum", "cummax", "cummin", "cumprod", "cumlogsumexp")],
    S("sort_empty_axis", "sort", lambda x: jnp.sort(x, axis=1), EMPTY_COLS),
    S("sort_of_empty", "sort", lambda k, v: lax.sort((k, v), dimension=1, num_keys=1)[1],
      EMPTY_ROWS, EMPTY_ROWS),
    # structural
    S("broadcast_empty", "broadcast_in_dim", lambda x: lax.broadcast_in_dim(x, (2, 0), (1,)),
      normal((0,))),
    S("broadcast_to_empty", "broadcast_in_dim",
      lambda x: lax.broadcast_in_dim(x, (0, 4), (0, 1)), normal((1, 4))),
    S("reshape_empty", "reshape", lambda x: x.reshape(4, 0), EMPTY_ROWS),
    S("reshape_empty_order_f", "reshape", lambda x: jnp.reshape(x, (2, 0, 2), order="F"),
      EMPTY_ROWS),
    S("squeeze_empty", "squeeze", lambda x: lax.squeeze(x, (1,)), normal((0, 1))),
    S("transpose_empty", "transpose", lambda x: x.T, EMPTY_ROWS),
    S("rev_empty", "rev", lambda x: lax.rev(x, (0, 1)), EMPTY_ROWS),
    S("concatenate_empty_piece", "concatenate", lambda x, y: lax.concatenate([x, y], 1),
      EMPTY_COLS, normal((3, 2))),
    S("concatenate_empty_rows", "concatenate", lambda x, y: lax.concatenate([x, y], 0),
      EMPTY_ROWS, normal((2, 4))),
    S("stack_empty", "stack", lambda x, y: jnp.stack([x, y]), normal((0,)), normal((0,))),
    S("unstack_empty", "unstack", lambda x: jnp.unstack(x, axis=1)[0] * 2.0, normal((0, 2))),
    S("split_empty_piece", "split", lambda x: lax.split(x, (0, 4), axis=1)[1] * 2.0,
      normal((3, 4))),
    S("split_of_empty", "split", lambda x: lax.split(x, (1, 3), axis=1)[0], EMPTY_ROWS),
    S("tile_zero_reps", "tile", lambda x: jnp.tile(x, (0, 2)), normal((3, 4))),
    S("tile_of_empty", "tile", lambda x: jnp.tile(x, (2, 1)), EMPTY_ROWS),
    S("pad_of_empty", "pad", lambda x, v: lax.pad(x, v, [(1, 1, 0), (0, 0, 0)]),
      EMPTY_ROWS, normal(())),
    S("pad_to_empty", "pad", lambda x, v: lax.pad(x, v, [(-1, -2, 0), (0, 0, 0)]),
      normal((3, 4)), normal(())),
    S("slice_to_empty", "slice", lambda x: lax.slice(x, (1, 0), (1, 4)), normal((3, 4))),
    S("slice_of_empty", "slice", lambda x: lax.slice(x, (0, 1), (0, 3)), EMPTY_ROWS),
    S("dynamic_slice_size_0", "dynamic_slice",
      lambda x, i: lax.dynamic_slice(x, (i, 1), (0, 2)), normal((3, 4)), const(2, np.int64)),
    S("dynamic_update_slice_empty_update", "dynamic_update_slice",
      lambda x, u, i: lax.dynamic_update_slice(x, u, (i, 1)), normal((3, 4)),
      normal((0, 2)), const(1, np.int64)),
    # indexing: no indices, or an empty operand
    S("gather_no_indices", "gather", lambda x, i: lax.gather(x, i, ROWS_G, (1, 4)),
      normal((3, 4)), NO_ROWS),
    S("gather_from_empty_rows", "gather", lambda x, i: lax.gather(x, i, COLS_G, (0, 1)),
      EMPTY_ROWS, COLUMNS),
    *[S(f"scatter_{k}_no_updates", "scatter" if k == "set" else f"scatter-{k}",
        scatter(k, ROWS_S, **({"unique_indices": True} if k == "mul" else {})),
        normal((3, 4)), NO_ROWS, EMPTY_ROWS)
      for k in ("add", "sub", "mul", "min", "max", "set")],
    S("scatter_add_into_empty_rows", "scatter-add", scatter("add", COLS_S), EMPTY_ROWS,
      COLUMNS, normal((0, 2))),
    # linalg, conv, windows
    S("dot_empty_contraction", "dot_general", lambda x, y: x @ y, EMPTY_COLS, normal((0, 4))),
    S("dot_empty_rows", "dot_general", lambda x, y: x @ y, EMPTY_ROWS, normal((4, 2))),
    S("dot_empty_batch", "dot_general", lambda x, y: jnp.einsum("bij,bjk->bik", x, y),
      normal((0, 2, 3)), normal((0, 3, 2))),
    S("ragged_dot_no_rows", "ragged_dot_general",
      lambda x, y: lax.ragged_dot(x, y, np.array([0, 0], np.int32)), normal((0, 3)),
      normal((2, 3, 4))),
    S("ragged_dot_no_groups", "ragged_dot_general",
      lambda x, y: lax.ragged_dot(x, y, np.zeros((0,), np.int32)), normal((5, 3)),
      normal((0, 3, 4))),
    S("ragged_dot_empty_contraction", "ragged_dot_general",
      lambda x, y: lax.ragged_dot(x, y, np.array([2, 3], np.int32)), normal((5, 0)),
      normal((2, 0, 4))),
    S("conv_empty_batch", "conv_general_dilated",
      lambda x, k: lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=CONV_DN),
      normal((0, 2, 5, 5)), normal((3, 2, 3, 3))),
    S("conv_no_output_features", "conv_general_dilated",
      lambda x, k: lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=CONV_DN),
      normal((1, 2, 5, 5)), normal((0, 2, 3, 3))),
    S("window_sum_empty", "reduce_window_sum", window(lax.add, 0.0), EMPTY_ROWS),
    S("window_max_empty", "reduce_window_max", window(lax.max, -jnp.inf), EMPTY_ROWS),
    S("window_min_empty", "reduce_window_min", window(lax.min, jnp.inf), EMPTY_ROWS),
    S("window_generic_empty", "reduce_window", window(lax.add, 1.0), EMPTY_ROWS),
    # elementwise on empty operands, a rank-0 operand broadcast over them
    S("mul_empty_and_scalar", "mul", lambda x, y: x * y, EMPTY_ROWS, normal(())),
    S("pow_empty", "pow", lambda x, y: x ** y, EMPTY_ROWS, normal(())),
    S("select_empty", "select_n", lambda x, y: lax.select_n(x > y, x, y), EMPTY_ROWS,
      EMPTY_ROWS),
    S("clamp_empty", "clamp", lambda x: lax.clamp(-0.5, x, 0.5), EMPTY_ROWS),
    S("exp_empty", "exp", lambda x: jnp.exp(x), EMPTY_ROWS),
    S("max_empty", "max", lambda x, y: jnp.maximum(x, y), EMPTY_ROWS, distinct((0, 4))),
]
if hasattr(lax, "polynomial_p"):
    SPECS.append(S("polynomial_empty", "polynomial",
                   lambda x, c: lax.polynomial(x, [1.0, c, 2.0]), EMPTY_ROWS, normal(())))

JAX_CANNOT = {"window_generic_empty"}  # JAX has no rule for a generic reduce_window
FAMILIES = ("structural", "reductions", "indexing", "linalg", "conv", "windows")


def test_every_rule_has_a_case():
    covered = {s.prim for s in SPECS}
    rules = {n for n, r in VJP_RULES.items() if n in PRIMITIVES
             and r.__module__.rsplit(".", 1)[-1] in FAMILIES}
    assert rules <= covered, f"rules with no zero-size case: {sorted(rules - covered)}"


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_zero_size(spec):
    rng = rng_for(f"zero-size-{spec.name}")
    args = tuple(sample(rng) for sample in spec.args)
    found = primitive_names(spec.f, *args)
    assert spec.prim in found, f"spec {spec.name!r} claims {spec.prim!r}, traced {found}"
    if spec.name in JAX_CANNOT:
        check_fd(spec.f, tuple(jnp.asarray(a) for a in args), rng)
    else:
        check_vjp(spec.f, args, rng, fd=spec.fd, jit=True)
