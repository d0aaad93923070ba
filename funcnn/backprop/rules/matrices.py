"""Batched matrix helpers shared by the linear-algebra rules. Every array is ``[..., m, n]``:
the last two axes are the matrix, the leading ones a batch.

The rules follow JAX's convention for complex cotangents: the cotangent of a linear map is
its transpose under the bilinear pairing ``<a, b> = Re sum(a * b)`` (no conjugation), so a
holomorphic map ``X -> P X Q`` has the transpose ``Y -> P^T Y Q^T``, and ``X -> X^H`` and
``X -> conj(X)`` are their own transposes. For real arrays every ``conj`` below is a no-op.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax


def mT(x):
    """The transpose of each matrix: ``[..., n, m]``."""
    return jnp.swapaxes(x, -1, -2)


def mH(x):
    """The conjugate transpose of each matrix: ``[..., n, m]``."""
    return jnp.conj(mT(x))


def mm(a, b):
    """The batched product ``a @ b`` at full precision (as JAX's own linear-algebra rules)."""
    return jnp.matmul(a, b, precision=lax.Precision.HIGHEST)


def diagonal(x):
    """The diagonal of each matrix: ``[..., min(m, n)]``."""
    return jnp.diagonal(x, axis1=-2, axis2=-1)


def diag_embed(v, dtype=None):
    """A batch of diagonal matrices ``[..., n, n]`` from diagonals ``v: [..., n]``."""
    v = jnp.asarray(v, dtype)
    n = v.shape[-1]
    eye = lax.expand_dims(jnp.eye(n, dtype=v.dtype), tuple(range(v.ndim - 1)))
    return v[..., None, :] * eye


def eye_like(x, n=None):
    """The identity ``[1, ..., 1, n, n]`` in ``x``'s dtype, ready to broadcast against ``x``."""
    n = x.shape[-1] if n is None else n
    return lax.expand_dims(jnp.eye(n, dtype=x.dtype), tuple(range(x.ndim - 2)))


def inverse_gaps(w, dtype):
    """``F[..., i, j] = 1 / (w_j - w_i)`` off the diagonal and 0 on it, from eigenvalues
    ``w: [..., n]``: JAX's expression (``1 / (w_j - w_i + [i == j]) - [i == j]``), so that
    repeated eigenvalues give the same infinities JAX gives."""
    w = w.astype(dtype)
    eye = eye_like(w[..., None], w.shape[-1])
    return 1 / (w[..., None, :] - w[..., :, None] + eye) - eye


def dense(ct, like):
    """A cotangent that may be ``None`` (zero), as an array shaped and typed like ``like``."""
    return jnp.zeros(jnp.shape(like), jnp.result_type(like)) if ct is None else ct


def real_if(ct, x):
    """``ct`` for an input ``x``: its real part when ``x`` is real (the transpose of the cast
    of a real input to a complex computation), ``ct`` itself otherwise."""
    if jnp.issubdtype(jnp.result_type(x), jnp.complexfloating):
        return ct
    return jnp.real(ct).astype(jnp.result_type(x))


def solve(a, b):
    """x = a^{-1} b for a: [..., n, n], b: [..., n, k], by LU with partial pivoting and two
    triangular solves. (Not ``jnp.linalg.solve``: that traces through
    ``lax.custom_linear_solve``, whose transpose JAX builds with its own autodiff machinery.)"""
    lu, _, permutation = lax.linalg.lu(a)
    pb = jnp.take_along_axis(b, permutation[..., :, None], axis=-2)
    y = lax.linalg.triangular_solve(lu, pb, left_side=True, lower=True, unit_diagonal=True)
    return lax.linalg.triangular_solve(lu, y, left_side=True, lower=False)
