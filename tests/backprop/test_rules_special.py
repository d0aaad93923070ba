"""The special functions (rules/special.py) and the random-number primitives
(rules/random.py): each against jax.vjp and float64 finite differences on its domain, the
points where a guard is taken (i1e at 0), the operands JAX cannot differentiate (polygamma's
m, betainc's a and b: a clear error in both), random_gamma's reparameterized gradient, and
the key operations and bit generators as non-differentiable."""
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
    run_spec,
    slow,
    spec_name,
    unique_names,
)
from tests.backprop.sampling import check_hvp, normal, rng_for, run_jitted, uniform

M = (3, 4)
POS = uniform(0.5, 4.0, M)
UNIT = uniform(0.05, 0.95, M)

SPECS = [
    S("bessel_i0e", "bessel_i0e", lax.bessel_i0e, normal(M, 3.0)),
    S("bessel_i1e", "bessel_i1e", lax.bessel_i1e, normal(M, 3.0)),
    S("bessel_i1e_at_zero", "bessel_i1e", lax.bessel_i1e, exactly([0.0, -0.0, 1e-20, 2.0]),
      fd=False),  # the guard |x| <= eps gives 1/2, JAX's value (and the true one)
    slow(S("bessel_i0e_scipy", "bessel_i0e", jax.scipy.special.i0e, normal(M, 2.0))),
    slow(S("bessel_i0", "bessel_i0e", jax.scipy.special.i0, normal(M, 2.0))),
    slow(S("bessel_i1", "bessel_i1e", jax.scipy.special.i1, normal(M, 2.0))),
    S("igamma", "igamma", lax.igamma, POS, POS),
    slow(S("igamma_x_only", "igamma", lambda x: lax.igamma(2.5, x), POS)),
    slow(S("gammainc", "igamma", jax.scipy.special.gammainc, POS, POS)),
    S("igammac", "igammac", lax.igammac, POS, POS),
    slow(S("gammaincc", "igammac", jax.scipy.special.gammaincc, POS, POS)),
    S("polygamma_x", "polygamma", lambda x: lax.polygamma(2.0, x), POS),
    slow(S("polygamma_scipy", "polygamma", lambda x: jax.scipy.special.polygamma(1, x), POS)),
    S("betainc_x", "regularized_incomplete_beta",
      lambda x: lax.betainc(2.0, 3.5, x), UNIT),
    slow(S("betainc_scipy_x", "regularized_incomplete_beta",
           lambda x: jax.scipy.special.betainc(1.5, 0.7, x), UNIT)),
    slow(S("lgamma", "lgamma", lax.lgamma, POS)),
    slow(S("digamma", "digamma", lax.digamma, POS)),
    slow(S("erf_inv", "erf_inv", lax.erf_inv, uniform(-0.9, 0.9, M))),
]


def test_spec_names_are_unique():
    assert unique_names(SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=[spec_name(s) for s in SPECS])
def test_rule(spec):
    run_spec(spec)


REFUSED = [  # JAX defines no derivative in these operands: both raise, the engine says which
    ("polygamma_m", lambda m: lax.polygamma(m, 1.5), 2.0, "m"),
    ("betainc_a", lambda a: lax.betainc(a, 2.0, 0.3), 1.5, "a"),
    ("betainc_b", lambda b: lax.betainc(1.5, b, 0.3), 2.0, "b"),
]


@pytest.mark.parametrize("f, x, which", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_no_derivative_in_some_operands(f, x, which):
    with pytest.raises((ValueError, NotImplementedError)):
        jax.grad(f)(x)
    with pytest.raises(NotImplementedError, match=f"respect to {which}"):
        backprop.grad(f)(x)


def test_refused_operand_as_a_constant_is_fine():
    f = lambda x: lax.betainc(1.5, 2.0, x)  # noqa: E731  (a, b literals: not differentiated)
    got, want = run_jitted(lambda x: (backprop.grad(f)(x), jax.grad(f)(x)), 0.3)
    np.testing.assert_allclose(got, want, rtol=1e-12)


# --- random numbers -------------------------------------------------------------------------------
def gamma_samples(a):
    return jax.random.gamma(jax.random.PRNGKey(0), a)


def loggamma_samples(a):
    return jax.random.loggamma(jax.random.PRNGKey(1), a)


RANDOM = [
    S("random_gamma", "random_gamma", gamma_samples, uniform(0.3, 5.0, (6,)), fd=False),
    slow(S("random_loggamma", "random_gamma", loggamma_samples, uniform(0.3, 5.0, (6,)), fd=False)),
    slow(S("random_beta", "random_gamma",
           lambda a, b: jax.random.beta(jax.random.PRNGKey(2), a, b), uniform(0.5, 3.0, (4,)),
           uniform(0.5, 3.0, (4,)), fd=False)),
    slow(S("random_dirichlet", "random_gamma",
           lambda a: jax.random.dirichlet(jax.random.PRNGKey(3), a), uniform(0.5, 3.0, (4,)),
           fd=False)),
    S("random_fold_in_split", "random_split",
      lambda x: x * jax.random.normal(jax.random.split(jax.random.fold_in(
          jax.random.PRNGKey(4), 7))[1], x.shape), normal((3,))),
    S("random_uniform_bits", "random_bits",
      lambda x: x * jax.random.uniform(jax.random.key(5), x.shape), normal((3,))),
]
# (random samples are not smooth in the finite-difference sense for a: a fresh draw per a is
# the same u only in exact arithmetic; the gradient is checked against jax.vjp, which uses the
# same implicit-reparameterization identity, and against the closed form below.)


@pytest.mark.parametrize("spec", RANDOM, ids=[spec_name(s) for s in RANDOM])
def test_random(spec):
    run_spec(spec)


@pytest.mark.slow
def test_random_gamma_gradient_matches_the_cdf_identity():
    """dx/da = -(dF/da)(x; a) / p(x; a) for F = igamma(a, x), the CDF: a closed form from
    igamma's derivative in a (finite differences of F in a), not from JAX's rule."""
    def both(a):
        x = gamma_samples(a)
        got = backprop.vjp(gamma_samples, a)[1](jnp.ones(3))[0]
        eps = 1e-6
        d_cdf_da = (lax.igamma(a + eps, x) - lax.igamma(a - eps, x)) / (2 * eps)
        density = jnp.exp((a - 1) * jnp.log(x) - x - lax.lgamma(a))
        return got, -d_cdf_da / density

    got, want = run_jitted(both, jnp.array([0.7, 1.5, 3.0]))
    np.testing.assert_allclose(got, want, rtol=1e-5)


SECOND_ORDER = [
    ("bessel", lambda x: (lax.bessel_i1e(x) * lax.bessel_i0e(x)).sum(), normal((4,), 2.0)),
    ("igamma", lambda x: lax.igamma(2.0, x).sum() + lax.igammac(1.5, x * x).sum(),
     uniform(0.5, 3.0, (4,)), SLOW),
    ("betainc", lambda x: lax.betainc(2.0, 3.0, x).sum(), uniform(0.1, 0.9, (4,)), SLOW),
]


@pytest.mark.parametrize("loss, sample", case_params(SECOND_ORDER))
def test_second_order(loss, sample):
    rng = rng_for(f"hvp-{loss}")
    check_hvp(loss, sample(rng), rng)
