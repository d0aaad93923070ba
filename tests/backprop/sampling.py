"""Shared pieces of the backprop tests: input samplers that respect an op's domain, the
primitives a function traces to, and the checks against ``jax.vjp`` and finite differences.

A sampler is ``sampler(rng) -> array``: ``normal((2, 3))(rng)`` draws a float64 array.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from funcnn import backprop
from tests.helpers import assert_trees_close

Sampler = Callable[[np.random.Generator], np.ndarray]


# --- samplers ---------------------------------------------------------------------------------
def normal(shape=(), scale=1.0, dtype=np.float64) -> Sampler:
    return lambda rng: (scale * rng.standard_normal(shape)).astype(dtype)


def uniform(lo, hi, shape=(), dtype=np.float64) -> Sampler:
    return lambda rng: rng.uniform(lo, hi, shape).astype(dtype)


def away_from_zero(shape=(), lo=0.3, hi=2.0) -> Sampler:
    """|x| in [lo, hi] with a random sign: for ops with a kink or pole at 0."""
    return lambda rng: rng.choice([-1.0, 1.0], shape) * rng.uniform(lo, hi, shape)


def distinct(shape=(), gap=0.1) -> Sampler:
    """Values pairwise at least ``gap`` apart (no ties for max/sort), in random order."""
    n = int(np.prod(shape))

    def draw(rng):
        steps = gap + rng.uniform(0.0, 1.0, n)
        return rng.permutation(np.cumsum(steps) - steps.sum() / 2).reshape(shape)

    return draw


def ints(lo, hi, shape=(), dtype=np.int32) -> Sampler:
    return lambda rng: rng.integers(lo, hi, shape).astype(dtype)


def const(value, dtype=None) -> Sampler:
    return lambda rng: np.asarray(value, dtype=dtype)


def rng_for(name: str) -> np.random.Generator:
    """A generator seeded by a test's name: reproducible, and different per case."""
    return np.random.default_rng(zlib.crc32(name.encode()))


# --- what a function traces to ----------------------------------------------------------------
def primitive_names(f, *args) -> set[str]:
    """Every primitive in ``f``'s jaxpr, nested jaxprs (jit, scan, cond, ...) included."""
    names: set[str] = set()
    todo = [jax.make_jaxpr(f)(*args).jaxpr]
    while todo:
        jaxpr = todo.pop()
        for eqn in jaxpr.eqns:
            names.add(eqn.primitive.name)
            for sub in jcore.jaxprs_in_params(eqn.params):
                todo.append(sub.jaxpr if isinstance(sub, jcore.ClosedJaxpr) else sub)
    return names


# --- running -------------------------------------------------------------------------------------
QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
                 "xla_cpu_use_fusion_emitters": False}


def run_jitted(f, *args):
    """``jax.jit(f)(*args)``, compiled with XLA's CPU backend optimizations off (codegen
    options only: the HLO and its numerics are the same). These tests compile hundreds of
    small one-off programs, where compile time is nearly all the time."""
    lowered = jax.jit(f).lower(*args)
    if jax.default_backend() == "cpu" and QUICK_COMPILE:
        try:
            return lowered.compile(QUICK_COMPILE)(*args)
        except Exception as error:  # an XLA without one of these options: compile as usual
            if "compile option" not in str(error):
                raise
            QUICK_COMPILE.clear()
    return lowered.compile()(*args)


# --- comparisons ------------------------------------------------------------------------------
def is_float(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def dtypes_of(tree):
    return jax.tree_util.tree_map(lambda x: str(jnp.result_type(x)), tree)


def assert_grads_close(actual, expected, rtol=1e-10, atol=1e-12, what=""):
    """``assert_trees_close`` that also checks every leaf's dtype, float0 leaves included
    (their values are compared as zeros of their shape)."""
    a_dt, e_dt = dtypes_of(actual), dtypes_of(expected)
    if a_dt != e_dt:
        raise AssertionError(f"{what}dtypes differ:\n  actual:   {a_dt}\n  expected: {e_dt}")

    def values(x):
        return np.zeros(np.shape(x)) if jnp.result_type(x) == jax.dtypes.float0 else x

    assert_trees_close(jax.tree_util.tree_map(values, actual),
                       jax.tree_util.tree_map(values, expected), rtol=rtol, atol=atol, what=what)


def random_like(rng, tree):
    """A random cotangent/direction for ``tree``: normal for float leaves, float0 zeros for
    the others (as ``jax.vjp`` expects)."""
    def leaf(x):
        if is_float(x):
            return np.asarray(rng.standard_normal(np.shape(x)), dtype=jnp.result_type(x))
        return np.zeros(np.shape(x), jax.dtypes.float0)

    return jax.tree_util.tree_map(leaf, tree)


def vdot(a_tree, b_tree) -> float:
    """sum over float leaves of <a, b>, in float64."""
    total = 0.0
    for a, b in zip(jax.tree_util.tree_leaves(a_tree), jax.tree_util.tree_leaves(b_tree),
                    strict=True):
        if is_float(a) and np.asarray(b).dtype != jax.dtypes.float0:
            total += float(np.vdot(np.asarray(a, np.float64), np.asarray(b, np.float64)))
    return total


def check_vjp(f, args, rng, rtol=1e-10, atol=1e-12, fd=True, fd_eps=1e-6, fd_rtol=1e-6,
              fd_atol=1e-8, jit=False):
    """The engine's ``vjp(f, *args)`` against ``jax.vjp`` with a random cotangent (values,
    cotangents, dtypes), then against central finite differences of <ct, f> along a random
    direction. Returns the engine's cotangents.

    The references always run under ``jax.jit`` (one compilation instead of one per eager op:
    the tables run in seconds). ``jit=True`` runs the engine in the same jitted function (its
    rules see tracers, as inside any jitted model); ``jit=False`` runs the engine eagerly.
    """
    ct = random_like(rng, jax.eval_shape(f, *args))
    direction = random_like(rng, args)

    def engine(args, ct):
        out, vjp_fn = backprop.vjp(f, *args)
        return out, vjp_fn(ct)

    def reference(args, ct, direction):
        out, vjp_fn = jax.vjp(f, *args)

        def moved(eps):
            return f(*jax.tree_util.tree_map(
                lambda x, d: x + eps * d if is_float(x) else x, args, direction))

        return out, vjp_fn(ct), (moved(fd_eps), moved(-fd_eps)) if fd else None

    if jit:
        (out, got), (ref_out, want, ends) = run_jitted(
            lambda *a: (engine(*a[:2]), reference(*a)), args, ct, direction)
    else:
        out, got = engine(args, ct)
        ref_out, want, ends = run_jitted(reference, args, ct, direction)
    assert_grads_close(out, ref_out, rtol=rtol, atol=atol, what="primal output ")
    assert_grads_close(got, want, rtol=rtol, atol=atol, what="cotangent ")
    if fd:
        finite = (vdot(ct, ends[0]) - vdot(ct, ends[1])) / (2 * fd_eps)
        assert_trees_close(vdot(got, direction), finite, rtol=fd_rtol, atol=fd_atol,
                           what="<vjp(ct), d> vs finite differences: ")
    return got


# --- complex inputs and outputs, second order ---------------------------------------------------
def complex_normal(shape=(), scale=1.0) -> Sampler:
    """A complex128 array with independent standard normal real and imaginary parts."""
    return lambda rng: (scale * (rng.standard_normal(shape)
                                 + 1j * rng.standard_normal(shape))).astype(np.complex128)


def is_complex(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.complexfloating)


def random_cotangent(rng, tree):
    """``random_like``, with complex leaves drawn with random imaginary parts as well."""
    def leaf(x):
        shape, dtype = np.shape(x), jnp.result_type(x)
        if is_complex(x):
            return np.asarray(rng.standard_normal(shape) + 1j * rng.standard_normal(shape), dtype)
        if is_float(x):
            return np.asarray(rng.standard_normal(shape), dtype)
        return np.zeros(shape, jax.dtypes.float0)

    return jax.tree_util.tree_map(leaf, tree)


def pairing(a_tree, b_tree) -> float:
    """JAX's pairing of a cotangent with a tangent: the sum over inexact leaves of
    Re sum(a * b), without conjugation (``jax.vjp``'s cotangent of a complex input is the
    transpose under it). For real leaves this is ``vdot``."""
    total = 0.0
    for a, b in zip(jax.tree_util.tree_leaves(a_tree), jax.tree_util.tree_leaves(b_tree),
                    strict=True):
        if is_float(a) and np.asarray(b).dtype != jax.dtypes.float0:
            a = np.asarray(a).astype(np.complex128)
            b = np.asarray(b).astype(np.complex128)
            total += float(np.real(np.sum(a * b)))
    return total


def as_real_pairs(tree):
    """Each complex leaf as the pair (real part, imaginary part); other leaves as they are
    (``assert_trees_close`` compares in float64)."""
    def leaf(x):
        return (np.real(x), np.imag(x)) if is_complex(x) else x

    return jax.tree_util.tree_map(leaf, tree)


def assert_cotangents_close(actual, expected, rtol=1e-10, atol=1e-12, what=""):
    """``assert_grads_close`` (dtypes too) for trees that may hold complex leaves."""
    a_dt, e_dt = dtypes_of(actual), dtypes_of(expected)
    if a_dt != e_dt:
        raise AssertionError(f"{what}dtypes differ:\n  actual:   {a_dt}\n  expected: {e_dt}")

    def values(x):
        return np.zeros(np.shape(x)) if jnp.result_type(x) == jax.dtypes.float0 else x

    assert_trees_close(as_real_pairs(jax.tree_util.tree_map(values, actual)),
                       as_real_pairs(jax.tree_util.tree_map(values, expected)),
                       rtol=rtol, atol=atol, what=what)


def check_vjp_complex(f, args, rng, rtol=1e-10, atol=1e-12, fd=True, fd_eps=1e-6, fd_rtol=1e-6,
                      fd_atol=1e-8, against_jax=True):
    """``check_vjp`` for functions with complex inputs or outputs (real ones work too): random
    complex cotangents and directions, cotangents compared with ``jax.vjp`` as (real, imag)
    pairs, and finite differences under JAX's pairing (``pairing``). Engine and references
    run in one jitted function. ``against_jax=False`` leaves ``jax.vjp`` out (where JAX refuses
    or is wrong): the cotangents are then checked by finite differences only. Returns the
    engine's cotangents."""
    ct = random_cotangent(rng, jax.eval_shape(f, *args))
    direction = random_cotangent(rng, args)

    def both(args, ct, direction):
        out, vjp_fn = backprop.vjp(f, *args)
        ref_out, ref_fn = jax.vjp(f, *args) if against_jax else (f(*args), None)

        def moved(eps):
            return f(*jax.tree_util.tree_map(
                lambda x, d: x + eps * d if is_float(x) else x, args, direction))

        ends = (moved(fd_eps), moved(-fd_eps)) if fd else None
        return out, vjp_fn(ct), ref_out, (ref_fn(ct) if against_jax else None), ends

    out, got, ref_out, want, ends = run_jitted(both, args, ct, direction)
    assert_cotangents_close(out, ref_out, rtol=rtol, atol=atol, what="primal output ")
    if against_jax:
        assert_cotangents_close(got, want, rtol=rtol, atol=atol, what="cotangent ")
    if fd:
        finite = (pairing(ct, ends[0]) - pairing(ct, ends[1])) / (2 * fd_eps)
        assert_trees_close(pairing(got, direction), finite, rtol=fd_rtol, atol=fd_atol,
                           what="<vjp(ct), d> vs finite differences: ")
    return got


def check_hvp(loss, x, rng, rtol=1e-9, atol=1e-10):
    """Second order: the engine differentiating its own gradient of the real scalar ``loss``
    at a real array ``x`` (a Hessian-vector product H v), against ``jax.hessian``."""
    v = rng.standard_normal(np.shape(x))

    def both(x, v):
        hv = backprop.grad(lambda y: jnp.sum(backprop.grad(loss)(y) * v))(x)
        h = jax.hessian(loss)(x).reshape(np.size(x), np.size(x))
        return hv, (h @ v.reshape(-1)).reshape(np.shape(x))

    got, want = run_jitted(both, x, v)
    assert_trees_close(got, want, rtol=rtol, atol=atol, what="Hessian-vector product ")
    return got
