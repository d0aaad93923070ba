"""Instrumented twins of funcnn's LSTM, GRU, attention and transformer: the same computation,
written out step by step with a "tap" (``oracle.cases.models``: an array added where a value
is produced, zero for the golden values) on every inner value, so that the golden files can
hold the adjoint of each gate, each attention score and each layer inside a block.

Each twin is ``probed(params, x, taps) -> (y, values)``: ``taps`` maps some probe names to
arrays of the probe's shape (missing: no tap); ``values`` holds every probe after its tap. The
twins use funcnn's activations and layers for every piece they do not open up; the export
refuses a case whose twin and funcnn's own layer disagree (``oracle.reference``).

``PROBES[kind]`` lists the probes in forward (topological) order, ``GRAPHS[kind]`` what each
is computed from (``name@t-1``: the previous time step), ``AXES[kind]`` their axis names.
Recurrent probes stack every step on a ``"time"`` axis: ``values["forget"][:, t]``.
"""
import math

import jax.numpy as jnp
from jax import lax

from funcnn import layers as L
from funcnn.activations import gelu, sigmoid, softmax, tanh
from funcnn.losses import cross_entropy


def _tap(taps, name, value, t=None):
    if name not in taps:
        return value
    return value + (taps[name] if t is None else taps[name][:, t])


def _affine(p, x, h):
    y = x @ p["w_x"] + h @ p["w_h"]
    return y + jnp.broadcast_to(p["b"], y.shape)


LSTM = ("input", "forget", "candidate", "output")
GRU = ("update", "reset")


def _scan(step, carry, x, taps, names):
    """Run ``step(carry, x_t, taps_t, tap) -> (carry, values_t)`` over time with
    ``lax.scan``; ``tap(name, value)`` adds that step's tap. Returns {name: [batch, time,
    ...]} for every probe in ``names``."""
    present = {n: jnp.swapaxes(taps[n], 0, 1) for n in names if n in taps}

    def body(carry, xs):
        x_t, taps_t = xs

        def tap(name, value):
            return value + taps_t[name] if name in taps_t else value

        return step(carry, x_t, tap)

    _, values = lax.scan(body, carry, (jnp.swapaxes(x, 0, 1), present))
    return {n: jnp.swapaxes(v, 0, 1) for n, v in values.items()}


def lstm(params, x, taps):
    """funcnn.layers.lstm with taps on each gate's pre-activation and activation, c and h."""
    hidden = params["input"]["w_h"].shape[0]

    def step(carry, x_t, tap):
        h, c = carry
        seen = {}
        for gate in LSTM:
            seen[f"{gate}_pre"] = tap(f"{gate}_pre", _affine(params[gate], x_t, h))
            fn = tanh if gate == "candidate" else sigmoid
            seen[gate] = tap(gate, fn(seen[f"{gate}_pre"]))
        c = seen["cell"] = tap("cell", seen["forget"] * c + seen["input"] * seen["candidate"])
        h = seen["hidden"] = tap("hidden", seen["output"] * tanh(c))
        return (h, c), seen

    zero = jnp.zeros((x.shape[0], hidden), x.dtype)
    values = _scan(step, (zero, zero), x, taps, PROBES["lstm"])
    return values["hidden"], values


def gru(params, x, taps):
    """funcnn.layers.gru with taps on its gates, r * h, the candidate and h."""
    hidden = params["update"]["w_h"].shape[0]

    def step(h, x_t, tap):
        seen = {}
        seen["update_pre"] = tap("update_pre", _affine(params["update"], x_t, h))
        seen["reset_pre"] = tap("reset_pre", _affine(params["reset"], x_t, h))
        z = seen["update"] = tap("update", sigmoid(seen["update_pre"]))
        r = seen["reset"] = tap("reset", sigmoid(seen["reset_pre"]))
        rh = seen["reset_hidden"] = tap("reset_hidden", r * h)
        seen["candidate_pre"] = tap("candidate_pre", _affine(params["candidate"], x_t, rh))
        n = seen["candidate"] = tap("candidate", tanh(seen["candidate_pre"]))
        h = seen["hidden"] = tap("hidden", (1 - z) * n + z * h)
        return h, seen

    values = _scan(step, jnp.zeros((x.shape[0], hidden), x.dtype), x, taps, PROBES["gru"])
    return values["hidden"], values


def attention(params, x, taps, num_heads, causal, prefix=""):
    """funcnn.layers.multi_head_self_attention with taps on q, k, v (split into heads), the
    scaled scores (before the mask), the weights, each head's output and the layer's output;
    probe names are ``prefix + name``, the layer's output ``output`` (or the prefix itself,
    without its final ``/``)."""
    batch, time, width = x.shape
    head = width // num_heads

    def project(name):
        y = x @ params["w" + name]
        return y + jnp.broadcast_to(params["b" + name], y.shape)

    def split(y):
        return y.reshape(batch, time, num_heads, head).transpose(0, 2, 1, 3)

    values = {}

    def keep(name, value):
        name = prefix + name if name != "output" or not prefix else prefix.rstrip("/")
        values[name] = _tap(taps, name, value)
        return values[name]

    q, k, v = (keep(n, split(project(n))) for n in "qkv")
    scores = keep("scores", jnp.einsum("...qd,...kd->...qk", q, k) / math.sqrt(head))
    mask = jnp.ones((batch, 1, time, time), bool)
    if causal:
        mask = mask & jnp.tril(jnp.ones((time, time), bool))[None, None]
    mask = jnp.broadcast_to(mask, scores.shape)
    weights = softmax(jnp.where(mask, scores, jnp.finfo(scores.dtype).min), axis=-1)
    weights = keep("weights", jnp.where(mask, weights, 0))
    heads = keep("heads", jnp.einsum("...qk,...kd->...qd", weights, v))
    merged = heads.transpose(0, 2, 1, 3).reshape(batch, time, width)
    y = merged @ params["wo"]
    out = keep("output", y + jnp.broadcast_to(params["bo"], y.shape))
    return out, values


def transformer_logits(params, x, taps, num_heads=2, causal=True):
    """funcnn.models.transformer (depth 1) with taps on every top-level layer, on each layer
    inside block_0 and on the attention's inner values."""
    values = {}

    def keep(name, value):
        values[name] = _tap(taps, name, value)
        return values[name]

    dense, norm = L.dense(1).apply, L.layer_norm().apply
    e = keep("dense_0", dense(params["dense_0"], x))
    p = keep("positional_embedding_0", e + params["positional_embedding_0"]["table"][
        None, : x.shape[1]])
    block = params["block_0"]
    n1 = keep("block_0/attention/norm", norm(block["attention"]["norm"], p))
    attn, inner = attention(block["attention"]["self_attention"], n1, taps, num_heads, causal,
                            "block_0/attention/self_attention/")
    values.update(inner)
    a = keep("block_0/attention", p + attn)
    n2 = keep("block_0/mlp/norm", norm(block["mlp"]["norm"], a))
    d0 = keep("block_0/mlp/dense_0", dense(block["mlp"]["dense_0"], n2))
    g = keep("block_0/mlp/gelu", gelu(d0))
    d1 = keep("block_0/mlp/dense_1", dense(block["mlp"]["dense_1"], g))
    y0 = keep("block_0", a + d1)
    n = keep("layer_norm_0", norm(params["layer_norm_0"], y0))
    pooled = keep("mean_pool_0", jnp.mean(n, axis=1))
    logits = keep("dense_1", dense(params["dense_1"], pooled))
    return logits, values


def transformer_loss(params, inputs, taps):
    logits, _ = transformer_logits(params, inputs["x"], taps)
    return cross_entropy(logits, inputs["y"])


_T = ["batch", "time", "hidden"]
_HEADS = ["batch", "head", "position", "feature"]
_SCORES = ["batch", "head", "query", "key"]
_ATT = "block_0/attention/self_attention/"

PROBES = {
    "lstm": tuple(f"{g}_pre" for g in LSTM) + LSTM + ("cell", "hidden"),
    "gru": ("update_pre", "reset_pre", "update", "reset", "reset_hidden", "candidate_pre",
            "candidate", "hidden"),
    "attention": ("q", "k", "v", "scores", "weights", "heads", "output"),
    "transformer": ("dense_0", "positional_embedding_0", "block_0/attention/norm",
                    *(_ATT + n for n in ("q", "k", "v", "scores", "weights", "heads")),
                    "block_0/attention/self_attention", "block_0/attention", "block_0/mlp/norm",
                    "block_0/mlp/dense_0", "block_0/mlp/gelu", "block_0/mlp/dense_1", "block_0",
                    "layer_norm_0", "mean_pool_0", "dense_1"),
}


def _attention_graph(prefix, source, params):
    output = prefix.rstrip("/") if prefix else "output"
    return {prefix + "q": [source, params + "wq", params + "bq"],
            prefix + "k": [source, params + "wk", params + "bk"],
            prefix + "v": [source, params + "wv", params + "bv"],
            prefix + "scores": [prefix + "q", prefix + "k"],
            prefix + "weights": [prefix + "scores"],
            prefix + "heads": [prefix + "weights", prefix + "v"],
            output: [prefix + "heads", params + "wo", params + "bo"]}


GRAPHS = {
    "lstm": {**{f"{g}_pre": ["inputs/x", "hidden@t-1", f"params/{g}"] for g in LSTM},
             **{g: [f"{g}_pre"] for g in LSTM},
             "cell": ["forget", "cell@t-1", "input", "candidate"],
             "hidden": ["output", "cell"]},
    "gru": {"update_pre": ["inputs/x", "hidden@t-1", "params/update"],
            "reset_pre": ["inputs/x", "hidden@t-1", "params/reset"],
            "update": ["update_pre"], "reset": ["reset_pre"],
            "reset_hidden": ["reset", "hidden@t-1"],
            "candidate_pre": ["inputs/x", "reset_hidden", "params/candidate"],
            "candidate": ["candidate_pre"],
            "hidden": ["update", "candidate", "hidden@t-1"]},
    "attention": _attention_graph("", "inputs/x", "params/"),
    "transformer": {
        "dense_0": ["inputs/x", "params/dense_0"],
        "positional_embedding_0": ["dense_0", "params/positional_embedding_0"],
        "block_0/attention/norm": ["positional_embedding_0", "params/block_0/attention/norm"],
        **_attention_graph(_ATT, "block_0/attention/norm", "params/" + _ATT),
        "block_0/attention": ["positional_embedding_0", "block_0/attention/self_attention"],
        "block_0/mlp/norm": ["block_0/attention", "params/block_0/mlp/norm"],
        "block_0/mlp/dense_0": ["block_0/mlp/norm", "params/block_0/mlp/dense_0"],
        "block_0/mlp/gelu": ["block_0/mlp/dense_0"],
        "block_0/mlp/dense_1": ["block_0/mlp/gelu", "params/block_0/mlp/dense_1"],
        "block_0": ["block_0/attention", "block_0/mlp/dense_1"],
        "layer_norm_0": ["block_0", "params/layer_norm_0"],
        "mean_pool_0": ["layer_norm_0"],
        "dense_1": ["mean_pool_0", "params/dense_1"]},
}

AXES = {
    "lstm": {p: _T for p in PROBES["lstm"]},
    "gru": {p: _T for p in PROBES["gru"]},
    "attention": {**{n: _HEADS for n in ("q", "k", "v", "heads")},
                  "scores": _SCORES, "weights": _SCORES,
                  "output": ["batch", "position", "width"]},
    "transformer": {**{_ATT + n: _HEADS for n in ("q", "k", "v", "heads")},
                    _ATT + "scores": _SCORES, _ATT + "weights": _SCORES},
}
