"""The spectral decompositions (rules/spectral.py): eigh, eig, svd. One spec per case,
float64 and complex128, batched, against jax.vjp and float64 finite differences
(``matrix_specs.run_spec``). Complex eigen- and singular vectors have a phase that JAX's rule
fixes its own way, so finite differences check them through gauge-free functions (matrix
functions V f(w) V^H, U f(s) V^H); repeated eigenvalues and zero singular values give JAX's
inf/NaN; second order on a sample."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from funcnn import backprop
from tests.backprop.matrix_specs import (
    SLOW,
    S,
    case_params,
    exactly,
    general,
    positive_definite,
    run_spec,
    singular_values,
    slow,
    spec_name,
    unique_names,
    with_spectrum,
)
from tests.backprop.sampling import check_hvp, rng_for

# A real array cast into a complex computation (w into V diag(w) V^H) has a complex cotangent
# cast back to real: lax.convert_element_type takes the real part (the right transpose) and
# warns. The values are checked; the warning is a known issue of registry.like.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Casting complex values to real:numpy.exceptions.ComplexWarning")


def eigh_function(a):
    """V diag(tanh(w)) V^H: gauge-free."""
    w, v = jnp.linalg.eigh(a)
    return (v * jnp.tanh(w)[..., None, :]) @ jnp.conj(jnp.swapaxes(v, -1, -2))


def raw_eigh(a):
    return lax.linalg.eigh(a, symmetrize_input=False)


EIGH = [
    S("eigh", "eigh", jnp.linalg.eigh, general((4, 4))),
    slow(S("eigh_batched", "eigh", jnp.linalg.eigh, general((2, 3, 3)))),
    S("eigvalsh", "eigh", jnp.linalg.eigvalsh, general((5, 5))),
    slow(S("eigh_upper", "eigh", lambda a: jnp.linalg.eigh(a, UPLO="U"), general((4, 4)))),
    S("eigh_raw", "eigh", raw_eigh, with_spectrum([0.5, 1.0, 2.0, 4.0]), fd=False),  # reads
    # one triangle; JAX's rule takes dA whole (jnp.linalg.eigh symmetrizes first)
    S("eigh_complex", "eigh", jnp.linalg.eigh, general((3, 3), cplx=True), fd=False),
    S("eigh_complex_function", "eigh", eigh_function, general((2, 3, 3), cplx=True)),
    slow(S("eigvalsh_complex", "eigh", jnp.linalg.eigvalsh, general((4, 4), cplx=True))),
    S("eigh_function", "eigh", eigh_function, general((4, 4))),
    S("eigh_close_eigenvalues", "eigh", jnp.linalg.eigh,
      with_spectrum([1.0, 1.0 + 1e-4, 2.0, 3.0]), fd=False, rtol=1e-7),  # F ~ 1e4
]


def eig_vectors(left):
    return lambda a: lax.linalg.eig(a, compute_left_eigenvectors=left,
                                    compute_right_eigenvectors=True, enable_eigvec_derivs=True)


EIG = [
    S("eigvals", "eig", jnp.linalg.eigvals, general((4, 4))),
    slow(S("eigvals_batched", "eig", jnp.linalg.eigvals, general((2, 3, 3)))),
    S("eigvals_complex", "eig", jnp.linalg.eigvals, general((4, 4), cplx=True)),
    # a real matrix's complex eigenvector pairs: LAPACK's normalization is not smooth at this
    # sample (finite differences jump); the complex specs below check it
    S("eig_right_vectors", "eig", eig_vectors(False), general((4, 4)), fd=False),
    S("eig_right_vectors_complex", "eig", eig_vectors(False), general((3, 3), cplx=True)),
    slow(S("eig_left_and_right", "eig", eig_vectors(True), general((3, 3)))),
    S("eig_left_and_right_complex", "eig", eig_vectors(True), general((2, 3, 3), cplx=True)),
]


def svd_function(a):
    """U diag(s^2) V^H: gauge-free."""
    u, s, vt = jnp.linalg.svd(a, full_matrices=False)
    return (u * s[..., None, :] ** 2) @ vt


def thin_svd(a):
    return jnp.linalg.svd(a, full_matrices=False)


SVD = [
    S("svd_tall", "svd", thin_svd, general((5, 3))),
    S("svd_wide", "svd", thin_svd, general((3, 5))),
    slow(S("svd_square_full", "svd", jnp.linalg.svd, general((4, 4)))),  # full = thin when square
    slow(S("svd_batched", "svd", thin_svd, general((2, 4, 3)))),
    S("svd_values", "svd", lambda a: jnp.linalg.svd(a, compute_uv=False), general((2, 5, 3))),
    slow(S("svd_values_wide", "svd", jnp.linalg.svdvals, general((3, 5)))),
    # JAX refuses a full-matrices SVD of a non-square matrix even when only s is used; the
    # engine differentiates s (finite differences agree)
    S("svd_values_of_full", "svd", lambda a: jnp.linalg.svd(a)[1], general((5, 3)),
      against_jax=False),
    S("svd_complex_tall", "svd", thin_svd, general((5, 3), cplx=True), fd=False),
    S("svd_complex_wide", "svd", thin_svd, general((3, 4), cplx=True), fd=False),
    S("svd_complex_function", "svd", svd_function, general((2, 4, 3), cplx=True)),
    slow(S("svd_complex_function_wide", "svd", svd_function, general((3, 4), cplx=True))),
    S("svd_complex_values", "svd", jnp.linalg.svdvals, general((3, 5), cplx=True)),
    slow(S("svd_u_only", "svd", lambda a: thin_svd(a)[0], general((5, 3)))),
    slow(S("svd_vt_only", "svd", lambda a: thin_svd(a)[2], general((3, 5)))),
    S("svd_spectral_norm", "svd", lambda a: jnp.linalg.norm(a, 2), general((4, 3))),
    slow(S("svd_nuclear_norm", "svd", lambda a: jnp.linalg.norm(a, "nuc"), general((3, 4)))),
    S("pinv", "svd", jnp.linalg.pinv, general((4, 3))),
    S("svd_ill_conditioned", "svd", thin_svd, singular_values([1.0, 1e-3, 1e-6], 4, 3),
      fd=False, rtol=1e-6),  # rtol ~ cond(F) * eps
]

SPECS = EIGH + EIG + SVD


def test_spec_names_are_unique():
    assert unique_names(SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=[spec_name(s) for s in SPECS])
def test_rule(spec):
    run_spec(spec)


# --- degenerate points: JAX's inf/NaN, entry by entry; zero-size batches ------------------------
REPEATED = np.diag([1.0, 1.0, 2.0, 3.0])  # exactly repeated eigenvalues and singular values

DEGENERATE = [
    S("eigh_repeated", "eigh", jnp.linalg.eigh, exactly(REPEATED), fd=False),
    S("eigvalsh_repeated", "eigh", jnp.linalg.eigvalsh, exactly(REPEATED), fd=False),
    S("eig_repeated", "eig", eig_vectors(False), exactly(REPEATED), fd=False),
    S("svd_repeated", "svd", thin_svd, exactly(REPEATED), fd=False),
    S("svd_zero_singular_value", "svd", thin_svd, exactly([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]),
      fd=False),
    S("svd_values_rank_deficient", "svd", jnp.linalg.svdvals,
      singular_values([2.0, 1.0, 0.0], 3, 3), fd=False),
    S("eigh_zero_batch", "eigh", jnp.linalg.eigh, general((0, 3, 3))),
    S("svd_zero_batch", "svd", thin_svd, general((0, 4, 3))),
    S("eigvals_zero_batch", "eig", jnp.linalg.eigvals, general((0, 3, 3))),
]


@pytest.mark.parametrize("spec", DEGENERATE, ids=[spec_name(s) for s in DEGENERATE])
def test_degenerate(spec):
    got = run_spec(spec)
    if spec.name in ("eigh_repeated", "eig_repeated", "svd_repeated", "svd_zero_singular_value"):
        assert not all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(got))


# --- what JAX refuses, the engine refuses with a clear error ------------------------------------
REFUSED = [
    ("eigenvectors_without_opt_in", lambda a: jnp.linalg.eig(a)[1].real.sum(), (4, 4),
     "enable_eigvec_derivs"),
    # JAX refuses once eigenvectors are computed without the opt-in, even when only the
    # eigenvalues are used
    ("eigenvalues_of_an_eig_with_eigenvectors", lambda a: jnp.linalg.eig(a)[0].real.sum(),
     (4, 4), "enable_eigvec_derivs"),
    ("full_svd_of_a_tall_matrix", lambda a: jnp.linalg.svd(a)[0].sum(), (4, 3),
     "full_matrices=False"),
]


@pytest.mark.parametrize("f, shape, hint", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_like_jax(f, shape, hint):
    a = rng_for(str(shape)).standard_normal(shape)
    with pytest.raises(NotImplementedError):
        jax.grad(f)(a)
    with pytest.raises(NotImplementedError, match=hint):
        backprop.grad(f)(a)


# --- second order: the engine on its own output, against jax.hessian ---------------------------
SECOND_ORDER = [
    ("eigvalsh_weighted", lambda a: (jnp.linalg.eigvalsh(a) * jnp.arange(1.0, 5.0)).sum(),
     general((4, 4))),
    ("eigh_function", lambda a: eigh_function(a)[0].sum(), positive_definite(3), SLOW),
    ("svd_values", lambda a: (jnp.linalg.svdvals(a) ** 3).sum(), general((4, 3))),
    ("svd_function", lambda a: svd_function(a)[1].sum(), general((3, 4)), SLOW),
    # (eigvals alone has no second order in JAX: its rule needs the eigenvectors' derivative)
    ("eig_with_opt_in", lambda a: (eig_vectors(False)(a)[0] ** 2).real.sum()
     + jnp.abs(eig_vectors(False)(a)[1][0]).sum(), general((3, 3)), SLOW),
]


@pytest.mark.parametrize("loss, sample", case_params(SECOND_ORDER))
def test_second_order(loss, sample):
    rng = rng_for(f"hvp-{loss}")
    check_hvp(loss, sample(rng), rng)
