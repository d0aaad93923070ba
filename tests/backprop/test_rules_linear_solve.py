"""custom_linear_solve (rules/linear_solve.py): jnp.linalg.solve and inv, expm, user systems
with a transpose solve or symmetric, a pytree right-hand side, an active preconditioner (no
cotangent, as JAX), and the refusal without transpose_solve. Against jax.vjp and float64
finite differences; second order on a sample."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from jax import lax

from funcnn import backprop
from tests.backprop.matrix_specs import (
    SLOW,
    S,
    case_params,
    general,
    positive_definite,
    run_spec,
    singular_values,
    slow,
    spec_name,
    unique_names,
    well_conditioned,
)
from tests.backprop.sampling import check_hvp, rng_for

pytestmark = pytest.mark.filterwarnings(  # see test_rules_decompositions.py
    "ignore:Casting complex values to real:numpy.exceptions.ComplexWarning")


def solve_with_transpose(a, b):
    """A x = b by a dense solve, with an explicit transpose solve."""
    return lax.custom_linear_solve(lambda x: a @ x, b, solve=lambda _, y: jnp.linalg.solve(a, y),
                                   transpose_solve=lambda _, y: jnp.linalg.solve(a.T, y))


def symmetric_solve(a, b):
    """S x = b for S = a a^T + I, symmetric: solved by Cholesky."""
    s = a @ a.T + jnp.eye(a.shape[0])

    def solve(_, y):
        return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(s), y)

    return lax.custom_linear_solve(lambda x: s @ x, b, solve=solve, symmetric=True)


def pytree_solve(a, d, b1, b2):
    """A block-diagonal system on a pair: (a x1, d * x2) = (b1, b2)."""
    def matvec(x):
        return (a @ x[0], d * x[1])

    def solve(_, y):
        return (jnp.linalg.solve(a, y[0]), y[1] / d)

    def transpose_solve(_, y):
        return (jnp.linalg.solve(a.T, y[0]), y[1] / d)

    return lax.custom_linear_solve(matvec, (b1, b2), solve=solve,
                                   transpose_solve=transpose_solve)


def preconditioned(a, p, b):
    """solve ignores its (active) preconditioner p in value; JAX gives p no cotangent."""
    return lax.custom_linear_solve(lambda x: a @ x, b,
                                   solve=lambda _, y: jnp.linalg.solve(a + 0 * p, y),
                                   transpose_solve=lambda _, y: jnp.linalg.solve(a.T, y))


SPECS = [
    S("solve_vector", "custom_linear_solve", jnp.linalg.solve, well_conditioned((4, 4)),
      general((4,))),
    S("solve_matrix", "custom_linear_solve", jnp.linalg.solve, well_conditioned((4, 4)),
      general((4, 3))),
    slow(S("solve_batched", "custom_linear_solve", jnp.linalg.solve, well_conditioned((2, 3, 3)),
           general((2, 3, 2)))),
    S("solve_complex", "custom_linear_solve", jnp.linalg.solve,
      well_conditioned((3, 3), cplx=True), general((3, 2), cplx=True)),
    S("solve_ill_conditioned", "custom_linear_solve", jnp.linalg.solve,
      singular_values([1.0, 1e-2, 1e-4, 1e-6], 4, 4), general((4,)), fd=False,
      rtol=1e-6),  # cotangents ~ cond^2 = 1e12 times rounding: rtol from the conditioning
    S("inv", "custom_linear_solve", jnp.linalg.inv, well_conditioned((4, 4))),
    slow(S("inv_complex", "custom_linear_solve", jnp.linalg.inv,
           well_conditioned((3, 3), cplx=True))),
    S("expm", "custom_linear_solve", jax.scipy.linalg.expm, general((3, 3))),
    # solve (Cholesky) reads one triangle of a, matvec all of it: they are each other's
    # inverse only at symmetric a, so finite differences in a random direction measure
    # another function
    slow(S("scipy_solve_assume_pos", "custom_linear_solve",
           lambda a, b: jax.scipy.linalg.solve(a, b, assume_a="pos"), positive_definite(4),
           general((4, 2)), fd=False)),
    S("custom_transpose_solve", "custom_linear_solve", solve_with_transpose,
      well_conditioned((4, 4)), general((4,))),
    S("custom_symmetric", "custom_linear_solve", symmetric_solve, general((4, 4)),
      general((4, 2))),
    S("custom_pytree_rhs", "custom_linear_solve", pytree_solve, well_conditioned((3, 3)),
      lambda rng: rng.uniform(1.0, 2.0, (2,)), general((3,)), general((2,))),
    S("conjugate_gradient", "custom_linear_solve",  # symmetric, its solve a while loop
      lambda s, b: jax.scipy.sparse.linalg.cg(lambda x: s @ x, b, tol=1e-13)[0],
      positive_definite(4), general((4,)), rtol=1e-8),
    S("custom_active_preconditioner", "custom_linear_solve", preconditioned,
      well_conditioned((3, 3)), general((3, 3)), general((3,)), fd=False),  # p: no derivative
]


def test_spec_names_are_unique():
    assert unique_names(SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=[spec_name(s) for s in SPECS])
def test_rule(spec):
    run_spec(spec)


def test_without_transpose_solve_both_refuse():
    a = well_conditioned((3, 3))(rng_for("refuse"))

    def f(b):
        return lax.custom_linear_solve(lambda x: a @ x, b,
                                       solve=lambda _, y: jnp.linalg.solve(a, y)).sum()

    with pytest.raises(TypeError):
        jax.grad(f)(jnp.ones(3))
    with pytest.raises(TypeError, match="transpose_solve"):
        backprop.grad(f)(jnp.ones(3))


SECOND_ORDER = [
    ("solve", lambda a: (jnp.linalg.solve(a, jnp.arange(1.0, 4.0)) ** 2).sum(),
     well_conditioned((3, 3))),
    ("inv", lambda a: jnp.linalg.inv(a)[0].sum() + jnp.trace(jnp.linalg.inv(a)),
     well_conditioned((3, 3)), SLOW),
    ("expm", lambda a: jax.scipy.linalg.expm(a)[1].sum(), general((2, 2)), SLOW),
    ("symmetric", lambda a: symmetric_solve(a, jnp.ones((3, 1))).sum(), general((3, 3)), SLOW),
]


@pytest.mark.parametrize("loss, sample", case_params(SECOND_ORDER))
def test_second_order(loss, sample):
    rng = rng_for(f"hvp-{loss}")
    check_hvp(loss, sample(rng), rng)
