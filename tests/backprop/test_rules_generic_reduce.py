"""The variadic reduce (rules/generic_reduce.py): lax.reduce with a reducer of its own, over
one or several operands and axes. Against jax.vjp and float64 finite differences; a
differentiated initial value is refused, as by JAX; second order on a sample."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from funcnn import backprop
from tests.backprop.matrix_specs import S, run_spec, spec_name, unique_names
from tests.backprop.sampling import check_hvp, distinct, normal, rng_for, run_jitted, uniform


def argmax_pair(x, axes=(1,)):
    """(max, argmax) as one variadic reduce: (value, index) pairs, larger value wins."""
    idx = lax.broadcasted_iota(jnp.int32, x.shape, axes[0])

    def pick(a, b):
        take_b = b[0] > a[0]
        return (jnp.where(take_b, b[0], a[0]), jnp.where(take_b, b[1], a[1]))

    return lax.reduce((x, idx), (-jnp.inf, jnp.int32(0)), pick, axes)


def sum_and_product(x, y):
    return lax.reduce((x, y), (0.0, 1.0), lambda a, b: (a[0] + b[0], a[1] * b[1]), (0,))


def complex_product(x, y):
    """A reducer coupling its operands: the product of the complex numbers x + iy, as pairs
    (associative and commutative, as lax.reduce needs: XLA may combine in any order)."""
    return lax.reduce((x, y), (1.0, 0.0),
                      lambda a, b: (a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]),
                      (0, 1))


def logaddexp_reduce(x):
    return lax.reduce(x, -jnp.inf, jnp.logaddexp, (1,))


SPECS = [
    # JAX's rule fails on an integer operand (it reshapes its symbolic zero tangent): the
    # (value, index) pairs are checked by finite differences and the closed form below
    S("argmax_pair", "reduce", argmax_pair, distinct((3, 5)), against_jax=False),
    S("argmax_pair_odd_length", "reduce", argmax_pair, distinct((2, 7)), against_jax=False),
    S("sum_and_product", "reduce", sum_and_product, normal((5, 3)), normal((5, 3))),
    S("coupled_reducer_two_axes", "reduce", complex_product, uniform(0.5, 1.5, (3, 5, 2)),
      uniform(-0.5, 0.5, (3, 5, 2))),
    S("logaddexp_single_operand", "reduce", logaddexp_reduce, normal((3, 6))),
    S("zero_length", "reduce", lambda x, y: sum_and_product(x, y), normal((0, 3)),
      normal((0, 3))),
]


def test_spec_names_are_unique():
    assert unique_names(SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=[spec_name(s) for s in SPECS])
def test_rule(spec):
    run_spec(spec)


def test_differentiated_initial_value_is_refused():
    def f(init):
        return lax.reduce(jnp.arange(3.0), init, jnp.logaddexp, (0,))

    with pytest.raises(NotImplementedError):
        jax.grad(f)(0.0)
    with pytest.raises(NotImplementedError, match="initial value"):
        backprop.grad(f)(0.0)


@pytest.mark.parametrize("x", [[[0.5, 2.0, -1.0]], [[1.0, 3.0, 3.0, 0.0, 3.0]], [[2.0, 2.0]]],
                         ids=["distinct", "ties", "all_equal"])
def test_argmax_pair_gradient_goes_to_one_maximum(x):
    """The whole cotangent goes to one entry holding the maximum. With ties it is the one the
    pairwise tree picks (JAX's rule's tree), which need not be the index XLA returns."""
    x = jnp.asarray(x)
    got = np.asarray(run_jitted(backprop.grad(lambda x: argmax_pair(x)[0].sum()), x))[0]
    assert got.sum() == 1.0 and np.count_nonzero(got) == 1
    assert x[0, int(np.argmax(got))] == x.max()


def test_second_order():
    rng = rng_for("hvp-reduce")
    check_hvp(lambda x: complex_product(x, jnp.sin(x))[1].sum(), normal((2, 3, 2))(rng), rng)
