"""The triangular factorizations (rules/decompositions.py): cholesky, lu with its pivots, qr.
One spec per case, float64 and complex128, batched, against jax.vjp and float64 finite
differences (``matrix_specs.run_spec``); the degenerate points (not positive definite,
singular, zero-size batches) against JAX's inf/NaN; second order on a sample."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from tests.backprop.matrix_specs import (
    JAX_VERSION,
    SLOW,
    S,
    case_params,
    exactly,
    general,
    positive_definite,
    rank_deficient,
    run_spec,
    slow,
    spec_name,
    unique_names,
    well_conditioned,
)
from tests.backprop.sampling import check_hvp, rng_for

# A real array cast into a complex computation has a complex cotangent cast back to real:
# lax.convert_element_type takes the real part (the right transpose) and warns. The values are
# checked; the warning is a known issue of registry.like.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Casting complex values to real:numpy.exceptions.ComplexWarning")


def raw_cholesky(a):
    # the primitive itself (no symmetrization); its upper triangle is not the factor's
    return jnp.tril(lax.linalg.cholesky(a, symmetrize_input=False))


# JAX < 0.11 differentiates the raw primitive as if it read the whole of a (it reads the lower
# triangle); the engine gives the primitive's true derivative (finite differences agree).
RAW_CHOLESKY_LIKE_JAX = JAX_VERSION >= (0, 11)

CHOLESKY = [
    S("cholesky_raw", "cholesky", raw_cholesky, positive_definite(4),
      against_jax=RAW_CHOLESKY_LIKE_JAX),
    slow(S("cholesky_raw_complex", "cholesky", raw_cholesky, positive_definite(3, cplx=True),
           against_jax=RAW_CHOLESKY_LIKE_JAX)),
    S("cholesky_jnp", "cholesky", jnp.linalg.cholesky, positive_definite(4)),
    slow(S("cholesky_jnp_batched", "cholesky", jnp.linalg.cholesky, positive_definite(3, (2, 2)))),
    S("cholesky_jnp_complex", "cholesky", jnp.linalg.cholesky,
      positive_definite(3, (2,), cplx=True)),
    S("cholesky_ill_conditioned", "cholesky", jnp.linalg.cholesky,
      positive_definite(4, cond=1e6), fd=False, rtol=1e-7),  # rtol ~ cond * eps * 1e3
    S("cholesky_logdet", "cholesky",
      lambda a: 2 * jnp.log(jnp.diagonal(jnp.linalg.cholesky(a))).sum(), positive_definite(5)),
    S("cho_solve", "cholesky",
      lambda a, b: jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(a), b),
      positive_definite(4), general((4, 2)),
      against_jax=RAW_CHOLESKY_LIKE_JAX),  # cho_factor is the raw primitive
    slow(S("cholesky_1x1", "cholesky", jnp.linalg.cholesky, exactly([[2.5]]))),
]

LU = [
    S("lu_square", "lu", lambda a: lax.linalg.lu(a)[0], general((4, 4))),
    slow(S("lu_batched", "lu", lambda a: lax.linalg.lu(a)[0], general((2, 3, 3)))),
    S("lu_wide", "lu", lambda a: lax.linalg.lu(a)[0], general((3, 5))),
    slow(S("lu_tall", "lu", lambda a: lax.linalg.lu(a)[0], general((5, 3)))),
    S("lu_complex", "lu", lambda a: lax.linalg.lu(a)[0], general((4, 4), cplx=True)),
    slow(S("lu_complex_wide", "lu", lambda a: lax.linalg.lu(a)[0], general((2, 3, 4), cplx=True))),
    slow(S("lu_factor", "lu", lambda a: jax.scipy.linalg.lu_factor(a)[0], general((4, 4)))),
    slow(S("lu_scipy_plu", "lu", lambda a: jax.scipy.linalg.lu(a)[1:], general((4, 4)))),
    # det and slogdet go through lu for n >= 4 (closed forms below)
    S("det_4", "lu", jnp.linalg.det, general((4, 4))),
    slow(S("det_5_batched", "lu", jnp.linalg.det, general((2, 5, 5)))),
    S("det_complex", "lu", jnp.linalg.det, general((4, 4), cplx=True)),
    slow(S("slogdet_4", "lu", lambda a: jnp.linalg.slogdet(a)[1], general((4, 4)))),
    S("slogdet_complex", "lu", lambda a: jnp.linalg.slogdet(a), general((4, 4), cplx=True)),
    S("lu_solve", "lu",
      lambda a, b: jax.scipy.linalg.lu_solve(jax.scipy.linalg.lu_factor(a), b),
      well_conditioned((4, 4)), general((4, 3))),
]


def qr(mode):
    return lambda a: jnp.linalg.qr(a, mode=mode)


def pivoted_qr(a):
    q, r, _ = lax.linalg.qr(a, pivoting=True, full_matrices=False)
    return q, r


QR = [
    S("qr_tall_reduced", "qr", qr("reduced"), general((5, 3))),
    S("qr_tall_complete", "qr", qr("complete"), general((5, 3))),
    slow(S("qr_square", "qr", qr("reduced"), general((4, 4)))),
    S("qr_wide", "qr", qr("reduced"), general((3, 5))),
    slow(S("qr_wide_complete", "qr", qr("complete"), general((3, 5)))),
    slow(S("qr_r_only", "qr", qr("r"), general((5, 3)))),
    slow(S("qr_batched", "qr", qr("reduced"), general((2, 4, 3)))),
    S("qr_complex_tall", "qr", qr("reduced"), general((5, 3), cplx=True)),
    S("qr_complex_complete", "qr", qr("complete"), general((5, 3), cplx=True)),
    S("qr_complex_wide", "qr", qr("reduced"), general((2, 3, 5), cplx=True)),
    slow(S("qr_complex_square", "qr", qr("complete"), general((3, 3), cplx=True))),
    S("qr_pivoting_tall", "qr", pivoted_qr, general((5, 3))),
    # JAX's rule for a wide pivoted QR takes R2 = Q^H A2 with A's columns unpermuted (wrong:
    # A[:, p] = Q R); the engine permutes them, and finite differences agree with it
    S("qr_pivoting_wide", "qr", pivoted_qr, general((3, 5)), against_jax=False),
    slow(S("qr_orthogonality_penalty", "qr",
           lambda a: (jnp.linalg.qr(a)[0] ** 2).sum() + (jnp.linalg.qr(a)[1] ** 3).sum(),
           general((4, 3)))),
]

SPECS = CHOLESKY + LU + QR


def test_spec_names_are_unique():
    assert unique_names(SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=[spec_name(s) for s in SPECS])
def test_rule(spec):
    run_spec(spec)


# --- degenerate points: JAX's inf/NaN, entry by entry; zero-size batches ------------------------
def zero_row(n):
    def sample(rng):
        a = rng.standard_normal((n, n))
        a[1] = 0.0
        return a

    return sample


DEGENERATE = [
    S("cholesky_not_positive_definite", "cholesky", jnp.linalg.cholesky,
      exactly([[1.0, 2.0], [2.0, 1.0]]), fd=False),
    # a zero row: elimination leaves an exact zero pivot
    S("inv_singular_4", "lu", jnp.linalg.inv, zero_row(4), fd=False),
    S("solve_singular", "lu", lambda a, b: jnp.linalg.solve(a, b), zero_row(4),
      general((4,)), fd=False),
    S("slogdet_singular", "lu", lambda a: jnp.linalg.slogdet(a)[1], zero_row(5),
      fd=False),
    S("lu_singular", "lu", lambda a: lax.linalg.lu(a)[0], exactly(np.ones((4, 4))), fd=False),
    S("qr_rank_deficient", "qr", qr("reduced"), rank_deficient(4, 2), fd=False, rtol=1e-8),
    S("cholesky_zero_batch", "cholesky", jnp.linalg.cholesky, general((0, 3, 3))),
    S("lu_zero_batch", "lu", lambda a: lax.linalg.lu(a)[0], general((0, 3, 3))),
    S("qr_zero_batch", "qr", qr("reduced"), general((0, 4, 3))),
]


@pytest.mark.parametrize("spec", DEGENERATE, ids=[spec_name(s) for s in DEGENERATE])
def test_degenerate(spec):
    got = run_spec(spec)
    if spec.name.startswith(("cholesky_not", "inv_", "solve_", "slogdet_", "lu_singular")):
        assert not all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(got))


# --- second order: the engine on its own output, against jax.hessian ---------------------------
SECOND_ORDER = [
    ("cholesky_logdet", lambda a: jnp.log(jnp.diagonal(jnp.linalg.cholesky(a))).sum(),
     positive_definite(3)),
    ("cholesky_quadratic", lambda a: (jnp.linalg.cholesky(a) ** 2).sum(), positive_definite(3),
     SLOW),
    ("lu_det", jnp.linalg.det, general((4, 4))),
    ("slogdet", lambda a: jnp.linalg.slogdet(a)[1], general((4, 4)), SLOW),
    ("qr_r_diagonal", lambda a: jnp.abs(jnp.diagonal(jnp.linalg.qr(a)[1])).sum()
     + jnp.linalg.qr(a)[0][0].sum(), general((4, 3)), SLOW),
]


@pytest.mark.parametrize("loss, sample", case_params(SECOND_ORDER))
def test_second_order(loss, sample):
    rng = rng_for(f"hvp-{loss}")
    check_hvp(loss, sample(rng), rng)
