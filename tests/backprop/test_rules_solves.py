"""The structured solves (rules/solves.py): triangular_solve in every combination of
left_side, lower, transpose_a, conjugate_a and unit_diagonal, real and complex, batched; and
tridiagonal_solve. Against jax.vjp and float64 finite differences; second order on a sample.

The 32 triangular combinations run in one program per dtype (one compilation): each has its
own operands, so a failure names the combination in the leaf path.
"""
from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from tests.backprop.matrix_specs import (
    SLOW,
    S,
    case_params,
    general,
    run_spec,
    spec_name,
    triangular,
    unique_names,
)
from tests.backprop.sampling import check_hvp, check_vjp_complex, rng_for

FLAGS = ("left_side", "lower", "transpose_a", "conjugate_a", "unit_diagonal")
COMBINATIONS = [dict(zip(FLAGS, bits, strict=True))
                for bits in itertools.product((False, True), repeat=len(FLAGS))]


def combination_name(flags):
    return "-".join(name if on else f"not_{name}" for name, on in flags.items())


def all_triangular_solves(operands):
    """operands: {combination name: (a, b)} -> {combination name: x}."""
    return {combination_name(flags): lax.linalg.triangular_solve(*operands[
        combination_name(flags)], **flags) for flags in COMBINATIONS}


def triangular_operands(rng, cplx):
    """a: [m, m] (batched [2, m, m] for every other combination), b: [m, n] or [n, m] (right
    side). m = 3, n = 2: a solve from the left and one from the right differ in shape."""
    operands = {}
    for i, flags in enumerate(COMBINATIONS):
        batch = (2,) if i % 2 else ()
        a = triangular(batch + (3, 3), cplx=cplx)(rng)
        b = general(batch + ((3, 2) if flags["left_side"] else (2, 3)), cplx=cplx)(rng)
        operands[combination_name(flags)] = (a, b)
    return operands


@pytest.mark.parametrize("cplx", [False, True], ids=["float64", "complex128"])
def test_triangular_solve_every_combination(cplx):
    rng = rng_for(f"triangular-{cplx}")
    operands = triangular_operands(rng, cplx)
    got = check_vjp_complex(all_triangular_solves, (operands,), rng)
    for name, (ct_a, _) in got[0].items():  # the triangle not read gets no cotangent
        lower = "-lower-" in name
        unread = np.triu(ct_a, 1) if lower else np.tril(ct_a, -1)
        assert not np.any(unread), name
        if "-unit_diagonal" in name:
            assert not np.any(np.diagonal(ct_a, axis1=-2, axis2=-1)), name


def tridiagonal_solve(dl, d, du, b):
    return lax.linalg.tridiagonal_solve(dl, d, du, b)


def diagonal_band(shape, cplx=False, offset=0.0):
    def sample(rng):
        x = rng.standard_normal(shape) + offset
        return x + 1j * rng.standard_normal(shape) if cplx else x

    return sample


TRIDIAGONAL = [
    S("tridiagonal", "tridiagonal_solve", tridiagonal_solve, diagonal_band((5,)),
      diagonal_band((5,), offset=4.0), diagonal_band((5,)), general((5, 2))),
    S("tridiagonal_batched", "tridiagonal_solve", tridiagonal_solve, diagonal_band((2, 4)),
      diagonal_band((2, 4), offset=4.0), diagonal_band((2, 4)), general((2, 4, 3))),
    S("tridiagonal_complex", "tridiagonal_solve", tridiagonal_solve,
      diagonal_band((2, 5), True), diagonal_band((2, 5), True, 4.0),
      diagonal_band((2, 5), True), general((2, 5, 2), cplx=True)),
    S("tridiagonal_one_row", "tridiagonal_solve", tridiagonal_solve, diagonal_band((1,)),
      diagonal_band((1,), offset=3.0), diagonal_band((1,)), general((1, 2))),
    S("tridiagonal_zero_batch", "tridiagonal_solve", tridiagonal_solve, diagonal_band((0, 4)),
      diagonal_band((0, 4), offset=4.0), diagonal_band((0, 4)), general((0, 4, 2))),
    S("triangular_solve_inside_norm", "triangular_solve",
      lambda a, b: jnp.linalg.norm(
          lax.linalg.triangular_solve(a, b, left_side=True, lower=True)),
      triangular((4, 4)), general((4, 3))),
]


def test_spec_names_are_unique():
    assert unique_names(TRIDIAGONAL)


@pytest.mark.parametrize("spec", TRIDIAGONAL, ids=[spec_name(s) for s in TRIDIAGONAL])
def test_rule(spec):
    run_spec(spec)


def test_tridiagonal_unread_corners_get_no_cotangent():
    """dl[0] and du[-1] are outside the matrix: zero cotangent, as JAX."""
    rng = rng_for("corners")
    args = (diagonal_band((5,))(rng), diagonal_band((5,), offset=4.0)(rng),
            diagonal_band((5,))(rng), general((5, 2))(rng))
    ct_dl, _, ct_du, _ = check_vjp_complex(tridiagonal_solve, args, rng)
    assert ct_dl[0] == 0 and ct_du[-1] == 0


SECOND_ORDER = [
    ("triangular", lambda a: (lax.linalg.triangular_solve(
        a, jnp.ones((3, 2)), left_side=True, lower=True, transpose_a=True) ** 2).sum(),
     triangular((3, 3))),
    ("tridiagonal", lambda d: (tridiagonal_solve(jnp.full(4, 0.5), d, jnp.full(4, -0.3),
                                                 jnp.ones((4, 2))) ** 3).sum(),
     diagonal_band((4,), offset=3.0), SLOW),
]


@pytest.mark.parametrize("loss, sample", case_params(SECOND_ORDER))
def test_second_order(loss, sample):
    rng = rng_for(f"hvp-{loss}")
    check_hvp(loss, sample(rng), rng)
