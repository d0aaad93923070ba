"""The linear-algebra, FFT and top_k cases in NumPy, forward and backward by hand: part of
the NumPy reference (``verify_numpy_reference.py`` answers these cases through ``HANDLERS``).

Each ``*_vjp`` takes the case's inputs and the output cotangents (``v``) and returns the
outputs and the gradients, written from the formulas of ``docs/oracle-format.md``:

- solve ``x = A^-1 b``: ``db = A^-T v``, ``dA = -db x^T``;
- Cholesky of ``S = (A + A^T) / 2 = L L^T``: ``dA = sym(L^-T phi(L^T tril(v)) L^-1)``,
  ``phi`` the lower triangle with its diagonal halved (Murray 2016, "Differentiation of the
  Cholesky decomposition", eq. 10; ``sym(X) = (X + X^T) / 2`` since the input is symmetrized);
- ``log |det A|``: ``dA = v A^-T``;
- singular values ``A = U diag(s) V^T``: ``dA = U diag(v) V^T``;
- eigh of ``S = (A + A^T) / 2 = Q diag(w) Q^T``: ``dA = sym(Q (diag(v_w) + F o (Q^T dQ)) Q^T)``,
  ``F[i, j] = 1 / (w[j] - w[i])`` off the diagonal (Giles 2008, "An extended collection of
  matrix derivative results", sec. 3.1);
- rfft / irfft: complex cotangents are ``dL/d Re + i dL/d Im``; the adjoint of ``irfft`` is
  ``c * rfft(g) / n`` with ``c = 2`` on the interior bins and 1 on bins 0 and n / 2, the
  adjoint of ``rfft`` is ``Re(n * ifft(G zero-padded to n))``;
- top_k: the kept values' cotangents go back to the positions they were taken from.

Every function computes in the dtype of its inputs (float32 cases in float32).
"""
import numpy as np


def sym(x):
    return (x + x.T) / 2


# ----------------------------------------------------------------------------- linalg

def solve_vjp(a, b, v):
    """(x, da, db) for x = solve(a, b); a [n, n], b [n, rhs], v [n, rhs]."""
    x = np.linalg.solve(a, b)
    db = np.linalg.solve(a.T, v)
    return x, -db @ x.T, db


def phi(x):
    """The lower triangle of x with its diagonal halved."""
    return np.tril(x) - np.diag(np.diag(x)) / 2


def cholesky_vjp(a, v):
    """(l, da) for l = cholesky((a + a^T) / 2); v [n, n] (its upper triangle reaches
    nothing)."""
    l = np.linalg.cholesky(sym(a))
    p = phi(l.T @ np.tril(v))
    left = np.linalg.solve(l.T, p)  # L^-T P
    s = np.linalg.solve(l.T, left.T).T  # L^-T P L^-1
    return l, cholesky_symmetrize(s)


def cholesky_symmetrize(s):
    """The gradient of the symmetrized input's function (a mutant leaves this out)."""
    return sym(s)


def logdet_vjp(a, v):
    """(sign, logabsdet, da) for slogdet(a); v the cotangent of logabsdet."""
    sign, logabsdet = np.linalg.slogdet(a)
    return sign, logabsdet, v * inverse_transpose(a)


def inverse_transpose(a):
    return np.linalg.inv(a).T


def svdvals_vjp(a, v):
    """(s, da) for s = svd(a, compute_uv=False) (descending); v [k]."""
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    return s, (u * v) @ vt


def inverse_gaps(w):
    """F[i, j] = 1 / (w[j] - w[i]) for i != j, 0 on the diagonal."""
    d = w[None, :] - w[:, None]
    np.fill_diagonal(d, 1)
    f = 1 / d
    np.fill_diagonal(f, 0)
    return f


def eigh_vjp(a, c, v_w, v_overlaps):
    """(w, overlaps, da, dc) for w, q = eigh((a + a^T) / 2), overlaps = (q^T c)^2."""
    w, q = np.linalg.eigh(sym(a))
    proj = q.T @ c  # [n, probes]
    dq = 2 * c @ (v_overlaps * proj).T  # d <v, overlaps> / d q
    dc = q @ (2 * v_overlaps * proj)
    m = np.diag(v_w) + inverse_gaps(w) * (q.T @ dq)
    return w, proj ** 2, sym(q @ m @ q.T), dc


# ----------------------------------------------------------------------------- fft

def irfft_adjoint(g, n):
    """dL/d Re Z + i dL/d Im Z for y = irfft(Z, n) and g = dL/dy [..., n]."""
    c = np.full(n // 2 + 1, 2.0)
    c[0] = 1.0
    if n % 2 == 0:
        c[-1] = 1.0
    return c * np.fft.rfft(g, axis=-1) / n


def rfft_adjoint(g, n):
    """dL/dx for X = rfft(x) and g = dL/d Re X + i dL/d Im X [..., n // 2 + 1]."""
    full = np.zeros(g.shape[:-1] + (n,), complex)
    full[..., :g.shape[-1]] = g
    return np.real(n * np.fft.ifft(full, axis=-1))


def rfft_filter_vjp(x, w_re, w_im, v_y, v_power):
    """(y, power, dx, dw_re, dw_im) for y = irfft(rfft(x) * (w_re + i w_im)), power =
    |rfft(x)|^2 / n; x [batch, n]."""
    n = x.shape[-1]
    spectrum = np.fft.rfft(x, axis=-1)
    weights = w_re + 1j * w_im
    y = np.fft.irfft(spectrum * weights, n=n, axis=-1)
    power = np.abs(spectrum) ** 2 / n
    g_z = irfft_adjoint(v_y, n)
    g_w = (np.conj(spectrum) * g_z).sum(axis=0)
    g_x = np.conj(weights) * g_z + 2 * v_power * spectrum / n
    dtype = x.dtype
    return (y.astype(dtype), power.astype(dtype), rfft_adjoint(g_x, n).astype(dtype),
            g_w.real.astype(dtype), g_w.imag.astype(dtype))


# ----------------------------------------------------------------------------- top_k

def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def top_k(logits, k):
    """(values, indices), the k largest per row, descending."""
    idx = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
    return np.take_along_axis(logits, idx, axis=-1), idx


def top_k_scatter(g, idx, shape):
    """The cotangent of the logits from that of the kept values: back where each came from."""
    out = np.zeros(shape, g.dtype)
    np.put_along_axis(out, idx, g, axis=-1)
    return out


def moe_router_vjp(x, w_router, w_experts, k, v_y, v_gates):
    """(y, gates, dx, dw_router, dw_experts); x [tokens, features], w_router [features,
    experts], w_experts [experts, features, out]."""
    logits = x @ w_router
    top, idx = top_k(logits, k)
    gates = softmax(top)  # [tokens, k]
    chosen = w_experts[idx]  # [tokens, k, features, out]
    expert_out = np.einsum("tf,tkfo->tko", x, chosen)
    y = np.einsum("tk,tko->to", gates, expert_out)
    g_gates = v_gates + np.einsum("to,tko->tk", v_y, expert_out)
    g_top = gates * (g_gates - (g_gates * gates).sum(axis=-1, keepdims=True))
    g_logits = top_k_scatter(g_top, idx, logits.shape)
    g_chosen = np.einsum("tk,tf,to->tkfo", gates, x, v_y)
    dw_experts = np.zeros_like(w_experts)
    np.add.at(dw_experts, idx, g_chosen)
    dx = g_logits @ w_router.T + np.einsum("tk,tkfo,to->tf", gates, chosen, v_y)
    return y, gates, dx, x.T @ g_logits, dw_experts


# ----------------------------------------------------------------------------- handlers

def run_linalg(entry, a):
    name = entry["name"].split(".")[1]
    if name == "solve":
        x, da, db = solve_vjp(a["inputs/a"], a["inputs/b"], a["cotangents/x"])
        return {"outputs/x": x, "grads/inputs/a": da, "grads/inputs/b": db}
    if name == "cholesky":
        l, da = cholesky_vjp(a["inputs/a"], a["cotangents/l"])
        return {"outputs/l": l, "grads/inputs/a": da}
    if name == "logdet":
        sign, logabsdet, da = logdet_vjp(a["inputs/a"], a["cotangents/logabsdet"])
        return {"outputs/sign": sign, "outputs/logabsdet": logabsdet, "grads/inputs/a": da}
    if name == "svdvals":
        s, da = svdvals_vjp(a["inputs/a"], a["cotangents/s"])
        return {"outputs/s": s, "grads/inputs/a": da}
    if name == "eigh":
        w, overlaps, da, dc = eigh_vjp(a["inputs/a"], a["inputs/c"], a["cotangents/eigenvalues"],
                                       a["cotangents/overlaps"])
        return {"outputs/eigenvalues": w, "outputs/overlaps": overlaps, "grads/inputs/a": da,
                "grads/inputs/c": dc}
    raise KeyError(name)


def run_fft(entry, a):
    y, power, dx, dw_re, dw_im = rfft_filter_vjp(a["inputs/x"], a["params/w_re"],
                                                 a["params/w_im"], a["cotangents/y"],
                                                 a["cotangents/power"])
    return {"outputs/y": y, "outputs/power": power, "grads/inputs/x": dx,
            "grads/params/w_re": dw_re, "grads/params/w_im": dw_im}


def run_top_k(entry, a):
    y, gates, dx, dw_router, dw_experts = moe_router_vjp(
        a["inputs/x"], a["params/w_router"], a["params/w_experts"], entry["config"]["k"],
        a["cotangents/y"], a["cotangents/gates"])
    return {"outputs/y": y, "outputs/gates": gates, "grads/inputs/x": dx,
            "grads/params/w_router": dw_router, "grads/params/w_experts": dw_experts}


HANDLERS = [("linalg.*", run_linalg), ("fft.*", run_fft), ("top_k.*", run_top_k)]
