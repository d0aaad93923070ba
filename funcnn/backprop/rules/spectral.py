"""VJP rules of the spectral decompositions: eigh (Hermitian), eig (general; eigenvalues, and
eigenvectors where JAX differentiates them) and svd. Batched, real and complex, in JAX's
bilinear convention for complex cotangents (``rules.matrices``).

The differentials are non-degenerate perturbation theory (Giles 2008, "An extended collection
of matrix derivative results for forward and reverse mode algorithmic differentiation",
sec. 3.1-3.2; Townsend 2016, "Differentiating the singular value decomposition"), written as
JAX's forward-mode rules write them so that the eigenvectors' gauge (phase and scale) is JAX's.
Each rule transposes them. Repeated eigenvalues (singular values) make F = 1 / (gaps) infinite,
and the cotangents then hold the same inf/NaN that JAX's do.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from funcnn.backprop.registry import defvjp
from funcnn.backprop.rules.matrices import (
    diag_embed,
    diagonal,
    eye_like,
    inverse_gaps,
    mH,
    mm,
    mT,
    real_if,
    solve,
)


# --- eigh ---------------------------------------------------------------------------------------
@defvjp("eigh")
def _eigh(cts, a, *, out, subset_by_index=None, **_):
    """a: [..., n, n]; v: [..., n, n] (eigenvectors as columns), w: [..., n] real.

    With M = V^H dA V: dw = Re diag(M), dV = V (F o M), F_ij = 1 / (w_j - w_i). Transposed:
    ct_M = diag(ct_w) + F o (V^T ct_V), ct_A = conj(V) ct_M V^T (not symmetrized: JAX's rule
    takes dA whole, and ``jnp.linalg.eigh`` symmetrizes its input before the primitive).
    """
    v, w = out
    n = a.shape[-1]
    if subset_by_index not in (None, (0, n)):
        raise NotImplementedError(
            f"eigh with subset_by_index={subset_by_index}: derivatives of a partial "
            "eigendecomposition are not defined (JAX defines none either); compute all "
            f"{n} eigenpairs and slice.")
    ct_v, ct_w = cts
    ct_m = jnp.zeros(v.shape, v.dtype)
    if ct_w is not None:
        ct_m = ct_m + diag_embed(ct_w, v.dtype)
    if ct_v is not None:
        ct_m = ct_m + inverse_gaps(w, v.dtype) * mm(mT(v), ct_v)
    return (mm(mm(jnp.conj(v), ct_m), mT(v)),)


# --- eig ----------------------------------------------------------------------------------------
def eigvec_cotangent(w, v, ct_v):
    """The cotangent of P = V^{-1} dA V (``[..., n, n]``) from that of the eigenvectors V.

    JAX's differential (Giles 2008 sec. 3.1, with LAPACK's normalization: each column of unit
    2-norm, its largest-magnitude entry real): U = V (F o P), then dV = U + V diag(c) with
    c_j = -Re(v_j^H u_j) - i Im(U_kj) / Re(V_kj), k = argmax_i |V_ij|. Transposed, with
    g_j = sum_i ct_V_ij V_ij: ct_U = ct_V - Re(g) conj(V) - i Im(g) / Re(V_k) at row k,
    and ct_P = F o (V^T ct_U).
    """
    k = lax.argmax(jnp.abs(v), v.ndim - 2, jnp.int32)
    mask = (lax.broadcasted_iota(jnp.int32, v.shape, v.ndim - 2) == k[..., None, :])
    mask = mask.astype(v.dtype)
    g = (ct_v * v).sum(-2, keepdims=True)
    pivot = jnp.real((mask * v).sum(-2, keepdims=True))
    ct_u = ct_v - jnp.real(g) * jnp.conj(v) + mask * (-1j * jnp.imag(g) / pivot)
    return inverse_gaps(w, v.dtype) * mm(mT(v), ct_u)


def similarity_transpose(v, ct_p):
    """ct_A of P = V^{-1} dA V: V^{-T} ct_P V^T."""
    return solve(mT(v), mm(ct_p, mT(v)))


@defvjp("eig")
def _eig(cts, a, *, out, compute_left_eigenvectors, compute_right_eigenvectors,
         enable_eigvec_derivs=False, implementation=None, **_):
    """a: [..., n, n] real or complex; w: [..., n] complex, then vl and/or vr: [..., n, n].

    Eigenvalues: dw = diag(V^{-1} dA V) (right eigenvectors V), so ct_A = V^{-T} diag(ct_w) V^T
    (its real part for a real a). Eigenvectors only with ``enable_eigvec_derivs=True``, as in
    JAX (their normalization is LAPACK's, an assumption JAX cannot check otherwise); the left
    ones are the right eigenvectors of A^H, for the eigenvalues conj(w).
    """
    ct_w = cts[0]
    ct_vl = cts[1] if compute_left_eigenvectors else None
    ct_vr = cts[-1] if compute_right_eigenvectors else None
    if (compute_left_eigenvectors or compute_right_eigenvectors) and not enable_eigvec_derivs:
        # JAX refuses as soon as eigenvectors are computed, used or not (jnp.linalg.eig(a)[0]
        # too): the engine gives no number where JAX's autodiff gives none
        raise NotImplementedError(
            "Derivatives of non-symmetric eigenvectors are only valid under assumptions on the "
            "input that cannot be checked, and an eig that computes eigenvectors is not "
            "differentiable without opting in (JAX refuses it too, even when only the "
            "eigenvalues are used): pass enable_eigvec_derivs=True to jax.lax.linalg.eig, or "
            "differentiate the eigenvalues only (jnp.linalg.eigvals).")
    w = out[0]
    if compute_right_eigenvectors:
        vr = out[-1]
    else:
        vr = lax.linalg.eig(a, compute_left_eigenvectors=False, compute_right_eigenvectors=True,
                            implementation=implementation)[-1]
    ct_p = jnp.zeros(vr.shape, vr.dtype)
    if ct_w is not None:
        ct_p = ct_p + diag_embed(ct_w, vr.dtype)
    if ct_vr is not None:
        ct_p = ct_p + eigvec_cotangent(w, vr, ct_vr)
    ct_a = similarity_transpose(vr, ct_p)
    if ct_vl is not None:
        vl = out[1]
        ct_a = ct_a + mH(similarity_transpose(vl, eigvec_cotangent(jnp.conj(w), vl, ct_vl)))
    return (real_if(ct_a, a),)


# --- svd ----------------------------------------------------------------------------------------
def svd_adjoint(s, u, vt, ct_s, ct_u_adj, ct_v_adj, m, n):
    """The adjoint (under Re tr(X^H Y)) of JAX's svd differential, for thin u: [..., m, k],
    s: [..., k], vt: [..., k, n]; ct_u_adj, ct_v_adj: the adjoint-convention cotangents of U
    and V = vt^H (None for zero).

    With dS = U^H dA V, S = diag(s), F_ij = 1 / (s_j^2 - s_i^2) (0 on the diagonal) and
    G_U = U^H U_bar, G_V = V^H V_bar (Townsend 2016, eq. 19; the diagonal gauge term for
    complex U, i Im(dS_ii) / s_i, as JAX's rule):
    dS_bar = diag(s_bar) + (F o (G_U - G_U^H)) S + S (F o (G_V - G_V^H)) + i Im diag(G_U) / s,
    A_bar = U dS_bar V^H, plus (I - U U^H) U_bar S^{-1} V^H when m > n and
    U S^{-1} V_bar^H (I - V V^H) when m < n.
    """
    v = mH(vt)
    dtype = u.dtype
    k = s.shape[-1]
    ct_ds = diag_embed(ct_s if ct_s is not None else jnp.zeros_like(s), dtype)
    s_row = s[..., None, :].astype(dtype)  # [..., 1, k]
    if ct_u_adj is not None or ct_v_adj is not None:
        eye = eye_like(s_row, k)
        s2 = s[..., None, :] ** 2
        gaps = (s2 - mT(s2)).astype(dtype)  # s_j^2 - s_i^2
        f = 1 / (gaps + eye) - eye
        safe_inv = jnp.where(s == 0, 0, 1 / jnp.where(s == 0, 1, s)).astype(dtype)
    if ct_u_adj is not None:
        g_u = mm(mH(u), ct_u_adj)
        ct_ds = ct_ds + (f * (g_u - mH(g_u))) * s_row
        d = diagonal(g_u)
        ct_ds = ct_ds + diag_embed((d - jnp.real(d)) * safe_inv, dtype)
    if ct_v_adj is not None:
        g_v = mm(mH(v), ct_v_adj)
        ct_ds = ct_ds + mT(s_row) * (f * (g_v - mH(g_v)))
    ct_a = mm(mm(u, ct_ds), vt)
    if m > n and ct_u_adj is not None:  # divided by s before the projection, as JAX
        scaled = ct_u_adj / s_row
        ct_a = ct_a + mm(scaled - mm(u, mm(mH(u), scaled)), vt)
    if m < n and ct_v_adj is not None:
        scaled = ct_v_adj / s_row
        ct_a = ct_a + mm(u, mH(scaled - mm(v, mm(vt, scaled))))
    return ct_a


@defvjp("svd")
def _svd(cts, a, *, out, full_matrices, compute_uv, subset_by_index=None, algorithm=None):
    """a: [..., m, n]; s: [..., k], k = min(m, n), then u: [..., m, k or m] and
    vt: [..., k or n, n] when ``compute_uv``. JAX's cotangent is the conjugate of the adjoint
    one: ct_A = conj(A_bar(ct_s, conj(ct_U), conj(ct_Vt)^H))."""
    m, n = a.shape[-2:]
    k = min(m, n)
    ct_s = cts[0]
    ct_u, ct_vt = (cts[1], cts[2]) if compute_uv else (None, None)
    if compute_uv and full_matrices and m != n and (ct_u is not None or ct_vt is not None):
        raise NotImplementedError(
            f"svd of a [{m}, {n}] matrix with full_matrices=True: the extra singular vectors "
            "have no derivative (JAX defines none either); use full_matrices=False.")
    if compute_uv and subset_by_index not in (None, (0, k)):
        raise NotImplementedError(
            f"svd with subset_by_index={subset_by_index} and compute_uv=True has no derivative "
            "(JAX defines none either).")
    if compute_uv:
        s, u, vt = out[0], out[1][..., :, :k], out[2][..., :k, :]
    else:
        u, s, vt = lax.linalg.svd(a, full_matrices=False, compute_uv=True,
                                  subset_by_index=subset_by_index, algorithm=algorithm)
    ct_u_adj = None if ct_u is None else jnp.conj(ct_u)
    ct_v_adj = None if ct_vt is None else mT(ct_vt)
    return (jnp.conj(svd_adjoint(s, u, vt, ct_s, ct_u_adj, ct_v_adj, m, n)),)
