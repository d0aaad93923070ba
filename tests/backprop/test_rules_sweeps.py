"""Sweeps of existing rules over their parameters, as issue #12 asks: the cumulative ops
(rules/reductions.py) at every axis and in both directions, clamp, reduce_precision, and sort
with several operands and keys. Each sweep runs in one program (one compilation), every case
with its own operand so that a failure names it. Against jax.vjp and float64 finite
differences."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from tests.backprop.sampling import check_vjp_complex, distinct, normal, rng_for, uniform

SHAPE = (2, 3, 4)
CUMULATIVE = {
    "cumsum": (lax.cumsum, normal(SHAPE)),
    "cumprod": (lax.cumprod, uniform(0.5, 1.5, SHAPE)),
    "cummax": (lax.cummax, distinct(SHAPE)),
    "cummin": (lax.cummin, distinct(SHAPE)),
    "cumlogsumexp": (lax.cumlogsumexp, normal(SHAPE)),
}
CASES = [(axis, reverse) for axis in range(len(SHAPE)) for reverse in (False, True)]


def case_name(axis, reverse):
    return f"axis{axis}{'_reverse' if reverse else ''}"


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "cummin" else n
                                  for n in CUMULATIVE])  # cummin: derived as cummax is
def test_cumulative_every_axis_and_direction(name):
    op, sample = CUMULATIVE[name]
    rng = rng_for(f"sweep-{name}")
    xs = {case_name(a, r): sample(rng) for a, r in CASES}

    def f(xs):
        return {case_name(a, r): op(xs[case_name(a, r)], axis=a, reverse=r) for a, r in CASES}

    check_vjp_complex(f, (xs,), rng)


def test_cumulative_negative_axis_and_jnp_forms():
    rng = rng_for("sweep-jnp")
    x, y = normal(SHAPE)(rng), uniform(0.5, 1.5, SHAPE)(rng)

    def f(x, y):
        return (jnp.cumsum(x, axis=-1), jnp.cumprod(y, axis=-2), jnp.cumsum(x[::-1], axis=0),
                lax.cumlogsumexp(x, axis=2, reverse=True), jnp.cumulative_sum(x, axis=1))

    check_vjp_complex(f, (x, y), rng)


def test_clamp_array_and_scalar_bounds():
    rng = rng_for("sweep-clamp")
    lo, x, hi = uniform(-1.0, -0.2, SHAPE)(rng), normal(SHAPE, 2.0)(rng), uniform(0.2, 1.0,
                                                                                 SHAPE)(rng)

    def f(lo, x, hi):
        return (lax.clamp(lo, x, hi), lax.clamp(-0.5, x, 0.7), jnp.clip(x, lo, hi),
                jnp.clip(x, min=-0.3))

    check_vjp_complex(f, (lo, x, hi), rng)


@pytest.mark.parametrize("exponent_bits, mantissa_bits", [(8, 7), (5, 10), (11, 52), (8, 23)],
                         ids=["bf16", "f16", "f64", "f32"])
def test_reduce_precision(exponent_bits, mantissa_bits):
    """JAX's rule rounds the cotangent too (reduce_precision is its own transpose); in float64
    with a random cotangent the two differ unless the rule does the same."""
    rng = rng_for(f"sweep-rp-{mantissa_bits}")
    x = normal(SHAPE)(rng)

    def f(x):
        return lax.reduce_precision(x * x, exponent_bits=exponent_bits,
                                    mantissa_bits=mantissa_bits)

    check_vjp_complex(f, (x,), rng, fd=mantissa_bits >= 52)  # rounding: no finite differences


def test_sort_several_operands_and_keys():
    rng = rng_for("sweep-sort")
    k, v, w = distinct(SHAPE)(rng), normal(SHAPE)(rng), normal(SHAPE)(rng)
    k2 = np.floor(distinct(SHAPE)(rng))  # ties in the first key, broken by the second

    def f(k, v, w, k2):
        return (lax.sort((k, v, w), dimension=0, num_keys=1),
                lax.sort((k, v), dimension=2, num_keys=1, is_stable=False),
                lax.sort((k2, k, v), dimension=1, num_keys=2),
                jnp.sort(w, axis=1, descending=True))

    check_vjp_complex(f, (k, v, w, k2), rng, fd=False)  # k2's ties: no finite differences
    check_vjp_complex(lambda k, v, w: f(k, v, w, k2)[:2], (k, v, w), rng)
