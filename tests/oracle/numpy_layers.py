"""NumPy layers, forward and backward by hand, each with a planted-bug switch, to produce
results files for ``verify``: the correct ones must pass, the mutated ones fail.

- ``run_conv(..., flip=True)``: a convolution that flips its kernel (true convolution instead
  of the cross-correlation every framework calls conv); ``run_conv_symmetric``: SAME padding
  split evenly;
- ``run_elman(..., short=True)``: backpropagation through time cut one step short (the
  gradient never reaches t = 0);
- ``run_avg_pool(..., count_include_pad=True)``: padded cells counted in the mean;
- ``run_embedding(..., overwrite=True)``: repeated ids overwrite instead of accumulating;
- ``run_lstm(..., bug=...)``: with every gate probe; a wrong forget-gate derivative, or a
  recurrence that passes no gradient back to h_{t-1}.
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


def run_conv_symmetric(entry, a):
    """The planted bug: SAME padding split evenly, k // 2 on each side (PyTorch's padding=1),
    instead of the manifest's explicit pairs; the same output size, a different function
    where the true padding is asymmetric (stride 2 on an even size)."""
    c = entry["config"]
    if c["feature_group_count"] != 1:
        return None
    pads = c["padding"]
    if c["padding_from"] == "SAME" and c["dilation"] == [1, 1]:
        kh, kw = c["kernel_size"]
        pads = [[kh // 2, kh // 2], [kw // 2, kw // 2]]
    y, dx, dw, db = conv2d(a["inputs/x"], a["params/w"], a["params/b"], a["cotangents/y"],
                           c["strides"], pads, c["dilation"])
    return {"outputs/y": y, "grads/inputs/x": dx, "grads/params/w": dw, "grads/params/b": db}


def run_avg_pool(entry, a, count_include_pad=False):
    """Average pooling by hand; ``count_include_pad=True`` is the planted bug (PyTorch's
    default): padded cells counted in each window's mean."""
    c = entry["config"]
    (pt, pb), (pl, pr) = c["padding"]
    (wh, ww), (sh, sw) = c["window"], c["strides"]
    x, g = a["inputs/x"], a["cotangents/y"]
    inside = np.pad(np.ones_like(x), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    y, dxp = np.zeros(g.shape, x.dtype), np.zeros_like(xp)
    for i in range(g.shape[1]):
        for j in range(g.shape[2]):
            rows, cols = slice(i * sh, i * sh + wh), slice(j * sw, j * sw + ww)
            count = wh * ww if count_include_pad else inside[:, rows, cols].sum(axis=(1, 2))
            y[:, i, j] = xp[:, rows, cols].sum(axis=(1, 2)) / count
            dxp[:, rows, cols] += (g[:, i, j] / count)[:, None, None, :]
    return {"outputs/y": y, "grads/inputs/x": dxp[:, pt:pt + x.shape[1], pl:pl + x.shape[2]]}


def run_embedding(entry, a, overwrite=False):
    """Embedding lookup; ``overwrite=True`` is the planted bug: ``dtable[ids] = v`` keeps one
    of the repeated ids' cotangents instead of their sum."""
    table, ids, g = a["params/table"], a["inputs/ids"], a["cotangents/y"]
    dtable = np.zeros_like(table)
    if overwrite:
        dtable[ids.reshape(-1)] = g.reshape(-1, table.shape[1])
    else:
        np.add.at(dtable, ids.reshape(-1), g.reshape(-1, table.shape[1]))
    return {"outputs/y": table[ids], "grads/params/table": dtable}


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


GATES = ("input", "forget", "candidate", "output")


def run_lstm(entry, a, bug=None):
    """LSTM forward and backward by hand with every probe of the case; ``bug`` plants one:
    ``"forget_derivative"`` (f (1 + f) for the forget gate's sigmoid'), ``"detached"`` (no
    gradient from step t back into h_{t-1})."""
    x, g = a["inputs/x"], a["cotangents/y"]
    p = {gate: {k: a[f"params/{gate}/{k}"] for k in ("w_x", "w_h", "b")} for gate in GATES}
    batch, time, _ = x.shape
    hidden = p["input"]["b"].shape[0]
    h, c = np.zeros((batch, hidden), x.dtype), np.zeros((batch, hidden), x.dtype)
    val = {n: [] for n in [f"{q}_pre" for q in GATES] + list(GATES) + ["cell", "hidden"]}
    for t in range(time):
        prev_h = h
        for gate in GATES:
            pre = x[:, t] @ p[gate]["w_x"] + prev_h @ p[gate]["w_h"] + p[gate]["b"]
            val[f"{gate}_pre"].append(pre)
            val[gate].append(np.tanh(pre) if gate == "candidate" else _sigmoid(pre))
        c = val["forget"][t] * c + val["input"][t] * val["candidate"][t]
        h = val["output"][t] * np.tanh(c)
        val["cell"].append(c)
        val["hidden"].append(h)
    adj = {n: [None] * time for n in val}
    grads = {gate: {k: np.zeros_like(v) for k, v in p[gate].items()} for gate in GATES}
    dx = np.zeros_like(x)
    dh_next, dc_next = np.zeros_like(h), np.zeros_like(c)
    for t in range(time - 1, -1, -1):
        dh = g[:, t] + dh_next
        adj["hidden"][t] = dh
        tc = np.tanh(val["cell"][t])
        adj["output"][t] = dh * tc
        dc = dh * val["output"][t] * (1 - tc * tc) + dc_next
        adj["cell"][t] = dc
        c_prev = val["cell"][t - 1] if t else np.zeros_like(c)
        h_prev = val["hidden"][t - 1] if t else np.zeros_like(h)
        adj["forget"][t] = dc * c_prev
        adj["input"][t] = dc * val["candidate"][t]
        adj["candidate"][t] = dc * val["input"][t]
        dh_next = np.zeros_like(h)
        for gate in GATES:
            s = val[gate][t]
            if gate == "candidate":
                slope = 1 - s * s
            elif gate == "forget" and bug == "forget_derivative":
                slope = s * (1 + s)
            else:
                slope = s * (1 - s)
            da = adj[gate][t] * slope
            adj[f"{gate}_pre"][t] = da
            grads[gate]["w_x"] += x[:, t].T @ da
            grads[gate]["w_h"] += h_prev.T @ da
            grads[gate]["b"] += da.sum(axis=0)
            dx[:, t] += da @ p[gate]["w_x"].T
            if bug != "detached":
                dh_next = dh_next + da @ p[gate]["w_h"].T
        dc_next = dc * val["forget"][t]
    out = {"outputs/y": np.stack(val["hidden"], axis=1), "grads/inputs/x": dx}
    for gate in GATES:
        out.update({f"grads/params/{gate}/{k}": v for k, v in grads[gate].items()})
    for name in val:
        out[f"probes/{name}/value"] = np.stack(val[name], axis=1)
        out[f"probes/{name}/adjoint"] = np.stack(adj[name], axis=1)
    return out
