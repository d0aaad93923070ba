"""Pieces of the written-out ``spec`` every case carries in the manifest (its function as
pseudocode, parameter layout, kinks, probes), shared by the case families.

A spec is a dict with the fields of ``docs/oracle-format.md`` ("spec: the function written
out"): ``function`` (lines of NumPy-style pseudocode), ``parameters``, ``inputs``,
``outputs``, ``kinks``, ``probes``, ``training``, ``notes``; every field optional.

Example:
    >>> spec(["y = x @ w + b"], parameters={"params/w": "[in, out]"})
"""
from oracle.conventions import CONVENTIONS, FRAMEWORK_DEFAULTS


def spec(function, **fields) -> dict:
    """A spec dict: ``function`` lines plus the given fields (empty ones left out)."""
    out = {"function": list(function)}
    out.update({k: v for k, v in fields.items() if v})
    return out


def kink(key, where) -> dict:
    """One ``spec.kinks`` entry: where, the convention that applies, and framework defaults."""
    return {"where": where, "convention": key, "value": CONVENTIONS[key],
            **FRAMEWORK_DEFAULTS[key]}


def shapes(arrays: dict, roles: dict | None = None) -> dict:
    """``{key: "[d0, d1] role"}`` from ``{key: array}`` (numpy) and optional roles."""
    roles = roles or {}
    return {k: f"{list(v.shape)} {v.dtype.kind == 'i' and 'int32 ' or ''}"
               f"{roles.get(k, '')}".strip() for k, v in sorted(arrays.items())}


LAYOUT_NOTES = ["matrices multiply as x @ w with w [in, out] (torch nn.Linear.weight is w.T)",
                "images NHWC, kernels HWIO [kh, kw, in / groups, out] (torch: NCHW / OIHW)"]

SAME_RULE = ("SAME: out = ceil(n / s); total = max((out - 1) s + k_eff - n, 0); top = total // 2, "
             "bottom = total - top (the odd row goes to the bottom / right)")

CONV = ["x_pad = zero-pad x: rows [top, bottom], columns [left, right] (config.padding)",
        "y[n, i, j, o] = b[o] + sum_{di, dj, c} x_pad[n, i*sh + di*dh, j*sw + dj*dw, g*cg + c]"
        " * w[di, dj, c, o]",
        "    g = o // (out / groups), cg = in / groups; di < kh, dj < kw, c < cg",
        "cross-correlation: the kernel is not flipped"]

LAYER_NORM = ["mean = mean(x, axis=-1, keepdims); var = mean((x - mean)^2, axis=-1, keepdims)"
              "  (biased)",
              "y = (x - mean) / sqrt(var + eps) * scale + bias"]


def attention_lines(heads, width, causal, x="x", prefix=""):
    """Multi-head self-attention as pseudocode (``prefix``: where its params live)."""
    hd = width // heads
    p = prefix
    lines = [f"q = {x} @ {p}wq + {p}bq; k = {x} @ {p}wk + {p}bk; v_ = {x} @ {p}wv + {p}bv"
             "   # [batch, time, width]",
             f"split(a) = a.reshape(batch, time, {heads}, {hd}).transpose(0, 2, 1, 3)"
             f"   # [batch, heads, time, {hd}]; head h = columns h*{hd} .. h*{hd}+{hd - 1}",
             f"s = split(q) @ split(k).transpose(0, 1, 3, 2) / sqrt({hd})"
             "   # scores [batch, heads, tq, tk]"]
    if causal:
        lines.append("causal: s[..., i, j] for j > i is replaced by the most negative finite "
                     "number of the dtype, and its weight below set to exactly 0")
    lines += ["att = softmax(s, axis=-1)   # weights [batch, heads, tq, tk] (max subtracted)",
              f"o = att @ split(v_)   # [batch, heads, tq, {hd}]",
              "merged = o.transpose(0, 2, 1, 3).reshape(batch, time, width)   "
              "# heads concatenated in order",
              f"out = merged @ {p}wo + {p}bo"]
    return lines


def attention_parameters(prefix, width):
    return {f"params/{prefix}w{n}": f"[{width}, {width}]" for n in "qkvo"} | {
        f"params/{prefix}b{n}": f"[{width}]" for n in "qkvo"}
