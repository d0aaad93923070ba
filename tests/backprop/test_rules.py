"""One spec per primitive: the engine's VJP against ``jax.vjp`` (random cotangent, float64,
rtol 1e-10) and against central finite differences of <ct, f> along a random direction.

Each spec names the primitive it is about, and the test asserts the traced jaxpr contains it,
so the table cannot silently test something else. Samplers respect each op's domain and stay
away from kinks and ties, except in the ``kink`` specs, which pin JAX's conventions there.

gather/scatter/conv/reduce_window have their own files (test_rules_{indexing,conv,windows}).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from funcnn import backprop
from funcnn.backprop.rules.elementwise import NEXTAFTER_HAS_DERIVATIVE
from tests.backprop.sampling import (
    away_from_zero,
    check_vjp,
    const,
    distinct,
    ints,
    normal,
    primitive_names,
    rng_for,
    run_jitted,
    uniform,
)
from tests.helpers import assert_trees_close


class Spec(NamedTuple):
    name: str
    prim: str  # the primitive the spec is about: must appear in the traced jaxpr
    f: Callable
    args: tuple  # one sampler per argument
    fd: bool = True  # False where f is not differentiable at the sample (kinks, ties)
    rtol: float = 1e-10


def S(name, prim, f, *args, fd=True, rtol=1e-10):
    return Spec(name, prim, f, tuple(args), fd, rtol)


M = (3, 4)
N = normal(M)
POS = uniform(0.5, 3.0, M)
UNIT = uniform(-0.9, 0.9, M)
AWAY = away_from_zero(M)

ELEMENTWISE = [
    S("add", "add", lambda x, y: lax.add(x, y), N, N),
    S("add_literal", "add", lambda x: x + 2.0, N),
    S("add_rank0", "add", lambda x, y: x + y, N, normal(())),
    S("sub", "sub", lambda x, y: lax.sub(x, y), N, N),
    S("sub_size1", "sub", lambda x, y: x - y, N, normal((1, 4))),
    S("mul", "mul", lambda x, y: lax.mul(x, y), N, N),
    S("mul_size1_both", "mul", lambda x, y: x * y, normal((3, 1)), normal((1, 4))),
    S("mul_rank0", "mul", lambda x, y: y * x, N, normal(())),
    S("mul_self", "mul", lambda x: x * x, N),
    S("div", "div", lambda x, y: lax.div(x, y), N, AWAY),
    S("div_rank0", "div", lambda x, y: y / x, AWAY, normal(())),
    S("neg", "neg", lambda x: lax.neg(x), N),
    S("max", "max", lambda x, y: lax.max(x, y), N, N),
    S("min", "min", lambda x, y: lax.min(x, y), N, N),
    S("max_size1", "max", lambda x, y: jnp.maximum(x, y), N, normal((1, 4))),
    S("exp", "exp", lambda x: lax.exp(x), N),
    S("exp2", "exp2", lambda x: lax.exp2(x), N),
    S("log", "log", lambda x: lax.log(x), POS),
    S("log1p", "log1p", lambda x: lax.log1p(x), uniform(-0.5, 3.0, M)),
    S("expm1", "expm1", lambda x: lax.expm1(x), N),
    S("tanh", "tanh", lambda x: lax.tanh(x), N),
    S("logistic", "logistic", lambda x: lax.logistic(x), normal(M, 3.0)),
    S("sqrt", "sqrt", lambda x: lax.sqrt(x), POS),
    S("rsqrt", "rsqrt", lambda x: lax.rsqrt(x), POS),
    S("cbrt", "cbrt", lambda x: lax.cbrt(x), AWAY),
    S("pow", "pow", lambda x, y: lax.pow(x, y), POS, N),
    S("pow_const_exponent", "pow", lambda x: lax.pow(x, 2.5), POS),
    S("pow_const_base", "pow", lambda y: lax.pow(1.7, y), N),
    S("pow_int_exponent_array", "pow", lambda x, n: lax.pow(x, n), AWAY, ints(-3, 4, M)),
    S("integer_pow_3", "integer_pow", lambda x: lax.integer_pow(x, 3), N),
    S("integer_pow_2", "integer_pow", lambda x: lax.integer_pow(x, 2), N),
    S("integer_pow_1", "integer_pow", lambda x: lax.integer_pow(x, 1), N),
    S("integer_pow_0", "integer_pow", lambda x: lax.integer_pow(x, 0), N),
    S("integer_pow_neg1", "integer_pow", lambda x: lax.integer_pow(x, -1), AWAY),
    S("integer_pow_neg3", "integer_pow", lambda x: lax.integer_pow(x, -3), AWAY),
    S("square", "square", lambda x: lax.square(x), N),
    S("abs", "abs", lambda x: lax.abs(x), AWAY),
    S("sign", "sign", lambda x: x * lax.sign(x), AWAY),
    S("erf", "erf", lambda x: lax.erf(x), N),
    S("erfc", "erfc", lambda x: lax.erfc(x), N),
    S("erf_inv", "erf_inv", lambda x: lax.erf_inv(x), UNIT),
    S("sin", "sin", lambda x: lax.sin(x), normal(M, 3.0)),
    S("cos", "cos", lambda x: lax.cos(x), normal(M, 3.0)),
    S("tan", "tan", lambda x: lax.tan(x), uniform(-1.2, 1.2, M)),
    S("asin", "asin", lambda x: lax.asin(x), UNIT),
    S("acos", "acos", lambda x: lax.acos(x), UNIT),
    S("atan", "atan", lambda x: lax.atan(x), normal(M, 3.0)),
    S("sinh", "sinh", lambda x: lax.sinh(x), N),
    S("cosh", "cosh", lambda x: lax.cosh(x), N),
    S("asinh", "asinh", lambda x: lax.asinh(x), normal(M, 3.0)),
    S("acosh", "acosh", lambda x: lax.acosh(x), uniform(1.2, 4.0, M)),
    # JAX 0.10's rsqrt(x^2 - 1) and JAX >= 0.11's rsqrt(x - 1) rsqrt(x + 1) differ by 2e-10
    # relative at 1 + 2^-30 and by inf against NaN at -1 (jnp.arccosh; the engine gives the
    # running JAX's, found by test_numpy_functions)
    S("acosh_near_one", "acosh", lambda x: lax.acosh(x),
      const([-1.0, 1.0 + 2.0 ** -30, 1.0 + 3 * 2.0 ** -30, 1.5]), fd=False),
    S("atanh", "atanh", lambda x: lax.atanh(x), UNIT),
    S("lgamma", "lgamma", lambda x: lax.lgamma(x), uniform(0.2, 5.0, M)),
    S("lgamma_negative", "lgamma", lambda x: lax.lgamma(x), uniform(-2.8, -2.2, M)),
    S("digamma", "digamma", lambda x: lax.digamma(x), uniform(0.3, 5.0, M)),
    S("atan2", "atan2", lambda x, y: lax.atan2(x, y), AWAY, AWAY),
    S("rem", "rem", lambda x, y: lax.rem(x, y), normal(M, 4.0), AWAY),
    S("rem_rank0", "rem", lambda x: x % 0.7, normal(M, 4.0)),
    S("select_n_bool", "select_n", lambda p, x, y: lax.select_n(p, x, y),
      lambda rng: rng.random(M) < 0.5, N, N),
    S("select_n_int3", "select_n", lambda i, x, y, z: lax.select_n(i, x, y, z),
      ints(0, 3, M), N, N, N),
    S("where", "select_n", lambda x, y: jnp.where(x < y, x * y, x + y), N, N),
    # scalar bounds as literals: jax.vjp itself fails on an active rank-0 bound (its rule
    # selects between shapes (3, 4) and ()); test_scalar_clamp_bounds covers that case.
    S("clamp", "clamp", lambda x: lax.clamp(-0.5, x, 0.6), normal(M, 2.0)),
    S("clamp_arrays", "clamp", lambda lo, x, hi: lax.clamp(lo, x, hi),
      uniform(-1.0, -0.2, M), normal(M, 2.0), uniform(0.2, 1.0, M)),
    S("convert_f64_f32", "convert_element_type", lambda x: x.astype(jnp.float32), N,
      fd=False),  # float32 output: finite differences at eps=1e-6 are noise
    S("convert_f32_f64", "convert_element_type", lambda x: x.astype(jnp.float64) ** 2,
      normal(M, dtype=np.float32), fd=False),  # float32 input: same
    S("convert_float_int", "convert_element_type", lambda x: x.astype(jnp.int32), N),
    S("convert_float_int_times", "convert_element_type",
      lambda x: x * x.astype(jnp.int32), normal(M, 3.0)),
    S("convert_int_float", "convert_element_type",
      lambda x, n: x * n.astype(jnp.float64), N, ints(-3, 4, M)),
    S("copy", "copy", lambda x: jnp.array(x, copy=True) * x, N),
    S("stop_gradient", "stop_gradient", lambda x: x * lax.stop_gradient(x), N,
      fd=False),  # stop_gradient is not the derivative of anything
    S("eq", "eq", lambda x, y: lax.eq(x, y), N, N),
    S("ne", "ne", lambda x, y: lax.ne(x, y), N, N),
    S("lt", "lt", lambda x, y: lax.lt(x, y), N, N),
    S("le", "le", lambda x, y: lax.le(x, y), N, N),
    S("gt", "gt", lambda x, y: lax.gt(x, y), N, N),
    S("ge", "ge", lambda x, y: lax.ge(x, y), N, N),
    S("iota", "iota", lambda x: x * lax.iota(jnp.float64, 4), normal((4,))),
    # JAX >= 0.12 differentiates nextafter (the identity in x); older JAX cannot: see
    # test_nextafter_is_refused_where_jax_cannot_differentiate_it
    *([S("nextafter", "nextafter", lambda x, y: lax.nextafter(x, y), N, N),
       S("spacing", "nextafter", lambda x: x * jnp.spacing(x), N, fd=False)]  # ulp steps
      if NEXTAFTER_HAS_DERIVATIVE else []),
]

X3 = normal((2, 3, 4))
STRUCTURAL = [
    S("dot_matmul", "dot_general", lambda x, y: x @ y, N, normal((4, 5))),
    S("dot_matvec", "dot_general", lambda x, y: x @ y, N, normal((4,))),
    S("dot_vecvec", "dot_general", lambda x, y: jnp.dot(x, y), normal((5,)), normal((5,))),
    S("dot_outer", "dot_general", lambda x, y: jnp.einsum("i,j->ij", x, y),
      normal((3,)), normal((5,))),
    S("dot_transposed_rhs", "dot_general", lambda x, y: jnp.einsum("ij,kj->ik", x, y),
      N, normal((5, 4))),
    S("dot_batched", "dot_general", lambda x, y: jnp.einsum("bij,bjk->bik", x, y),
      X3, normal((2, 4, 5))),
    S("dot_two_contract_two_batch_mixed", "dot_general",
      lambda x, y: lax.dot_general(x, y, (((1, 3), (2, 0)), ((0, 2), (1, 3)))),
      normal((2, 3, 4, 5, 7)), normal((5, 2, 3, 4, 6))),
    S("dot_einsum_mixed_order", "dot_general",
      lambda x, y: jnp.einsum("kbia,jakb->bji", x, y),
      normal((3, 2, 4, 5)), normal((6, 5, 3, 2))),
    S("dot_full_contraction", "dot_general",
      lambda x, y: lax.dot_general(x, y, (((0, 1), (1, 0)), ((), ()))), N, normal((4, 3))),
    S("broadcast_in_dim_new_axis", "broadcast_in_dim",
      lambda x: lax.broadcast_in_dim(x, (2, 3, 4), (0, 2)), normal((2, 4))),
    S("broadcast_in_dim_stretch", "broadcast_in_dim",
      lambda x: lax.broadcast_in_dim(x, (5, 3, 4), (1, 2)), normal((1, 4))),
    S("broadcast_in_dim_scalar", "broadcast_in_dim",
      lambda x: lax.broadcast_in_dim(x, M, ()), normal(())),
    S("reshape", "reshape", lambda x: lax.reshape(x, (4, 6)), X3),
    S("reshape_flatten", "reshape", lambda x: x.reshape(-1), X3),
    S("transpose", "transpose", lambda x: lax.transpose(x, (2, 0, 1)), X3),
    S("squeeze", "squeeze", lambda x: lax.squeeze(x, (0, 2)), normal((1, 3, 1, 4))),
    S("expand_dims", "broadcast_in_dim", lambda x: lax.expand_dims(x, (0, 2)), N),
    S("rev", "rev", lambda x: lax.rev(x, (0, 2)), X3),
    S("concatenate", "concatenate", lambda x, y, z: lax.concatenate([x, y, z], 1),
      normal((3, 2)), N, normal((3, 1))),
    S("concatenate_reused", "concatenate", lambda x: jnp.concatenate([x, 2 * x, x]), N),
    S("stack", "stack", lambda x, y: jnp.stack([x, y, x], axis=1), N, N),
    S("split", "split", lambda x: lax.split(x, (1, 2, 1), axis=1), N),
    S("split_partial_use", "split", lambda x: jnp.split(x, [1, 3], axis=1)[1], N),
    S("tile", "tile", lambda x: jnp.tile(x, (2, 1, 3)), N),
    S("pad_negative_interior", "pad",
      lambda x: lax.pad(x, 0.0, [(1, -1, 1), (-1, 2, 0)]), normal((4, 5))),
    S("pad_value_active", "pad",
      lambda x, v: lax.pad(x, v, [(2, 1, 2), (0, -2, 1)]), N, normal(())),
    S("slice_strided", "slice", lambda x: lax.slice(x, (0, 1), (5, 6), (2, 3)),
      normal((6, 7))),
    S("slice_plain", "slice", lambda x: lax.slice(x, (1, 0), (3, 2)), N),
    S("dynamic_slice", "dynamic_slice",
      lambda x, i: lax.dynamic_slice(x, (i, 1), (2, 2)), N, const(1, np.int64)),
    S("dynamic_slice_clamped", "dynamic_slice",
      lambda x, i: lax.dynamic_slice(x, (i, 1), (2, 2)), N, const(7, np.int64)),
    S("dynamic_update_slice", "dynamic_update_slice",
      lambda x, u, i: lax.dynamic_update_slice(x, u, (i, 2)), N, normal((2, 2)),
      const(1, np.int64)),
    S("dynamic_update_slice_clamped", "dynamic_update_slice",
      lambda x, u, i: lax.dynamic_update_slice(x, u, (0, i)), N, normal((2, 3)),
      const(-4, np.int64)),
]

REDUCTIONS = [
    S("reduce_sum", "reduce_sum", lambda x: x.sum(axis=(0, 2)), X3),
    S("reduce_sum_all", "reduce_sum", lambda x: x.sum(), X3),
    S("reduce_max", "reduce_max", lambda x: x.max(axis=1), distinct(M)),
    S("reduce_min", "reduce_min", lambda x: x.min(axis=(0, 2)), distinct((2, 3, 4))),
    S("reduce_prod", "reduce_prod", lambda x: x.prod(axis=1), uniform(0.5, 1.5, M)),
    S("reduce_prod_axes", "reduce_prod", lambda x: x.prod(axis=(0, 2)), X3),
    S("reduce_prod_one_zero", "reduce_prod", lambda x: x.prod(axis=1),
      const([[1.5, 0.0, -2.0, 0.5], [0.7, 1.1, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])),
    S("argmax", "argmax", lambda x: lax.argmax(x, 1, jnp.int32), distinct(M)),
    S("argmin", "argmin", lambda x: jnp.argmin(x, axis=0), distinct(M)),
    S("argmax_times", "argmax", lambda x: x * jnp.argmax(x, axis=1, keepdims=True),
      distinct(M)),
    S("cumsum", "cumsum", lambda x: lax.cumsum(x, axis=1), N),
    S("cumsum_reverse", "cumsum", lambda x: lax.cumsum(x, axis=0, reverse=True), N),
    S("cumprod", "cumprod", lambda x: lax.cumprod(x, axis=1), uniform(0.5, 1.5, M)),
    S("cumprod_reverse_zero", "cumprod", lambda x: lax.cumprod(x, axis=1, reverse=True),
      const([[1.5, 0.0, -2.0, 0.5], [0.7, 1.1, 0.0, 0.9], [0.3, 2.0, 1.0, 0.0]])),
    S("cummax", "cummax", lambda x: lax.cummax(x, axis=1), distinct(M)),
    S("cummax_reverse", "cummax", lambda x: lax.cummax(x, axis=0, reverse=True), distinct(M)),
    S("cummin", "cummin", lambda x: lax.cummin(x, axis=1), distinct(M)),
    S("cummin_reverse", "cummin", lambda x: lax.cummin(x, axis=1, reverse=True), distinct(M)),
    S("cumlogsumexp", "cumlogsumexp", lambda x: lax.cumlogsumexp(x, axis=1), N),
    S("cumlogsumexp_reverse", "cumlogsumexp",
      lambda x: lax.cumlogsumexp(x, axis=0, reverse=True), N),
    S("sort", "sort", lambda x: jnp.sort(x, axis=1), distinct(M)),
    S("sort_axis0", "sort", lambda x: lax.sort(x, dimension=0), distinct((2, 3, 4))),
    S("sort_multi_operand", "sort",
      lambda k, v, w: lax.sort((k, v, w), dimension=1, num_keys=1), distinct(M), N, N),
    # k1 has ties broken by k2: moving k1 by eps reorders them, so no finite differences
    S("sort_two_keys", "sort",
      lambda k1, k2, v: lax.sort((k1, k2, v), dimension=0, num_keys=2),
      lambda rng: rng.integers(0, 2, M).astype(np.float64), distinct(M), N, fd=False),
]

KINKS = [  # JAX's values where the derivative does not exist (checked against jax.vjp)
    S("kink_relu_where_at_0", "select_n", lambda x: jnp.where(x > 0, x, 0.0),
      const([-1.0, 0.0, 2.0]), fd=False),
    S("kink_maximum_at_0", "max", lambda x: jnp.maximum(x, 0.0),
      const([-1.0, 0.0, 2.0]), fd=False),
    S("kink_abs_at_0", "abs", lambda x: lax.abs(x), const([-1.0, 0.0, 2.0]), fd=False),
    S("kink_sign_at_0", "sign", lambda x: lax.sign(x) * 3.0, const([-1.0, 0.0, 2.0]),
      fd=False),
    S("kink_max_tie", "max", lambda x, y: lax.max(x, y),
      const([1.0, 2.0, -3.0]), const([1.0, 0.0, -3.0]), fd=False),
    S("kink_min_tie", "min", lambda x, y: lax.min(x, y),
      const([1.0, 2.0, -3.0]), const([1.0, 0.0, -3.0]), fd=False),
    S("kink_reduce_max_ties", "reduce_max", lambda x: x.max(axis=1),
      const([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [5.0, 1.0, 0.0, 5.0]]), fd=False),
    S("kink_reduce_min_ties", "reduce_min", lambda x: x.min(axis=0),
      const([[1.0, 3.0, 3.0, 0.0], [1.0, 2.0, 3.0, 0.0], [5.0, 2.0, 0.0, 0.0]]), fd=False),
    S("kink_cummax_ties", "cummax", lambda x: lax.cummax(x, axis=1),
      const([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 2.0, 1.0], [0.0, 0.0, 0.0, 0.0]]), fd=False),
    S("kink_clamp_at_bounds", "clamp", lambda lo, x, hi: lax.clamp(lo, x, hi),
      const([-0.5] * 4), const([-0.5, 0.0, 0.5, 1.0]), const([0.5] * 4), fd=False),
    S("kink_pow_zero_base", "pow", lambda x, y: lax.pow(x, y),  # 0 ** 0: see test below
      const([0.0, 0.0, 0.0, 2.0]), const([2.0, 3.0, 1.0, 0.0]), fd=False),
    S("kink_masked_softmax", "select_n",
      lambda z, m: jax.nn.softmax(jnp.where(m, z, -jnp.inf), axis=-1),
      normal((2, 4)), const([[True, True, False, False], [True, False, False, True]]),
      fd=False),
]

SPECS = ELEMENTWISE + STRUCTURAL + REDUCTIONS + KINKS


def test_spec_names_are_unique():
    names = [s.name for s in SPECS]
    assert len(names) == len(set(names))


# Every spec runs under jax.jit (the rules see tracers; one compilation per spec). These also
# run eagerly (the rules see concrete arrays and literals): one or more per rule whose Python
# logic depends on shapes, parameters or literal operands.
EAGER = {"add_literal", "mul_size1_both", "div_rank0", "max_size1", "pow", "pow_const_base",
         "pow_int_exponent_array", "integer_pow_0", "integer_pow_neg3", "abs", "rem_rank0",
         "select_n_int3", "clamp_arrays", "convert_int_float", "dot_two_contract_two_batch_mixed",
         "dot_vecvec", "broadcast_in_dim_stretch", "squeeze", "concatenate", "stack", "split",
         "tile", "pad_value_active", "slice_strided", "dynamic_slice_clamped",
         "dynamic_update_slice", "reduce_max", "reduce_prod_one_zero", "argmax_times",
         "cumsum_reverse", "sort_multi_operand", "kink_reduce_max_ties"}
RUNS = [pytest.param(s, mode, id=f"{s.name}-{mode}") for s in SPECS
        for mode in (("jit", "eager") if s.name in EAGER else ("jit",))]


def test_eager_names_exist():
    assert EAGER <= {s.name for s in SPECS}


@pytest.mark.parametrize("spec, mode", RUNS)
def test_rule(spec: Spec, mode):
    rng = rng_for(spec.name)
    args = tuple(sample(rng) for sample in spec.args)
    found = primitive_names(spec.f, *args)
    assert spec.prim in found, f"spec {spec.name!r} claims {spec.prim!r}, traced {found}"
    check_vjp(spec.f, args, rng, rtol=spec.rtol, fd=spec.fd, jit=mode == "jit")


# --- the conventions, as numbers (not only "equal to jax") -----------------------------------
KINK_VALUES = [
    ("relu_where", lambda x: jnp.where(x > 0, x, 0.0), 0.0, 0.0),
    ("relu_maximum", lambda x: jnp.maximum(x, 0.0), 0.0, 0.5),
    ("abs", jnp.abs, 0.0, 1.0),  # JAX >= 0.10: select(x >= 0, g, -g)
    ("abs_neg_zero", jnp.abs, -0.0, 1.0),
    ("sign", jnp.sign, 0.0, 0.0),
    ("step", lambda x: jnp.heaviside(x, 0.5), 0.0, 0.0),
    ("min_tie", lambda x: jnp.minimum(x, 1.0), 1.0, 0.5),
    ("abs_squared", lambda x: jnp.abs(x) ** 2, 0.0, 0.0),
]


@pytest.mark.parametrize("f, x, expected", [k[1:] for k in KINK_VALUES],
                         ids=[k[0] for k in KINK_VALUES])
def test_kink_value(f, x, expected):
    got = backprop.grad(f)(x)
    assert_trees_close(got, expected)
    assert_trees_close(got, jax.grad(f)(x))


def test_reduce_max_ties_split_evenly():
    x = jnp.array([1.0, 3.0, 3.0, 3.0])
    assert_trees_close(backprop.grad(jnp.max)(x), jnp.array([0.0, 1 / 3, 1 / 3, 1 / 3]))


def test_masked_softmax_attention_grads_are_finite():
    """The attention pattern: masked logits (-inf) through softmax, grads finite and equal to
    JAX's, zero at the masked positions."""
    rng = rng_for("attention")
    q, k = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    v = rng.standard_normal((2, 5, 4))
    mask = np.tril(np.ones((3, 5), bool), k=1)[None]

    def loss(q, k, v):
        logits = jnp.einsum("bqd,bkd->bqk", q, k) / 2.0
        w = jax.nn.softmax(jnp.where(mask, logits, -jnp.inf), axis=-1)
        return (jnp.einsum("bqk,bkd->bqd", w, v) ** 2).sum()

    got, want = run_jitted(lambda *a: (backprop.grad(loss, argnums=(0, 1, 2))(*a),
                                       jax.grad(loss, argnums=(0, 1, 2))(*a)), q, k, v)
    assert all(np.isfinite(g).all() for g in got)
    assert_trees_close(got, want)


def test_scalar_clamp_bounds():
    """Active rank-0 bounds (jax.vjp has no answer here: its rule fails on the shapes), so
    the reference is the same clamp with the bounds broadcast, summed."""
    x = jnp.array([-1.0, -0.2, 0.3, 0.9, -0.5])
    ct = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0])
    got = backprop.vjp(lambda lo, x, hi: lax.clamp(lo, x, hi), -0.5, x, 0.5)[1](ct)
    full = jax.vjp(lambda lo, x, hi: lax.clamp(lo, x, hi), jnp.full(5, -0.5), x,
                   jnp.full(5, 0.5))[1](ct)
    assert_trees_close(got, (full[0].sum(), full[1], full[2].sum()))


@pytest.mark.skipif(NEXTAFTER_HAS_DERIVATIVE, reason="JAX >= 0.12 differentiates nextafter: "
                    "the nextafter spec above")
def test_nextafter_is_refused_where_jax_cannot_differentiate_it():
    """jnp.nextafter and jnp.spacing on JAX < 0.12: jax.grad raises, so the engine must raise a
    MissingRuleError naming the primitive, not give a zero (it did, found by
    test_numpy_functions)."""
    x, y = jnp.array([1.0, -2.0]), jnp.array([3.0, 0.0])
    for f in (lambda x: jnp.nextafter(x, y).sum(), lambda x: (x * jnp.spacing(x)).sum()):
        with pytest.raises(NotImplementedError, match="nextafter"):
            jax.grad(f)(x)
        with pytest.raises(backprop.MissingRuleError,
                           match="'nextafter'.* no derivative for nextafter either"):
            backprop.grad(f)(x)


def test_pow_zero_to_the_zero():
    """d/dx x**y at x = 0, y = 0.0: JAX's float-exponent rule computes 0 * 0**-1 = NaN, and
    so does the engine; d/dy is 0 in both. With an integer y = 0, d/dx is 0 in both."""
    gx, gy = backprop.grad(lax.pow, argnums=(0, 1))(0.0, 0.0)
    want_x, want_y = jax.grad(lax.pow, argnums=(0, 1))(0.0, 0.0)
    assert np.isnan(gx) and np.isnan(want_x)
    assert_trees_close(gy, want_y)
    assert_trees_close(backprop.grad(lambda x: lax.pow(x, 0))(0.0),
                       jax.grad(lambda x: lax.pow(x, 0))(0.0))
