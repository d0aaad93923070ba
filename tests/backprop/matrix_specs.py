"""Shared pieces of the linear-algebra, complex and FFT rule tests: matrix samplers (each
draws from its op's domain: positive definite, triangular, with a chosen spectrum, singular),
the spec a table row is, and the check every row runs.

A spec is checked against ``jax.vjp`` with random (complex) cotangents and, where the
function is differentiable at the sample and its output is gauge-free, against central
finite differences in float64 (``sampling.check_vjp_complex``); the spec names the primitive
it is about and the test asserts the traced jaxpr contains it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np
import pytest

from tests.backprop.sampling import Sampler, check_vjp_complex, primitive_names, rng_for

JAX_VERSION = tuple(int(p) for p in jax.__version__.split(".")[:2])


class Spec(NamedTuple):
    name: str
    prim: str  # the primitive the spec is about: must appear in the traced jaxpr
    f: Callable
    args: tuple  # one sampler per argument
    fd: bool = True  # False where the output has a gauge (eigenvector phases) or a kink
    against_jax: bool = True  # False where JAX's own rule is wrong (said why at the row)
    rtol: float = 1e-10


def S(name, prim, f, *args, fd=True, against_jax=True, rtol=1e-10):
    return Spec(name, prim, f, tuple(args), fd, against_jax, rtol)


def run_spec(spec: Spec):
    rng = rng_for(spec.name)
    args = tuple(sample(rng) for sample in spec.args)
    found = primitive_names(spec.f, *args)
    assert spec.prim in found, f"spec {spec.name!r} claims {spec.prim!r}, traced {found}"
    return check_vjp_complex(spec.f, args, rng, rtol=spec.rtol, atol=spec.rtol * 1e-2,
                             fd=spec.fd, against_jax=spec.against_jax)


def unique_names(specs):
    names = [spec_name(s) for s in specs]
    return len(names) == len(set(names))


# --- matrix samplers: shape is [..., m, n]; ``cplx`` draws complex128 -------------------------
def draw(rng, shape, cplx):
    x = rng.standard_normal(shape)
    return x + 1j * rng.standard_normal(shape) if cplx else x


def general(shape, cplx=False) -> Sampler:
    return lambda rng: draw(rng, shape, cplx)


def well_conditioned(shape, cplx=False) -> Sampler:
    """A square matrix with a dominant diagonal: normal + 2 sqrt(n) I."""
    n = shape[-1]
    return lambda rng: draw(rng, shape, cplx) + 2 * np.sqrt(n) * np.eye(n)


def unitary(rng, shape, cplx):
    q, _ = np.linalg.qr(draw(rng, shape, cplx))
    return q


def with_spectrum(values, batch=(), cplx=False) -> Sampler:
    """Q diag(values) Q^H with Q random unitary: a Hermitian matrix with exactly this spectrum
    up to rounding (repeated values give nearly degenerate eigenvalues)."""
    n = len(values)

    def sample(rng):
        q = unitary(rng, batch + (n, n), cplx)
        return (q * np.asarray(values)) @ np.conj(np.swapaxes(q, -1, -2))

    return sample


def positive_definite(n, batch=(), cplx=False, cond=10.0) -> Sampler:
    """Hermitian positive definite with eigenvalues spread over [1, cond]."""
    return with_spectrum(np.geomspace(1.0, cond, n), batch, cplx)


def singular_values(values, m, n, cplx=False) -> Sampler:
    """U diag(values) V^H, [m, n], k = min(m, n) values: a chosen conditioning or rank."""
    k = min(m, n)

    def sample(rng):
        u, v = unitary(rng, (m, k), cplx), unitary(rng, (n, k), cplx)
        return (u * np.asarray(values)) @ np.conj(v.T)

    return sample


def triangular(shape, cplx=False) -> Sampler:
    """A matrix whose triangles both have a diagonal away from zero: a triangular solve reads
    one triangle, and the other, random, must get no cotangent."""
    n = shape[-1]
    return lambda rng: draw(rng, shape, cplx) + 3 * np.eye(n)


def rank_deficient(n, rank, cplx=False) -> Sampler:
    """An [n, n] matrix of the given rank (singular: its inverse and log-det are infinite)."""
    return lambda rng: draw(rng, (n, rank), cplx) @ draw(rng, (rank, n), cplx)


def exactly(value) -> Sampler:
    return lambda rng: np.asarray(value)


def slow(spec: Spec):
    """A table row that runs only with the slow tests (``-m slow``)."""
    return pytest.param(spec, marks=pytest.mark.slow, id=spec.name)


def spec_name(row) -> str:
    """The name of a table row: a spec, or a ``slow`` one."""
    return row.values[0].name if hasattr(row, "values") else row.name


def case_params(rows):
    """``pytest.param``s from rows ``(name, *values)`` or ``(name, *values, SLOW)``: the id is
    the name, and a row ending in ``SLOW`` runs only with the slow tests."""
    params = []
    for name, *values in rows:
        marks = ()
        if values and values[-1] is SLOW:
            values, marks = values[:-1], (pytest.mark.slow,)
        params.append(pytest.param(*values, id=name, marks=marks))
    return params


SLOW = object()  # the last item of a ``case_params`` row that runs only with the slow tests
