"""Layer cases: each layer kind of ``funcnn.layers`` with its variants.

``fn(params, inputs) = {"y": layer.apply(params, inputs["x"])}`` (attention's
``scaled_dot_product_attention`` takes ``q, k, v``); ``cotangents/y`` is seeded normal.
Parameters are drawn by ``draw_params`` into the shapes the layer's ``init`` gives. Conv and
pooling configs give the padding as explicit ``[[top, bottom], [left, right]]`` pairs, also
when the case is built with SAME (``padding_from`` says which).
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn import layers as L
from oracle.cases.base import Built, Spec, draw_params


def _layer_case(layer, in_shape, x_draw=None):
    def fn(params, inputs):
        return {"y": layer.apply(params, inputs["x"])}

    def build(rng):
        shapes = jax.eval_shape(lambda: layer.init(jax.random.key(0), in_shape)[1])
        params = draw_params(rng, shapes)
        x = rng.standard_normal(in_shape) if x_draw is None else x_draw(rng)
        return Built(fn, params, {"x": x})

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
    return Spec(f"layer.conv2d.{variant}", "layer",
                "y = conv2d(x, w) + b (cross-correlation, no kernel flip), NHWC / HWIO",
                config, _layer_case(layer, in_shape))


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
    return Spec(f"layer.{kind}.{variant}", "layer", desc, config,
                _layer_case(layer, in_shape, draw))


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
    return Spec(f"layer.{kind}", "layer", f"{kind} over time: {cells[kind]}", config,
                _layer_case(layer, in_shape), depth="deep")


def _attention(causal, in_shape=(2, 3, 4), heads=2):
    layer = L.multi_head_self_attention(heads, causal=causal)
    config = {"in_shape": list(in_shape), "num_heads": heads, "causal": causal,
              "formula": "q,k,v = x @ w + b per name; heads split the width; "
                         "softmax(q k^T / sqrt(head)) v (causal: key <= query); y @ wo + bo"}
    return Spec(f"layer.attention.{'causal' if causal else 'full'}", "layer",
                f"multi-head self-attention, {heads} heads, causal={causal}", config,
                _layer_case(layer, in_shape), depth="deep")


def _sdpa(rng):
    def fn(params, inputs):
        t = inputs["q"].shape[-2]
        mask = jnp.tril(jnp.ones((t, t), bool))
        return {"y": L.scaled_dot_product_attention(inputs["q"], inputs["k"], inputs["v"],
                                                    mask)}
    shape = (2, 3, 4)
    return Built(fn, {}, {n: rng.standard_normal(shape) for n in "qkv"})


def _embedding(rng):
    layer = L.embedding(6, 4)

    def fn(params, inputs):
        return {"y": layer.apply(params, inputs["ids"])}
    ids = np.array([[0, 3, 3], [5, 0, 2]], np.int32)  # repeated ids: gradients accumulate
    return Built(fn, {"table": rng.standard_normal((6, 4))}, {"ids": ids})


SPECS = [
    Spec("layer.dense", "layer", "y = x @ w + b; w [in, out], b [out], x [batch, in]",
         {"in_features": 5, "out_features": 3, "batch": 4}, _layer_case(L.dense(3), (4, 5))),
    _conv("stride1_same", 1, "SAME"),
    _conv("stride1_valid", 1, "VALID"),
    _conv("stride2_same", 2, "SAME"),
    _conv("stride2_valid", 2, "VALID"),
    _conv("dilation2_same", 1, "SAME", dilation=2),
    _conv("groups2", 1, "VALID", groups=2, out=4),
    _pool("max_pool", "window2_stride2_valid", 2, 2, "VALID"),
    _pool("max_pool", "window2_stride1_same", 2, 1, "SAME"),
    _pool("avg_pool", "window2_stride2_valid", 2, 2, "VALID"),
    _pool("avg_pool", "window2_stride1_same", 2, 1, "SAME"),
    _recurrent("elman_rnn"),
    _recurrent("lstm"),
    _recurrent("gru"),
    _attention(causal=True),
    _attention(causal=False),
    Spec("layer.scaled_dot_product_attention.causal", "layer",
         "y = softmax(q k^T / sqrt(d), masked to key <= query) v; q, k, v [2, 3, 4]",
         {"shape": [2, 3, 4], "causal": True}, _sdpa, depth="deep"),
    Spec("layer.residual", "layer", "y = x + tanh(x @ w + b) (residual around dense, tanh)",
         {"in_shape": [3, 4], "branch": ["dense(4)", "tanh"], "projection": None},
         _layer_case(L.residual(L.serial(L.dense(4), L.tanh_layer)), (3, 4))),
    Spec("layer.residual.projection", "layer",
         "y = x @ wp + bp + tanh(x @ w + b) (the skip path projects 4 -> 3)",
         {"in_shape": [3, 4], "branch": ["dense(3)", "tanh"], "projection": "dense(3)"},
         _layer_case(L.residual(L.serial(L.dense(3), L.tanh_layer)), (3, 4))),
    Spec("layer.layer_norm", "layer",
         "y = (x - mean) / sqrt(var + eps) * scale + bias over the last axis (biased var)",
         {"in_shape": [3, 5], "eps": 1e-5}, _layer_case(L.layer_norm(), (3, 5)), depth="deep"),
    Spec("layer.embedding", "layer", "y = table[ids]; ids int32 [2, 3] with repeats",
         {"vocab": 6, "features": 4, "ids_shape": [2, 3]}, _embedding),
]
