"""VJP rules of the structured solves: triangular_solve (``jax.scipy.linalg.solve_triangular``,
and the two halves of every LU solve) and tridiagonal_solve. Batched, real and complex.

For a solve X = S(A)^{-1} B, with S(A) the matrix the primitive actually uses, the identities
(Giles 2008, "An extended collection of matrix derivative results", sec. 2.2.3, in JAX's
bilinear convention for complex cotangents, see ``rules.matrices``) are

    ct_B = S(A)^{-T} ct_X                    (the transposed system)
    dX = -S(A)^{-1} S(dA) X    =>    ct_S = -ct_B X^T,  ct_A = S^T(ct_S)

and for a solve from the right (X S(A) = B): ct_B = ct_X S(A)^{-T}, ct_S = -X^T ct_B.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from funcnn.backprop.registry import defvjp, is_float
from funcnn.backprop.rules.matrices import mm, mT


# --- triangular_solve ---------------------------------------------------------------------------
def apply_op(x, transpose_a, conjugate_a):
    """op(x) of triangular_solve: x, x^T, conj(x) or x^H. Each is its own transpose."""
    x = mT(x) if transpose_a else x
    return jnp.conj(x) if conjugate_a else x


def triangle(x, lower, unit_diagonal):
    """The entries of a: [..., m, m] that triangular_solve reads: its lower (upper) triangle,
    without the diagonal when ``unit_diagonal``."""
    k = 1 if unit_diagonal else 0
    return jnp.tril(x, -k) if lower else jnp.triu(x, k)


@defvjp("triangular_solve")
def _triangular_solve(ct, a, b, *, out, left_side, lower, transpose_a, conjugate_a,
                      unit_diagonal):
    """a: [..., m, m] triangular; b, out: [..., m, n]. op(a) out = b (left_side) or
    out op(a) = b. ct_b solves the transposed system: op(a)^T is op with transpose_a flipped."""
    ct_b = lax.linalg.triangular_solve(a, ct, left_side=left_side, lower=lower,
                                       transpose_a=not transpose_a, conjugate_a=conjugate_a,
                                       unit_diagonal=unit_diagonal)
    ct_a = None
    if is_float(a):
        ct_op = -mm(ct_b, mT(out)) if left_side else -mm(mT(out), ct_b)
        ct_a = triangle(apply_op(ct_op, transpose_a, conjugate_a), lower, unit_diagonal)
    return (ct_a, ct_b if is_float(b) else None)


# --- tridiagonal_solve ----------------------------------------------------------------------------
def shift_down(v):
    """[0, v_0, ..., v_{n-2}] along the last axis."""
    return jnp.concatenate([jnp.zeros_like(v[..., :1]), v[..., :-1]], axis=-1)


def shift_up(v):
    """[v_1, ..., v_{n-1}, 0] along the last axis."""
    return jnp.concatenate([v[..., 1:], jnp.zeros_like(v[..., :1])], axis=-1)


@defvjp("tridiagonal_solve")
def _tridiagonal_solve(ct, dl, d, du, b, *, out, **params):
    """T out = b, T: [..., m, m] with sub-diagonal dl[..., 1:], diagonal d and super-diagonal
    du[..., :-1] (dl[..., 0] and du[..., -1] are not read); b, out: [..., m, n].

    T^T has sub-diagonal du shifted down and super-diagonal dl shifted up. ct_T = -ct_b out^T
    read on the three diagonals: ct_d[i] = -<ct_b[i], out[i]>, ct_dl[i] = -<ct_b[i], out[i-1]>
    (i >= 1), ct_du[i] = -<ct_b[i], out[i+1]> (i <= m-2).
    """
    ct_b = lax.linalg.tridiagonal_solve(shift_down(du), d, shift_up(dl), ct, **params)
    ct_d = -(ct_b * out).sum(-1)
    ct_dl = -(ct_b[..., 1:, :] * out[..., :-1, :]).sum(-1)
    ct_du = -(ct_b[..., :-1, :] * out[..., 1:, :]).sum(-1)
    zero = jnp.zeros_like(ct_d[..., :1])
    ct_dl = jnp.concatenate([zero, ct_dl], axis=-1)
    ct_du = jnp.concatenate([ct_du, zero], axis=-1)
    return tuple(c if is_float(x) else None
                 for c, x in ((ct_dl, dl), (ct_d, d), (ct_du, du), (ct_b, b)))
