"""Linear-algebra cases: solve, Cholesky, log-determinant, singular values and the symmetric
eigendecomposition, each on a small matrix built with a chosen spectrum.

Every matrix is ``Q1 diag(s) Q2^T`` (``Q diag(s) Q^T`` where it is symmetric) with ``Q``
orthogonal, drawn from the case's generator (the QR factor of a standard normal matrix, its
columns' signs fixed by ``diag(R) > 0``), and ``s`` the spectrum that ``config`` lists. So
``config`` names the sizes and the conditioning exactly:

- ``singular_values`` / ``eigenvalues``: the spectrum the matrix is built from (float64);
- ``kappa``: the case's condition number, the factor by which its tolerance exceeds a plain
  layer's (``oracle.tolerance.rtol_for``): ``sigma_max / sigma_min`` of the matrix for solve,
  Cholesky and the log-determinant; ``max |spectrum| / min gap`` for the singular values and
  eigh, whose gradients go through the singular vectors (eigenvectors), which move by
  ``|dA| / gap`` (Golub and Van Loan, "Matrix Computations", 4th ed., sec. 8.1.3 and 8.6.1);
- ``min_gap``: the smallest distance between two eigenvalues (singular values; for the
  singular values also to 0), so that every derivative exists.

Keys: ``inputs/a`` (and ``inputs/b``, ``inputs/c``), array outputs with seeded-normal
cotangents (the oracle's weighted sum ``<v, f>``), ``grads/inputs/...``.

Symmetric inputs (Cholesky, eigh). The function is that of the symmetrized input:
``f(A) = g((A + A^T) / 2)`` (as ``jnp.linalg.cholesky`` and ``jnp.linalg.eigh`` compute), so
``grads/inputs/a`` is a symmetric matrix: every entry ``A[i, j]`` and ``A[j, i]`` gets half of
the derivative with respect to the symmetric pair. An implementation that reads only the lower
triangle (LAPACK's ``potrf`` / ``syevd`` applied as they are) computes the gradient ``G_low`` of
another function; it matches the golden one as ``(G_low + G_low^T) / 2``.
"""
import jax.numpy as jnp
import numpy as np

from oracle.cases.base import Built, Spec
from oracle.cases.written import spec

N = 4


def orthogonal(rng, n, det=None):
    """An orthogonal [n, n] matrix from the QR factor of a standard normal one (column signs
    fixed so that diag(R) > 0); ``det=-1`` (or +1) flips its first column to get that
    determinant."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    q = q * np.sign(np.diag(r))
    if det is not None and np.sign(np.linalg.det(q)) != det:
        q[:, 0] = -q[:, 0]
    return q


def with_singular_values(rng, shape, s, det=None):
    """A [m, n] matrix U diag(s) V^T, U, V orthogonal (``det``: the sign of the matrix's
    determinant, m == n: det U = det, det V = +1)."""
    m, n = shape
    u = orthogonal(rng, m, det)[:, :len(s)]
    v = orthogonal(rng, n, None if det is None else 1)[:, :len(s)]
    return (u * np.asarray(s)) @ v.T


def symmetric_with_eigenvalues(rng, w):
    """Q diag(w) Q^T, exactly symmetric (the mean with its transpose is taken last)."""
    q = orthogonal(rng, len(w))
    a = (q * np.asarray(w)) @ q.T
    return (a + a.T) / 2


def spread_over_gap(values, to_zero=False) -> float:
    """max |value| / the smallest gap between two values (and to 0 where ``to_zero``)."""
    v = np.sort(np.asarray(values, np.float64))
    gaps = list(np.diff(v)) + ([float(np.min(np.abs(v)))] if to_zero else [])
    return float(np.max(np.abs(v)) / np.min(gaps))


def min_gap(values, to_zero=False) -> float:
    v = np.sort(np.asarray(values, np.float64))
    return float(min(list(np.diff(v)) + ([float(np.min(np.abs(v)))] if to_zero else [])))


# --- solve ----------------------------------------------------------------------------------
SOLVE_S = {"": (10.0, 5.0, 2.0, 1.0), ".kappa100": (100.0, 20.0, 5.0, 1.0)}
SOLVE_RHS = 2


def _solve_fn(params, inputs):
    return {"x": jnp.linalg.solve(inputs["a"], inputs["b"])}


def _solve(singular_values):
    def build(rng):
        a = with_singular_values(rng, (N, N), singular_values)
        return Built(_solve_fn, {}, {"a": a, "b": rng.standard_normal((N, SOLVE_RHS))})
    return build


def _solve_spec(variant):
    s = SOLVE_S[variant]
    return Spec(
        f"linalg.solve{variant}", "linalg",
        f"x = A^-1 b: A [{N}, {N}] general with singular values {list(s)} "
        f"(kappa {_kappa(s):g}), b [{N}, {SOLVE_RHS}]",
        {"n": N, "rhs": SOLVE_RHS, "singular_values": list(s), "kappa": _kappa(s),
         "kappa_is": "sigma_max / sigma_min of a",
         "matrix": "U diag(singular_values) V^T, U and V orthogonal"}, _solve(s), written=spec(
            ["x = solve(a, b)   # a @ x = b",
             "da = -(solve(a.T, v)) @ x.T; db = solve(a.T, v)   (v = cotangents/x)"],
            inputs={"inputs/a": "general, well away from singular (config.kappa)",
                    "inputs/b": "right-hand sides, one per column"},
            outputs={"outputs/x": f"[{N}, {SOLVE_RHS}]"},
            notes=["torch: torch.linalg.solve(a, b); numpy: np.linalg.solve(a, b)"]))


# --- cholesky -------------------------------------------------------------------------------
CHOLESKY_W = (10.0, 4.0, 2.0, 1.0)


def _cholesky_fn(params, inputs):
    return {"l": jnp.linalg.cholesky(inputs["a"])}


def _cholesky(rng):
    return Built(_cholesky_fn, {}, {"a": symmetric_with_eigenvalues(rng, CHOLESKY_W)})


# --- log-determinant ------------------------------------------------------------------------
LOGDET_S = (8.0, 4.0, 2.0, 1.0)


def _logdet_fn(params, inputs):
    sign, logabsdet = jnp.linalg.slogdet(inputs["a"])
    return {"logabsdet": logabsdet, "sign": sign}


def _logdet(rng):
    return Built(_logdet_fn, {}, {"a": with_singular_values(rng, (N, N), LOGDET_S, det=-1)})


# --- singular values ------------------------------------------------------------------------
SVD_SHAPE = (5, 3)
SVD_S = (3.0, 2.0, 1.0)


def _svdvals_fn(params, inputs):
    return {"s": jnp.linalg.svd(inputs["a"], compute_uv=False)}


def _svdvals(rng):
    return Built(_svdvals_fn, {}, {"a": with_singular_values(rng, SVD_SHAPE, SVD_S)})


# --- eigh -----------------------------------------------------------------------------------
EIGH_W = (-2.0, -1.0, 0.5, 2.5)
EIGH_PROBES = 2


def _eigh_fn(params, inputs):
    w, v = jnp.linalg.eigh(inputs["a"])
    return {"eigenvalues": w, "overlaps": (v.T @ inputs["c"]) ** 2}


def _eigh(rng):
    return Built(_eigh_fn, {}, {"a": symmetric_with_eigenvalues(rng, EIGH_W),
                                "c": rng.standard_normal((N, EIGH_PROBES))})


def _kappa(s):
    return float(max(s) / min(s))


SYMMETRIC_NOTE = ("the function is f((A + A^T) / 2): grads/inputs/a is symmetric. An "
                  "implementation that reads only the lower triangle gets G_low; the golden "
                  "gradient is (G_low + G_low^T) / 2")

SPECS = [
    _solve_spec(""),
    _solve_spec(".kappa100"),
    Spec("linalg.cholesky", "linalg",
         f"L = cholesky(A), A = L L^T [{N}, {N}] symmetric positive definite with eigenvalues "
         f"{list(CHOLESKY_W)} (kappa {_kappa(CHOLESKY_W):g}); f(A) = cholesky((A + A^T) / 2)",
         {"n": N, "eigenvalues": list(CHOLESKY_W), "kappa": _kappa(CHOLESKY_W),
          "kappa_is": "lambda_max / lambda_min of a", "matrix": "Q diag(eigenvalues) Q^T",
          "symmetrized": True, "triangle": "lower"}, _cholesky, written=spec(
             ["l = cholesky((a + a.T) / 2)   # lower triangular, positive diagonal, a = l @ l.T",
              "phi(X) = tril(X) with its diagonal halved",
              "s = solve(l.T, phi(l.T @ v_l)) @ inv(l)   (v_l = tril(cotangents/l))",
              "da = (s + s.T) / 2"],
             inputs={"inputs/a": "symmetric positive definite"},
             outputs={"outputs/l": f"[{N}, {N}], lower triangular (entries above the "
                                   "diagonal exactly 0: their cotangents reach nothing)"},
             notes=[SYMMETRIC_NOTE, "Murray 2016, 'Differentiation of the Cholesky "
                    "decomposition', eq. 10 (then symmetrized)",
                    "torch: torch.linalg.cholesky((a + a.mT) / 2)"])),
    Spec("linalg.logdet", "linalg",
         f"(sign, log|det A|) = slogdet(A), A [{N}, {N}] general with singular values "
         f"{list(LOGDET_S)} (kappa {_kappa(LOGDET_S):g}) and det A < 0",
         {"n": N, "singular_values": list(LOGDET_S), "kappa": _kappa(LOGDET_S),
          "kappa_is": "sigma_max / sigma_min of a", "det_sign": -1,
          "matrix": "U diag(singular_values) V^T, det U = -1, det V = +1"}, _logdet,
         written=spec(
             ["sign, logabsdet = slogdet(a)   # det(a) = sign * exp(logabsdet)",
              "da = v_logabsdet * inv(a).T   (sign is piecewise constant: no gradient)"],
             inputs={"inputs/a": "general, det < 0"},
             outputs={"outputs/logabsdet": "scalar log|det a|; cotangents/logabsdet = 1",
                      "outputs/sign": "scalar -1.0 (a float); cotangents/sign = 1, reaching "
                                      "nothing"},
             notes=["det a < 0: log(det a) is NaN (torch.logdet gives nan); use "
                    "torch.linalg.slogdet / np.linalg.slogdet"])),
    Spec("linalg.svdvals", "linalg",
         f"s = singular values of A [{SVD_SHAPE[0]}, {SVD_SHAPE[1]}], {list(SVD_S)}, "
         f"descending, min gap {min_gap(SVD_S, True):g} (kappa "
         f"{spread_over_gap(SVD_S, True):g})",
         {"shape": list(SVD_SHAPE), "singular_values": list(SVD_S),
          "min_gap": min_gap(SVD_S, True), "kappa": spread_over_gap(SVD_S, True),
          "kappa_is": "sigma_max / min gap (between singular values and to 0)",
          "order": "descending"}, _svdvals, written=spec(
             ["s = svd(a, compute_uv=False)   # [3], descending",
              "a = u diag(s) vt (thin): da = u @ diag(v_s) @ vt   (v_s = cotangents/s)"],
             inputs={"inputs/a": "singular values distinct, at least config.min_gap apart"},
             outputs={"outputs/s": f"[{len(SVD_S)}], descending"},
             notes=["torch: torch.linalg.svdvals(a); numpy: np.linalg.svd(a, "
                    "compute_uv=False)"])),
    Spec("linalg.eigh", "linalg",
         f"w, V = eigh(A), A [{N}, {N}] symmetric with eigenvalues {list(EIGH_W)} (min gap "
         f"{min_gap(EIGH_W):g}, kappa {spread_over_gap(EIGH_W):g}); outputs w and the "
         "sign-invariant (V^T c)^2",
         {"n": N, "eigenvalues": list(EIGH_W), "min_gap": min_gap(EIGH_W),
          "kappa": spread_over_gap(EIGH_W), "kappa_is": "max |eigenvalue| / min gap",
          "probes": EIGH_PROBES, "order": "ascending", "symmetrized": True,
          "matrix": "Q diag(eigenvalues) Q^T"}, _eigh, written=spec(
             ["w, vecs = eigh((a + a.T) / 2)   # w ascending; vecs[:, i] the unit eigenvector "
              "of w[i]",
              "overlaps = (vecs.T @ c) ** 2   # [n, probes]: (vecs[:, i] . c[:, j])^2",
              "every output is invariant to the sign of each eigenvector",
              "m = diag(v_w) + f * (vecs.T @ dvecs), f[i, j] = 1 / (w[j] - w[i]) (0 on the "
              "diagonal), dvecs = 2 c (v_overlaps * (vecs.T @ c)).T",
              "da = sym(vecs @ m @ vecs.T); dc = vecs @ (2 v_overlaps * (vecs.T @ c))"],
             inputs={"inputs/a": "symmetric, eigenvalues at least config.min_gap apart",
                     "inputs/c": f"[{N}, {EIGH_PROBES}] fixed vectors the eigenvectors are "
                                 "projected on"},
             outputs={"outputs/eigenvalues": f"[{N}], ascending",
                      "outputs/overlaps": f"[{N}, {EIGH_PROBES}]"},
             notes=[SYMMETRIC_NOTE, "eigenvectors are defined up to sign: the case never "
                    "outputs them, only (v_i . c_j)^2", "torch: torch.linalg.eigh((a + a.mT) "
                    "/ 2) (ascending, as here)"])),
]
