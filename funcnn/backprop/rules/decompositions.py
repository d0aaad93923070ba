"""VJP rules of the triangular factorizations: cholesky, lu (with its pivots) and qr (thin,
full, wide and pivoted). Batched ``[..., m, n]``, real and complex, in JAX's bilinear
convention for complex cotangents (``rules.matrices``).

Each rule is the transpose of the factorization's differential, taken step by step in reverse
order. The differentials are the classical ones, written as JAX's own forward-mode rules write
them (so that gauge choices, e.g. the phase of a complex Q's columns, are JAX's):

- cholesky, A = L L^H (Murray 2016, "Differentiation of the Cholesky decomposition", eq. 9;
  Seeger et al. 2017, "Auto-differentiating linear algebra"):
  dL = L phi(L^{-1} dA_s L^{-H}), phi = lower triangle with the diagonal halved, where dA_s is
  the Hermitian matrix the primitive reads off dA's lower triangle.
- lu, P A = L U (De Hoog, Anderssen & Lukas 2011, "Differentiation of matrix functionals
  using triangular factorization"): with F = L^{-1} P dA U^{-1}, dL = L tril(F, -1) and
  dU = triu(F) U.
- qr, A = Q R (Walter & Lehmann 2018, "Algorithmic differentiation of linear algebra
  functions with application in optimum experimental design"; Townsend, "Differentiating the
  QR decomposition"): with M = Q^H dA R^{-1} and Omega = tril(M, -1) - tril(M, -1)^H (plus
  i Im diag(M) for complex), dQ = Q (Omega - M) + dA R^{-1} and dR = (M - Omega) R. Wide A
  (m < n) splits A = [A1 A2]: A1 = Q R1 as above and R2 = Q^H A2. Full Q of a tall A adds the
  last m - n columns as in Roberts & Roberts 2024 (arXiv:2409.13374, eqs. 32-33).
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from funcnn.backprop.registry import defvjp
from funcnn.backprop.rules.matrices import (
    dense,
    diag_embed,
    diagonal,
    eye_like,
    mH,
    mm,
    mT,
    solve,
)

solve_triangular = lax.linalg.triangular_solve


# --- cholesky ---------------------------------------------------------------------------------
def phi(x):
    """The lower triangle of x with its diagonal halved."""
    return jnp.tril(x) - 0.5 * diag_embed(diagonal(x))


def hermitian_from_lower_transpose(g):
    """The transpose of dA -> dA_s, the Hermitian matrix cholesky reads off dA's lower triangle
    (tril(dA) + tril(dA, -1)^H, the diagonal's imaginary part dropped): tril(g + g^H, -1) plus
    the real part of g's diagonal."""
    return jnp.tril(g + mH(g), -1) + diag_embed(jnp.real(diagonal(g)), g.dtype)


@defvjp("cholesky")
def _cholesky(ct, a, *, out, **_):
    """a, out: [..., n, n]. Only out's lower triangle is the factor L (above it the primitive
    leaves a's entries), so only that part of ct counts.

    Transposing dL = L phi(L^{-1} dA_s L^{-H}) gives ct_s = L^{-T} phi(L^T ct) conj(L)^{-1}.
    JAX 0.10 uses dA for dA_s (its rule ignores that the primitive reads one triangle); the
    engine takes the primitive's true derivative on every version, as JAX >= 0.11 does. Both agree
    on Hermitian-symmetrized inputs (``jnp.linalg.cholesky``). A matrix that is not positive
    definite has a NaN factor and NaN cotangents, as in JAX.
    """
    l = jnp.tril(out)
    p = phi(mm(mT(l), jnp.tril(ct)))
    p = solve_triangular(l, p, left_side=True, lower=True, transpose_a=True)
    g = solve_triangular(l, p, left_side=False, lower=True, conjugate_a=True)
    return (hermitian_from_lower_transpose(g),)


# --- lu ---------------------------------------------------------------------------------------
def lu_factors(lu):
    """The square factors JAX's rule works with, from the packed lu: [..., m, n], k = min(m, n):
    l: [..., m, m] unit lower (lu's strict lower part, padded with the identity) and
    u: [..., n, n] upper (lu's upper part, padded with the identity)."""
    m, n = lu.shape[-2:]
    k = min(m, n)
    l = jnp.tril(lu[..., :, :k], -1)
    l = jnp.pad(l, [(0, 0)] * (lu.ndim - 1) + [(0, m - k)]) + eye_like(lu, m)
    u = jnp.triu(lu[..., :k, :])
    u = jnp.pad(u, [(0, 0)] * (lu.ndim - 2) + [(0, n - k), (0, 0)])
    tail = diag_embed((jnp.arange(n) >= k).astype(lu.dtype))
    return l, u + lax.expand_dims(tail, tuple(range(lu.ndim - 2)))


def unpermute_rows(x, permutation):
    """The inverse of ``x[..., permutation, :]`` (permutation: [..., m], a permutation)."""
    inverse = jnp.argsort(permutation, axis=-1)
    return jnp.take_along_axis(x, inverse[..., :, None], axis=-2)


@defvjp("lu")
def _lu(cts, a, *, out, **_):
    """a, lu: [..., m, n]; pivots: [..., k] and permutation: [..., m] are integers.

    d(lu) = l tril(F, -1) + triu(F) u with F = l^{-1} dA[perm] u^{-1}, so
    ct_F = tril(l^T ct, -1) + triu(ct u^T) and ct_A = unpermute(l^{-T} ct_F u^{-T}).
    A singular matrix has a zero pivot: the solve by u gives inf/NaN, as JAX's rule does.
    """
    ct = cts[0]
    if ct is None:
        return (None,)
    lu, _, permutation = out
    l, u = lu_factors(lu)
    g = jnp.tril(mm(mT(l), ct), -1) + jnp.triu(mm(ct, mT(u)))
    g = solve_triangular(u, g, left_side=False, lower=False, transpose_a=True)
    g = solve_triangular(l, g, left_side=True, lower=True, transpose_a=True, unit_diagonal=True)
    return (unpermute_rows(g, permutation),)


# --- qr ---------------------------------------------------------------------------------------
def thin_qr_transpose(q, r, ct_q, ct_r):
    """ct_dA of the thin differential (q: [..., m, n], r: [..., n, n], m >= n).

    With E = q^T ct_q - ct_r r^T (the cotangent of Omega): ct_M = -E + tril(E - E^H, -1)
    + i Im diag(E) (the transposes of Omega's parts), ct_(dA R^{-1}) = ct_q + conj(q) ct_M,
    then ct_dA = ct_(dA R^{-1}) r^{-T}.
    """
    e = mm(mT(q), ct_q) - mm(ct_r, mT(r))
    ct_m = jnp.tril(e - mH(e), -1) - e
    if jnp.issubdtype(e.dtype, jnp.complexfloating):
        d = diagonal(e)
        ct_m = ct_m + diag_embed(d - jnp.real(d), e.dtype)
    ct_x = ct_q + mm(jnp.conj(q), ct_m)
    return solve_triangular(r, ct_x, left_side=False, lower=False, transpose_a=True)


def full_q_cotangent(q, ct_q, n):
    """For a tall a: [..., m, n] with full q, ct_q: [..., m, m]: the cotangent of the first n
    columns dQ_mn ([..., m, n]), their own plus what the extra p = m - n columns' differential
    (arXiv:2409.13374, eqs. 32-33) gives back,

        dQ_mp = dQ_mn Z^H - (Q_mn + Q_mp Z) (dQ_pn - Z dQ_nn)^H,  Z = Q_pn (Q_nn - I)^{-1},

    where dQ_nn and dQ_pn are the first n and last p rows of dQ_mn."""
    q_mn, q_mp = q[..., :, :n], q[..., :, n:]
    q_nn, q_pn = q_mn[..., :n, :], q_mn[..., n:, :]
    ct_mn, ct_mp = ct_q[..., :, :n], ct_q[..., :, n:]
    z = mH(solve(mH(q_nn - eye_like(q_nn)), mH(q_pn)))  # [..., p, n]
    g = -mm(mH(ct_mp), jnp.conj(q_mn + mm(q_mp, z)))  # cotangent of dQ_pn - Z dQ_nn: [p, n]
    ct_mn = ct_mn + mm(ct_mp, jnp.conj(z))
    return ct_mn + jnp.concatenate([-mm(mT(z), g), g], axis=-2)


@defvjp("qr")
def _qr(cts, a, *, out, full_matrices, pivoting=False, **_):
    """a: [..., m, n]; q: [..., m, k], r: [..., k, n] with k = m if full_matrices (or m <= n),
    else min(m, n); with pivoting a third output p: [..., n] (a[..., p] = q r)."""
    q, r = out[0], out[1]
    ct_q, ct_r = dense(cts[0], q), dense(cts[1], r)
    m, n = a.shape[-2:]
    if pivoting:
        columns = out[2]
        a = jnp.take_along_axis(a, columns[..., None, :], axis=-1)
    if m < n:  # a = [a1 a2], a1 = q r1 (square), r2 = q^H a2
        a2, ct_r2 = a[..., :, m:], ct_r[..., :, m:]
        ct_q = ct_q + mm(jnp.conj(a2), mH(ct_r2))
        ct_a = jnp.concatenate([thin_qr_transpose(q, r[..., :, :m], ct_q, ct_r[..., :, :m]),
                                mm(jnp.conj(q), ct_r2)], axis=-1)
    elif full_matrices and m > n:
        ct_a = thin_qr_transpose(q[..., :, :n], r[..., :n, :], full_q_cotangent(q, ct_q, n),
                                 ct_r[..., :n, :])
    else:
        ct_a = thin_qr_transpose(q, r, ct_q, ct_r)
    if pivoting:
        inverse = jnp.argsort(columns, axis=-1)
        ct_a = jnp.take_along_axis(ct_a, inverse[..., None, :], axis=-1)
    return (ct_a,)
