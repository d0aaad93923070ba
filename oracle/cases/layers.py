"""Layer cases: each layer kind of ``funcnn.layers`` with its variants.

``fn(params, inputs) = {"y": layer.apply(params, inputs["x"])}`` (attention's
``scaled_dot_product_attention`` takes ``q, k, v``); ``cotangents/y`` is seeded normal.
Parameters are drawn by ``draw_params`` into the shapes the layer's ``init`` gives. Conv and
pooling configs give the padding as explicit ``[[top, bottom], [left, right]]`` pairs, also
when the case is built with SAME (``padding_from`` says which).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn import layers as L
from oracle.cases import instrumented
from oracle.cases.base import Built, Spec, draw_params
from oracle.cases.written import (
    CONV,
    LAYER_NORM,
    LAYOUT_NOTES,
    SAME_RULE,
    attention_lines,
    attention_parameters,
    spec,
)


def _layer_case(layer, in_shape, x_draw=None, twin=None):
    """A layer case; ``twin = (kind, probed)`` adds the probes of ``instrumented.PROBES[kind]``
    computed by ``probed(params, x, taps) -> (y, values)``."""
    def fn(params, inputs):
        return {"y": layer.apply(params, inputs["x"])}

    def build(rng):
        shapes = jax.eval_shape(lambda: layer.init(jax.random.key(0), in_shape)[1])
        params = draw_params(rng, shapes)
        x = rng.standard_normal(in_shape) if x_draw is None else x_draw(rng)
        if twin is None:
            return Built(fn, params, {"x": x})
        kind, probed = twin

        def probe_fn(params, inputs, probes):
            return {"y": probed(params, inputs["x"], probes)[0]}

        def probe_values(params, inputs):
            return probed(params, inputs["x"], {})[1]

        return Built(fn, params, {"x": x}, probes=instrumented.PROBES[kind], probe_fn=probe_fn,
                     probe_values=probe_values, probe_graph=instrumented.GRAPHS[kind],
                     probe_axes=instrumented.AXES[kind])

    return build


def _pads(in_hw, kernel, strides, dilation, padding):
    if not isinstance(padding, str):
        return [list(p) for p in padding]
    window = [(k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True)]
    return [list(p) for p in lax.padtype_to_pads(in_hw, window, strides, padding)]


def _conv(variant, strides, padding, dilation=1, groups=1, in_shape=(2, 5, 5, 2), out=3):
    kernel = (3, 3)
    s, d = (strides, strides), (dilation, dilation)
    layer = L.conv2d(out, kernel, strides=s, padding=padding, dilation=d,
                     feature_group_count=groups)
    config = {"in_shape": list(in_shape), "out_channels": out, "kernel_size": list(kernel),
              "strides": list(s), "padding": _pads(in_shape[1:3], kernel, s, d, padding),
              "padding_from": padding, "dilation": list(d), "feature_group_count": groups,
              "layout": "x NHWC, w HWIO [kh, kw, in/groups, out], y NHWC"}
    (top, bottom), (left, right) = config["padding"]
    lines = [f"padding [[top, bottom], [left, right]] = {config['padding']}, strides (sh, sw) = "
             f"{list(s)}, dilation (dh, dw) = {list(d)}, groups = {groups}"] + CONV
    notes = LAYOUT_NOTES + ([SAME_RULE] if padding == "SAME" else [])
    if top != bottom or left != right:
        notes.append("the padding is asymmetric: torch's symmetric padding= cannot express it; "
                     "pad with F.pad(x, (left, right, top, bottom)) first")
    if groups > 1:
        notes.append(f"groups: output channels o in [g*{out // groups}, (g+1)*{out // groups}) "
                     f"read input channel block g (torch's groups= uses the same order)")
    written = spec(lines, parameters={"params/w": f"[kh, kw, in / groups, out] = [3, 3, "
                                                  f"{in_shape[3] // groups}, {out}] (HWIO)",
                                      "params/b": f"[{out}]"},
                   inputs={"inputs/x": "NHWC"}, outputs={"outputs/y": "NHWC"}, notes=notes)
    return Spec(f"layer.conv2d.{variant}", "layer",
                "y = conv2d(x, w) + b (cross-correlation, no kernel flip), NHWC / HWIO",
                config, _layer_case(layer, in_shape), written=written)


def _distinct(in_shape):
    """A shuffled grid of values 4 / (size - 1) apart: no two inputs of a max-pool window
    come within a finite-difference step of each other (no accidental near-ties)."""
    size = int(np.prod(in_shape))
    return lambda rng: rng.permutation(np.linspace(-2.0, 2.0, size)).reshape(in_shape)


def _pool(kind, variant, window, strides, padding, in_shape=(2, 4, 4, 2)):
    layer = (L.max_pool if kind == "max_pool" else L.avg_pool)(window, strides, padding)
    w, s = (window, window), (strides, strides)
    config = {"in_shape": list(in_shape), "window": list(w), "strides": list(s),
              "padding": _pads(in_shape[1:3], w, s, (1, 1), padding), "padding_from": padding}
    if kind == "max_pool":
        desc = "y = max over each window per channel (padding counts as -inf; no ties)"
    else:
        desc = "y = mean over each window per channel (padded cells not counted)"
        config["count_include_pad"] = False
    draw = _distinct(in_shape) if kind == "max_pool" else None
    (top, bottom), (left, right) = config["padding"]
    window_cells = f"x_pad[n, i*{s[0]} : i*{s[0]} + {w[0]}, j*{s[1]} : j*{s[1]} + {w[1]}, c]"
    if kind == "max_pool":
        lines = [f"x_pad = x padded by {config['padding']} with -inf",
                 f"y[n, i, j, c] = max {window_cells}",
                 "dx: each output's cotangent goes to its window's maximum (no ties)"]
        notes = ["inputs are a shuffled grid of distinct values: no ties within a window"]
    else:
        lines = [f"y[n, i, j, c] = sum of the window {window_cells} over the cells inside x / "
                 "their number (padded cells are not counted)"]
        notes = ["count_include_pad = False (torch's avg_pool2d counts padded cells by default)"]
    if top != bottom or left != right:
        notes.append("the padding is asymmetric (bottom / right): " + SAME_RULE)
    written = spec(lines, inputs={"inputs/x": "NHWC"}, outputs={"outputs/y": "NHWC"},
                   notes=notes)
    return Spec(f"layer.{kind}.{variant}", "layer", desc, config,
                _layer_case(layer, in_shape, draw), written=written)


def _recurrent(kind, hidden=3, in_shape=(2, 4, 3)):
    layer = getattr(L, kind)(hidden)
    cells = {
        "elman_rnn": "h_t = tanh(x_t @ w_xh + h_{t-1} @ w_hh + b), h_0 = 0",
        "lstm": "i,f,o = sigmoid(a), g = tanh(a), a_gate = x_t @ w_x + h @ w_h + b; "
                "c' = f c + i g; h' = o tanh(c'); (h_0, c_0) = 0",
        "gru": "z = sigmoid(a_update), r = sigmoid(a_reset), n = tanh(x_t @ w_x + (r h) @ w_h"
               " + b) (candidate), h' = (1 - z) n + z h; h_0 = 0",
    }
    config = {"in_shape": list(in_shape), "hidden": hidden, "layout": "x [batch, time, in], "
              "y = every h_t [batch, time, hidden]", "cell": cells[kind]}
    if kind != "elman_rnn":
        config["gates"] = list(L.recurrent.LSTM_GATES if kind == "lstm" else L.recurrent.GRU_GATES)
    twin = (kind, getattr(instrumented, kind)) if kind != "elman_rnn" else None
    if twin:
        config["probes"] = list(instrumented.PROBES[kind])
    return Spec(f"layer.{kind}", "layer", f"{kind} over time: {cells[kind]}", config,
                _layer_case(layer, in_shape, twin=twin), depth="deep", written=RECURRENT[kind])


_LOOP = ["for t in 0 .. time-1:"]
_GATE_PROBES = {"lstm": {"input_pre": "a[input] at every step, [batch, time, hidden]",
                         "forget_pre": "a[forget]", "candidate_pre": "a[candidate]",
                         "output_pre": "a[output]", "input": "i = sigmoid(a[input])",
                         "forget": "f", "candidate": "g = tanh(a[candidate])", "output": "o",
                         "cell": "c after step t", "hidden": "h after step t (= outputs/y)"},
                "gru": {"update_pre": "the update gate's affine map, [batch, time, hidden]",
                        "reset_pre": "the reset gate's", "update": "z", "reset": "r",
                        "reset_hidden": "r * h_{t-1}",
                        "candidate_pre": "x_t @ w_x[candidate] + (r * h) @ w_h[candidate] + b",
                        "candidate": "n", "hidden": "h after step t (= outputs/y)"}}
RECURRENT = {
    "elman_rnn": spec(
        ["h = zeros([batch, hidden])"] + _LOOP
        + ["    h = tanh(x[:, t] @ w_xh + h @ w_hh + b)", "    y[:, t] = h"],
        parameters={"params/w_xh": "[in, hidden]", "params/w_hh": "[hidden, hidden]",
                    "params/b": "[hidden]"},
        inputs={"inputs/x": "[batch, time, in]"}, outputs={"outputs/y": "every h"},
        notes=["torch nn.RNN: weight_ih_l0 = w_xh.T, weight_hh_l0 = w_hh.T, bias_ih_l0 = b, "
               "bias_hh_l0 = 0"]),
    "lstm": spec(
        ["h = zeros([batch, hidden]); c = zeros([batch, hidden])"] + _LOOP
        + ["    a[gate] = x[:, t] @ w_x[gate] + h @ w_h[gate] + b[gate]   for each gate",
           "    i = sigmoid(a[input]); f = sigmoid(a[forget]); g = tanh(a[candidate]); "
           "o = sigmoid(a[output])",
           "    c = f * c + i * g", "    h = o * tanh(c)", "    y[:, t] = h"],
        parameters={"params/*/w_x": "[in, hidden], one per gate",
                    "params/*/w_h": "[hidden, hidden]", "params/*/b": "[hidden]"},
        inputs={"inputs/x": "[batch, time, in]"}, outputs={"outputs/y": "every h"},
        probes=_GATE_PROBES["lstm"],
        notes=["gates input, forget, candidate, output each have their own w_x, w_h, b (no "
               "concatenated weight)",
               "torch nn.LSTM stacks gates in the order i, f, g, o: weight_ih_l0 = "
               "concat([w_x[input].T, w_x[forget].T, w_x[candidate].T, w_x[output].T]), "
               "weight_hh_l0 likewise, bias_ih_l0 = concat(b), bias_hh_l0 = 0"]),
    "gru": spec(
        ["h = zeros([batch, hidden])"] + _LOOP
        + ["    z = sigmoid(x[:, t] @ w_x[update] + h @ w_h[update] + b[update])",
           "    r = sigmoid(x[:, t] @ w_x[reset] + h @ w_h[reset] + b[reset])",
           "    n = tanh(x[:, t] @ w_x[candidate] + (r * h) @ w_h[candidate] + b[candidate])",
           "    h = (1 - z) * n + z * h", "    y[:, t] = h"],
        parameters={"params/*/w_x": "[in, hidden], one per gate",
                    "params/*/w_h": "[hidden, hidden]", "params/*/b": "[hidden]"},
        inputs={"inputs/x": "[batch, time, in]"}, outputs={"outputs/y": "every h"},
        probes=_GATE_PROBES["gru"],
        notes=["Cho et al. 2014: r multiplies h BEFORE the product with w_h[candidate]; "
               "torch nn.GRU applies it after (r * (W_hn h + b_hn)), a different function: "
               "write the cell yourself"]),
}


def _attention(causal, in_shape=(2, 3, 4), heads=2):
    layer = L.multi_head_self_attention(heads, causal=causal)
    config = {"in_shape": list(in_shape), "num_heads": heads, "causal": causal,
              "formula": "q,k,v = x @ w + b per name; heads split the width; "
                         "softmax(q k^T / sqrt(head)) v (causal: key <= query); y @ wo + bo"}
    width = in_shape[-1]
    written = spec(attention_lines(heads, width, causal) + ["y = out"],
                   parameters=attention_parameters("", width),
                   inputs={"inputs/x": "[batch, time, width]"},
                   outputs={"outputs/y": "[batch, time, width]"}, probes=ATTENTION_PROBES)
    config["probes"] = list(instrumented.PROBES["attention"])
    twin = ("attention", functools.partial(instrumented.attention, num_heads=heads,
                                           causal=causal))
    return Spec(f"layer.attention.{'causal' if causal else 'full'}", "layer",
                f"multi-head self-attention, {heads} heads, causal={causal}", config,
                _layer_case(layer, in_shape, twin=twin), depth="deep", written=written)


ATTENTION_PROBES = {
    "q": "split(q) [batch, heads, time, hd]: the queries per head",
    "k": "split(k) [batch, heads, time, hd]", "v": "split(v_) [batch, heads, time, hd]",
    "scores": "s [batch, heads, tq, tk]: q k^T / sqrt(hd) BEFORE the mask (masked entries "
              "hold the unmasked score; their adjoint is 0)",
    "weights": "att [batch, heads, tq, tk] after the mask (masked entries exactly 0)",
    "heads": "o [batch, heads, tq, hd]: each head's output before the merge",
    "output": "out [batch, time, width] = outputs/y"}


def _sdpa(rng):
    def fn(params, inputs):
        t = inputs["q"].shape[-2]
        mask = jnp.tril(jnp.ones((t, t), bool))
        return {"y": L.scaled_dot_product_attention(inputs["q"], inputs["k"], inputs["v"],
                                                    mask)}
    shape = (2, 3, 4)
    return Built(fn, {}, {n: rng.standard_normal(shape) for n in "qkv"})


def _elman_long(rng):
    """Batch 1, 16 steps; w_hh = 0.95 * an orthogonal matrix and small inputs keep tanh near
    its linear range, so the gradient still reaches t = 0 (a BPTT cut short shows)."""
    layer = L.elman_rnn(3)

    def fn(params, inputs):
        return {"y": layer.apply(params, inputs["x"])}

    shapes = jax.eval_shape(lambda: layer.init(jax.random.key(0), (1, 16, 3))[1])
    params = draw_params(rng, shapes)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    params["w_hh"] = 0.95 * q
    return Built(fn, params, {"x": 0.5 * rng.standard_normal((1, 16, 3))})


def _embedding_repeated(rng):
    layer = L.embedding(5, 3)

    def fn(params, inputs):
        return {"y": layer.apply(params, inputs["ids"])}
    ids = np.array([[2, 2, 2, 2], [0, 2, 4, 2]], np.int32)  # id 2 six times; 1 and 3 unused
    return Built(fn, {"table": rng.standard_normal((5, 3))}, {"ids": ids})


def _embedding(rng):
    layer = L.embedding(6, 4)

    def fn(params, inputs):
        return {"y": layer.apply(params, inputs["ids"])}
    ids = np.array([[0, 3, 3], [5, 0, 2]], np.int32)  # repeated ids: gradients accumulate
    return Built(fn, {"table": rng.standard_normal((6, 4))}, {"ids": ids})


SPECS = [
    Spec("layer.dense", "layer", "y = x @ w + b; w [in, out], b [out], x [batch, in]",
         {"in_features": 5, "out_features": 3, "batch": 4}, _layer_case(L.dense(3), (4, 5)),
         written=spec(["y = x @ w + b", "dx = v @ w.T; dw = x.T @ v; db = sum(v, axis=0)"],
                      parameters={"params/w": "[in, out]", "params/b": "[out]"},
                      notes=LAYOUT_NOTES[:1])),
    _conv("stride1_same", 1, "SAME"),
    _conv("stride1_valid", 1, "VALID"),
    _conv("stride2_same", 2, "SAME"),
    _conv("stride2_valid", 2, "VALID"),
    _conv("dilation2_same", 1, "SAME", dilation=2),
    _conv("groups2", 1, "VALID", groups=2, out=4),
    _conv("stride2_same_even", 2, "SAME", in_shape=(2, 6, 6, 2)),
    _pool("max_pool", "window2_stride2_valid", 2, 2, "VALID"),
    _pool("max_pool", "window2_stride1_same", 2, 1, "SAME"),
    _pool("avg_pool", "window2_stride2_valid", 2, 2, "VALID"),
    _pool("avg_pool", "window2_stride1_same", 2, 1, "SAME"),
    _pool("max_pool", "window3_stride2_same_even", 3, 2, "SAME", in_shape=(2, 6, 6, 2)),
    _pool("avg_pool", "window3_stride2_same_even", 3, 2, "SAME", in_shape=(2, 6, 6, 2)),
    _recurrent("elman_rnn"),
    Spec("layer.elman_rnn.long", "layer",
         "elman_rnn over 16 steps, batch 1: h_t = tanh(x_t @ w_xh + h_{t-1} @ w_hh + b); "
         "w_hh = 0.95 * orthogonal, so the gradient reaches t = 0",
         {"in_shape": [1, 16, 3], "hidden": 3, "layout": "x [batch, time, in], y = every h_t "
          "[batch, time, hidden]", "cell": "h_t = tanh(x_t @ w_xh + h_{t-1} @ w_hh + b), "
          "h_0 = 0"}, _elman_long, depth="deep", written=RECURRENT["elman_rnn"]),
    _recurrent("lstm"),
    _recurrent("gru"),
    _attention(causal=True),
    _attention(causal=False),
    Spec("layer.scaled_dot_product_attention.causal", "layer",
         "y = softmax(q k^T / sqrt(d), masked to key <= query) v; q, k, v [2, 3, 4]",
         {"shape": [2, 3, 4], "causal": True}, _sdpa, depth="deep",
         written=spec(["s = q @ k.transpose(0, 2, 1) / sqrt(4)   # [batch, tq, tk]",
                       "s[:, i, j] for j > i: masked (most negative finite number; weight "
                       "then set to 0)", "y = softmax(s, axis=-1) @ v"],
                      notes=["torch: F.scaled_dot_product_attention(q, k, v, "
                             "is_causal=True)"])),
    Spec("layer.residual", "layer", "y = x + tanh(x @ w + b) (residual around dense, tanh)",
         {"in_shape": [3, 4], "branch": ["dense(4)", "tanh"], "projection": None},
         _layer_case(L.residual(L.serial(L.dense(4), L.tanh_layer)), (3, 4)),
         written=spec(["y = x + tanh(x @ dense_0/w + dense_0/b)"],
                      parameters={"params/dense_0/w": "[4, 4]", "params/dense_0/b": "[4]"})),
    Spec("layer.residual.projection", "layer",
         "y = x @ wp + bp + tanh(x @ w + b) (the skip path projects 4 -> 3)",
         {"in_shape": [3, 4], "branch": ["dense(3)", "tanh"], "projection": "dense(3)"},
         _layer_case(L.residual(L.serial(L.dense(3), L.tanh_layer)), (3, 4)),
         written=spec(["y = (x @ projection/w + projection/b) + tanh(x @ dense_0/w + "
                       "dense_0/b)"],
                      parameters={"params/dense_0/w": "[4, 3] (the branch)",
                                  "params/projection/w": "[4, 3] (the skip path)"})),
    Spec("layer.layer_norm", "layer",
         "y = (x - mean) / sqrt(var + eps) * scale + bias over the last axis (biased var)",
         {"in_shape": [3, 5], "eps": 1e-5}, _layer_case(L.layer_norm(), (3, 5)), depth="deep",
         written=spec(LAYER_NORM, notes=["eps = 1e-5; torch: F.layer_norm(x, (5,), scale, bias, "
                                         "eps=1e-5)"])),
    Spec("layer.embedding.repeated", "layer",
         "y = table[ids]; ids int32 [2, 4] = [[2, 2, 2, 2], [0, 2, 4, 2]]: id 2 six times, ids "
         "1 and 3 never (their gradient rows are 0)",
         {"vocab": 5, "features": 3, "ids_shape": [2, 4]}, _embedding_repeated,
         written=spec(["y = table[ids]   # [2, 4, 3]",
                       "dtable[r] = sum of v[b, t] over every (b, t) with ids[b, t] == r "
                       "(six terms for r = 2: accumulate, never overwrite)"],
                      inputs={"inputs/ids": "int32, no gradient"})),
    Spec("layer.embedding", "layer", "y = table[ids]; ids int32 [2, 3] with repeats",
         {"vocab": 6, "features": 4, "ids_shape": [2, 3]}, _embedding,
         written=spec(["y = table[ids]   # [2, 3, 4]",
                       "dtable[r] = sum of v[b, t] over every (b, t) with ids[b, t] == r "
                       "(accumulate repeats; unused rows get 0)"],
                      inputs={"inputs/ids": "int32, no gradient"})),
]
