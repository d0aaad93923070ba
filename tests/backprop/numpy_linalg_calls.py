"""How to call the public functions of ``jax.numpy.linalg``, ``jax.numpy.fft`` and
``jax.scipy.linalg`` (the conventions are ``numpy_calls``'s): square, well-conditioned or
positive definite matrices where a function needs them, vectors of length 3 for ``cross``,
the static lengths of the frequency grids, factorizations for ``cho_solve`` / ``lu_solve``.
The default argument of a ``jax.scipy.linalg`` function is a well-conditioned (3, 3) matrix
(``square_or_normal``).

The tie and zero points of a matrix function are singular matrices: the gradient there is
NaN/inf or a limit, and the engine must give jax.grad's.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from tests.backprop.matrix_specs import positive_definite, well_conditioned
from tests.backprop.numpy_calls import POS_SCALAR, SCALAR, SHAPE, C, listed, one
from tests.backprop.sampling import Sampler, normal

SQ = (3, 3)
PD = positive_definite(3)
WELL = well_conditioned(SQ)

LINALG = {
    "cholesky": (C(shapes=(SQ,), domain=(PD,)),),
    "cond": (C(shapes=(SQ,), domain=(WELL,)),),
    "cross": (C(shapes=((4, 3), (4, 3))),),
    "det": (C(shapes=(SQ,), domain=(WELL,)),),
    "eig": (C(shapes=(SQ,), domain=(WELL,)),  # eigenvectors: JAX refuses, the engine must
            *one(lambda f, a: f(a)[0], (SQ,), (WELL,), "eigenvalues")),
    "eigh": (C(shapes=(SQ,), domain=(PD,)),),
    "eigvals": (C(shapes=(SQ,), domain=(WELL,)),),
    "eigvalsh": (C(shapes=(SQ,), domain=(PD,)),),
    "inv": (C(shapes=(SQ,), domain=(WELL,)),),
    "lstsq": (C(shapes=((4, 3), (4,))),),
    "matmul": (C(shapes=(SHAPE, (4, 2))),),
    "matrix_norm": (C(), *one(lambda f, a: f(a, ord="nuc"), label="nuc"),
                    *one(lambda f, a: f(a, ord=2), label="ord2")),
    "matrix_power": one(lambda f, a: f(a, 3), (SQ,)),
    "multi_dot": (C(listed, 3, ((3, 4), (4, 2), (2, 3))),),
    "norm": (C(), *one(lambda f, a: f(a, axis=1), label="vectors"),
             *one(lambda f, a: f(a, ord=2), label="ord2")),
    "outer": (C(shapes=((3,), (4,))),),
    "slogdet": (C(shapes=(SQ,), domain=(WELL,)),),
    "solve": (C(shapes=(SQ, (3,)), domain=(WELL, normal((3,)))),),
    "svd": (C(), *one(lambda f, a: f(a, full_matrices=False), label="reduced")),  # full: no JVP
    "tensorinv": (C(shapes=((2, 3, 6),)),),
    "tensorsolve": (C(shapes=((2, 3, 6), (2, 3))),),
    "vector_norm": (C(), *one(lambda f, a: f(a, ord=1), label="ord1")),
}

FFT = {
    "fftfreq": one(lambda f, d: f(5, d), SCALAR, (POS_SCALAR,)),
    "rfftfreq": one(lambda f, d: f(5, d), SCALAR, (POS_SCALAR,)),
}

# --- jax.scipy.linalg: the default call is one well-conditioned (3, 3) matrix per argument ----
TRI = (3, 3)
V = (4,)


def with_factor(factor):
    """``f(factor(a), b)``: cho_solve / lu_solve take the factorization, differentiated
    through it."""
    return lambda f, a, b: f(factor(a), b)


def square_or_normal(shape) -> Sampler:
    """The default argument: a well-conditioned matrix if square, else normal."""
    square = len(shape) == 2 and shape[0] == shape[1]
    return well_conditioned(shape) if square else normal(shape)


SCIPY_LINALG = {
    "block_diag": (C(n_diff=2, shapes=((2, 2), (3, 1))),),
    "cho_factor": one(lambda f, a: f(a)[0], (SQ,), (PD,)),  # (factor, the flag lower)
    "cho_solve": (C(with_factor(lambda a: (jnp.linalg.cholesky(a), True)), 2, (SQ, (3,)),
                    (PD, normal((3,)))),),
    "cholesky": (C(domain=(PD,)), *one(lambda f, a: f(a, lower=True), (SQ,), (PD,), "lower")),
    "circulant": (C(shapes=(V,)),), "companion": (C(shapes=(V,)),),
    "convolution_matrix": one(lambda f, a: f(a, 5), (V,)),
    "eigh": (C(domain=(PD,)),
             *one(lambda f, a: f(a, eigvals_only=True), (SQ,), (PD,), "eigvals_only")),
    "eigh_tridiagonal": one(lambda f, d, e: f(d, e, eigvals_only=True), (V, (3,))),
    "expm": (C(domain=(normal(SQ),)),),
    "expm_frechet": (C(domain=(normal(SQ), normal(SQ))),),
    "fiedler": (C(shapes=(V,)),), "fiedler_companion": (C(shapes=(V,)),),
    "funm": one(lambda f, a: f(a, jnp.sin), (SQ,), (normal(SQ),)),
    "hankel": (C(shapes=(V,)), C(shapes=(V, (3,)), label="r")),
    "hessenberg": (C(), *one(lambda f, a: f(a, calc_q=True), (SQ,), label="q")),
    "leslie": (C(shapes=(V, (3,))),),
    "lu_solve": (C(with_factor(jax.scipy.linalg.lu_factor), 2, (SQ, (3,)),
                   (WELL, normal((3,)))),),
    "polar": (C(), *one(lambda f, a: f(a, method="svd"), (SQ,), (WELL,), "svd")),
    "qr": (C(), *one(lambda f, a: f(a, mode="economic"), ((4, 3),), label="economic")),
    "qr_multiply": (C(shapes=(SQ, SQ)),),
    "rsf2csf": one(lambda f, a: f(*jax.scipy.linalg.schur(a)), (SQ,), (normal(SQ),)),
    "schur": (C(domain=(normal(SQ),)),),
    "solve": (C(shapes=(SQ, (3,)), domain=(WELL, normal((3,)))),
              C(lambda f, a, b: f(a, b, assume_a="pos"), 2, (SQ, (3,)), (PD, normal((3,))),
                label="pos")),
    "solve_sylvester": (C(domain=(WELL, WELL, normal(SQ))),),
    "solve_triangular": (C(shapes=(TRI, (3,)), domain=(WELL, normal((3,)))),
                         C(lambda f, a, b: f(a, b, lower=True, trans=1), 2, (TRI, (3,)),
                           (WELL, normal((3,))), label="lower_transposed")),
    "svd": (C(), *one(lambda f, a: f(a, compute_uv=False), (SQ,), (WELL,), "values")),
    "toeplitz": (C(shapes=(V,)), C(shapes=(V, (3,)), label="r")),
}

SCIPY_LINALG_EXCLUDED = {n: "builds a fixed matrix from a static integer size: no float input"
                         for n in ("dft", "hadamard", "helmert", "hilbert", "invhilbert",
                                   "invpascal", "pascal")}

# Compiled for seconds each (expm's Pade approximants and squarings): with the slow tests.
SCIPY_LINALG_SLOW = {"expm", "expm_frechet"}
