"""A NumPy conv2d and Elman RNN, forward and backward by hand, each with a planted-bug switch,
to produce results files for ``verify``: the correct ones must pass, the mutated ones fail.

- ``conv2d(..., flip=True)``: a convolution that flips its kernel (true convolution instead of
  the cross-correlation every framework calls conv);
- ``elman_rnn(..., short=True)``: backpropagation through time cut one step short (the
  gradient never reaches t = 0).
"""
import numpy as np


def conv2d(x, w, b, g, strides, padding, dilation, flip=False):
    """NHWC x, HWIO w: returns (y, dx, dw, db) for the output cotangent g."""
    if flip:
        w = w[::-1, ::-1]
    (pt, pb), (pl, pr) = padding
    sh, sw = strides
    dh, dw_ = dilation
    kh, kw = w.shape[:2]
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    out_h = (xp.shape[1] - (kh - 1) * dh - 1) // sh + 1
    out_w = (xp.shape[2] - (kw - 1) * dw_ - 1) // sw + 1
    y = np.zeros((x.shape[0], out_h, out_w, w.shape[3]), x.dtype)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(out_h):
        for j in range(out_w):
            rows = slice(i * sh, i * sh + (kh - 1) * dh + 1, dh)
            cols = slice(j * sw, j * sw + (kw - 1) * dw_ + 1, dw_)
            patch = xp[:, rows, cols, :]  # [n, kh, kw, c]
            y[:, i, j] = np.einsum("nhwc,hwco->no", patch, w)
            dxp[:, rows, cols, :] += np.einsum("no,hwco->nhwc", g[:, i, j], w)
            dw += np.einsum("nhwc,no->hwco", patch, g[:, i, j])
    if flip:
        dw = dw[::-1, ::-1]
    dx = dxp[:, pt:xp.shape[1] - pb, pl:xp.shape[2] - pr]
    return y + b, dx, dw, g.sum(axis=(0, 1, 2))


def run_conv(entry, a, flip=False):
    c = entry["config"]
    if c["feature_group_count"] != 1:
        return None
    y, dx, dw, db = conv2d(a["inputs/x"], a["params/w"], a["params/b"], a["cotangents/y"],
                           c["strides"], c["padding"], c["dilation"], flip)
    return {"outputs/y": y, "grads/inputs/x": dx, "grads/params/w": dw, "grads/params/b": db}


def run_elman(entry, a, short=False):
    x, wx, wh, b, g = (a[k] for k in ("inputs/x", "params/w_xh", "params/w_hh", "params/b",
                                      "cotangents/y"))
    batch, time, _ = x.shape
    h = np.zeros((batch, wh.shape[0]), x.dtype)
    hs = []
    for t in range(time):
        h = np.tanh(x[:, t] @ wx + h @ wh + b)
        hs.append(h)
    dwx, dwh, db = np.zeros_like(wx), np.zeros_like(wh), np.zeros_like(b)
    dx, carry = np.zeros_like(x), np.zeros_like(h)
    for t in range(time - 1, 0 if short else -1, -1):
        da = (g[:, t] + carry) * (1 - hs[t] ** 2)
        prev = hs[t - 1] if t > 0 else np.zeros_like(h)
        dwx += x[:, t].T @ da
        dwh += prev.T @ da
        db += da.sum(axis=0)
        dx[:, t] = da @ wx.T
        carry = da @ wh.T
    return {"outputs/y": np.stack(hs, axis=1), "grads/inputs/x": dx, "grads/params/w_xh": dwx,
            "grads/params/w_hh": dwh, "grads/params/b": db}
