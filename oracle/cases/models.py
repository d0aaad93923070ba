"""Model cases: mlp, cnn, rnn, transformer and linear regression, with per-layer probes.

``fn(params, inputs) = {"loss": model.loss(params, (x, y))}`` (mean cross-entropy, plus the
L2 term where ``config["l2"]`` says so; mean squared error for linear regression). For every
top-level layer (``config["probes"]``, in forward order) the golden file keeps
``probes/<layer>/value`` (its output) and ``probes/<layer>/adjoint`` (dL/d output, the
gradient with respect to a zero tap added to that output), so a reader can find the first
layer whose backward pass goes wrong.
"""
import jax
import numpy as np

from funcnn import models
from funcnn.layers import intermediates
from oracle.cases import instrumented
from oracle.cases.base import Built, Spec, draw_params, jitted
from oracle.cases.written import LAYOUT_NOTES, attention_lines, kink, spec


def _model_case(model, x_shape, labels=None, targets=False, tweak=None, margin=None,
                twin=None):
    """A model case with a probe on every top-level layer; ``twin`` (a kind of
    ``instrumented``) probes the layers inside too, through the instrumented twin."""
    def fn(params, inputs):
        return {"loss": model.loss(params, (inputs["x"], inputs["y"]))}

    def probe_fn(params, inputs, probes):
        if twin is not None:
            return {"loss": instrumented.transformer_loss(params, inputs, probes)}
        return {"loss": model.loss(params, (inputs["x"], inputs["y"]), taps=probes)}

    def probe_values(params, inputs):
        if twin is not None:
            return instrumented.transformer_logits(params, inputs["x"], {})[1]
        return intermediates(model, params, inputs["x"])

    def build(rng):
        names = tuple(model.layer_names) if twin is None else instrumented.PROBES[twin]
        shapes = jax.eval_shape(lambda: model.init(jax.random.key(0)))
        for _ in range(100):
            params = draw_params(rng, shapes)
            x = rng.standard_normal(x_shape)
            y = rng.standard_normal(x_shape[0]) if targets else np.asarray(labels, np.int32)
            if tweak is not None:
                tweak(params, x)
            want = MARGIN if margin is None else margin
            if _relu_margin(probe_values, names, params, {"x": x, "y": y}) >= want:
                break
        else:
            raise RuntimeError(f"no draw keeps the relu inputs {want} away from 0")
        graph = chain_graph(names, params) if twin is None else instrumented.GRAPHS[twin]
        return Built(fn, params, {"x": x, "y": y}, probes=names, probe_fn=probe_fn,
                     probe_values=probe_values, probe_graph=graph,
                     probe_axes=None if twin is None else instrumented.AXES[twin])

    return build


MARGIN = 0.05
# model.cnn.zero_background: a conv output at the stroke's edge sums one or two weights times
# a pixel, so the nonzero relu inputs are only kept 0.01 away from 0 (a finite-difference step
# there moves them by at most about 5e-3; a crossing would be reported as no derivative, not
# as a failure).
ZERO_BACKGROUND_MARGIN = 0.01


def chain_graph(names, params, first="inputs/x"):
    """Each layer computed from the one before (the first from ``first``) and its params."""
    return {n: [names[i - 1] if i else first] + ([f"params/{n}"] if params.get(n) else [])
            for i, n in enumerate(names)}


def _relu_margin(probe_values, names, params, inputs):
    """The smallest |input| of any relu layer, not counting exact zeros (planted kinks).
    Draws are repeated until it is at least MARGIN, so that finite differences never straddle
    a kink by accident."""
    relus = [i for i, n in enumerate(names) if n.startswith("relu") and i > 0]
    if not relus:
        return np.inf
    with jax.enable_x64(True):
        values = jitted(probe_values)(params, inputs)
    pre = [np.abs(np.asarray(values[names[i - 1]])) for i in relus]
    return min(float(np.min(np.where(p == 0, np.inf, p))) for p in pre)


def _relu_at_zero(params, x):
    """Row 0 of x is all zeros and dense_0's bias has b[1] = 0, so the pre-activation
    (row 0, unit 1) is exactly 0: the model case pins relu'(0) = 0 inside a network."""
    x[0] = 0.0
    params["dense_0"]["b"][1] = 0.0


def _zero_background(params, x):
    """A 1-image batch of zeros with one bright stroke, and zero conv biases: every conv output
    away from the stroke is exactly 0, so relu sits at its kink there (as in a zero-bias
    model on zero-background images)."""
    x[...] = 0.0
    x[0, 2:4, 1:5, 0] = [[1.8, 2.7, 2.4, 2.1], [1.5, 3.0, 2.7, 1.8]]
    for layer in ("conv2d_0", "conv2d_1"):
        params[layer]["b"][...] = 0.0


MLP = models.mlp(4, hidden=(5, 5), num_classes=3, activation="relu", l2=0.01)
CNN = models.cnn(in_shape=(4, 4, 1), channels=(2, 3), num_classes=3)
RNN = models.rnn(3, hidden=4, num_classes=3)
CNN_6 = models.cnn(in_shape=(6, 6, 1), channels=(2, 3), num_classes=3)
TRANSFORMER = models.transformer(4, width=8, num_heads=2, depth=1, num_classes=3, max_len=3,
                                 causal=True)
LINEAR = models.linear_regression(3)

def _probes(names, what):
    return {n: what.get(n, "") for n in names}


MLP_SPEC = spec(
    ["a0 = x @ dense_0/w + dense_0/b     # [4, 5]  probe dense_0",
     "r0 = relu(a0)                      #         probe relu_0",
     "a1 = r0 @ dense_1/w + dense_1/b    # [4, 5]  probe dense_1",
     "r1 = relu(a1)                      #         probe relu_1",
     "logits = r1 @ dense_2/w + dense_2/b   # [4, 3]  probe dense_2",
     "loss = cross_entropy(logits, y) + 0.01 * (sum(dense_0/w^2) + sum(dense_1/w^2) + "
     "sum(dense_2/w^2))   (biases not penalised)"],
    inputs={"inputs/y": "class ids"}, outputs={"outputs/loss": "scalar"},
    kinks=[kink("relu_grad_at_0", "a0[0, 1] is exactly 0 (x row 0 is 0 and dense_0/b[1] = 0): "
                "probes/dense_0/adjoint[0, 1] = relu_grad_at_0 * probes/relu_0/adjoint[0, 1]")],
    probes=_probes(MLP.layer_names, {"dense_0": "a0", "relu_0": "r0", "dense_1": "a1",
                                     "relu_1": "r1", "dense_2": "logits"}),
    notes=["probe adjoints are d loss / d value; the L2 term adds nothing to them"]
    + LAYOUT_NOTES[:1])

CNN_SPEC = spec(
    ["c0 = conv2d(x, conv2d_0/w [3, 3, 1, 2], conv2d_0/b, stride 1, padding [[1, 1], [1, 1]])"
     "   # [2, 4, 4, 2]",
     "r0 = relu(c0)",
     "c1 = conv2d(r0, conv2d_1/w [3, 3, 2, 3], conv2d_1/b, stride 2, padding [[0, 1], [0, 1]])"
     "   # [2, 2, 2, 3]",
     "r1 = relu(c1)",
     "f = r1.reshape(2, 12)   # row-major over (h, w, c)",
     "logits = f @ dense_0/w [12, 3] + dense_0/b",
     "loss = cross_entropy(logits, y)"],
    inputs={"inputs/x": "NHWC images", "inputs/y": "class ids"},
    outputs={"outputs/loss": "scalar"},
    probes=_probes(CNN.layer_names, {"conv2d_0": "c0", "relu_0": "r0", "conv2d_1": "c1",
                                     "relu_1": "r1", "flatten_0": "f", "dense_0": "logits"}),
    notes=["conv2d as in layer.conv2d (cross-correlation, NHWC / HWIO)",
           "the second padding is asymmetric: SAME on the even size 4 with stride 2",
           "flatten in NHWC order: from torch's NCHW, r1.permute(0, 2, 3, 1).reshape(2, -1)"])

ZERO_BACKGROUND_SPEC = spec(
    [line.replace("[2, 4, 4, 2]", "[1, 6, 6, 2]").replace("[2, 2, 2, 3]", "[1, 3, 3, 3]")
     .replace("reshape(2, 12)", "reshape(1, 27)").replace("[12, 3]", "[27, 3]")
     for line in CNN_SPEC["function"]],
    inputs={"inputs/x": "NHWC, zeros except the stroke x[0, 2:4, 1:5, 0]",
            "inputs/y": "class ids"},
    outputs={"outputs/loss": "scalar"}, probes=CNN_SPEC["probes"],
    kinks=[kink("relu_grad_at_0", "c0 and c1 are exactly 0 wherever the window misses the "
                "stroke (conv2d_0/b = conv2d_1/b = 0): relu's derivative there is "
                "relu_grad_at_0, so probes/conv2d_*/adjoint is 0 at those entries")],
    notes=CNN_SPEC["notes"])

RNN_SPEC = spec(
    ["hs = elman_rnn(x)   # as layer.elman_rnn, hidden 4: [2, 4, 4]   probe elman_rnn_0",
     "last = hs[:, -1]    # [2, 4]   probe last_state_0",
     "logits = last @ dense_0/w + dense_0/b   # probe dense_0",
     "loss = cross_entropy(logits, y)"],
    inputs={"inputs/x": "[batch, time, in]", "inputs/y": "class ids"},
    outputs={"outputs/loss": "scalar"},
    probes=_probes(RNN.layer_names, {"elman_rnn_0": "hs, every state",
                                     "last_state_0": "last", "dense_0": "logits"}))

TRANSFORMER_SPEC = spec(
    ["e = x @ dense_0/w [4, 8] + dense_0/b   # probe dense_0",
     "p = e + positional_embedding_0/table[:time]   (table [3, 8]; row t added at time t)"
     "   # probe positional_embedding_0",
     "# block_0, pre-norm:",
     "n1 = layer_norm(p; block_0/attention/norm)",
     *[f"    {line}" for line in attention_lines(2, 8, True, "n1",
                                                   "block_0/attention/self_attention/")],
     "a = p + out   (residual)",
     "n2 = layer_norm(a; block_0/mlp/norm)",
     "m = gelu_tanh(n2 @ block_0/mlp/dense_0/w [8, 32] + block_0/mlp/dense_0/b)",
     "y0 = a + (m @ block_0/mlp/dense_1/w [32, 8] + block_0/mlp/dense_1/b)   # probe block_0",
     "n = layer_norm(y0; layer_norm_0)   # probe layer_norm_0",
     "pooled = mean(n, axis=1)   (over time)   # probe mean_pool_0",
     "logits = pooled @ dense_1/w [8, 3] + dense_1/b   # probe dense_1",
     "loss = cross_entropy(logits, y)"],
    inputs={"inputs/x": "[batch, time, in]", "inputs/y": "class ids"},
    outputs={"outputs/loss": "scalar"},
    probes=_probes(instrumented.PROBES["transformer"], {
        "dense_0": "e", "positional_embedding_0": "p (after adding the positions)",
        "block_0/attention/norm": "n1",
        "block_0/attention/self_attention/q": "split(q) [batch, heads, time, 4]",
        "block_0/attention/self_attention/k": "split(k)",
        "block_0/attention/self_attention/v": "split(v_)",
        "block_0/attention/self_attention/scores": "s [batch, heads, tq, tk], before the mask",
        "block_0/attention/self_attention/weights": "att, after the mask",
        "block_0/attention/self_attention/heads": "o [batch, heads, tq, 4], before the merge",
        "block_0/attention/self_attention": "out, the attention's output",
        "block_0/attention": "a = p + out", "block_0/mlp/norm": "n2",
        "block_0/mlp/dense_0": "n2 @ w + b [batch, time, 32]", "block_0/mlp/gelu": "m",
        "block_0/mlp/dense_1": "m @ w + b [batch, time, 8]",
        "block_0": "y0, the block's output", "layer_norm_0": "n", "mean_pool_0": "pooled",
        "dense_1": "logits"}),
    notes=["layer_norm(x; P) = (x - mean) / sqrt(var + 1e-5) * P/scale + P/bias over the last "
           "axis, biased var", "gelu_tanh is the tanh approximation"])

LINEAR_SPEC = spec(
    ["y_hat = (x @ dense_0/w + dense_0/b)[:, 0]   # w [3, 1], b [1]; probe dense_0 is "
     "[5, 1], probe squeeze_0 is y_hat [5]",
     "loss = mean((y_hat - y)^2)"],
    inputs={"inputs/y": "float targets: they get a gradient"},
    outputs={"outputs/loss": "scalar"},
    probes=_probes(LINEAR.layer_names, {"dense_0": "x @ w + b, [5, 1]",
                                        "squeeze_0": "y_hat, [5]"}))

SPECS = [
    Spec("model.mlp", "model",
         "mlp 4 -> 5 -> 5 -> 3, relu, mean cross-entropy + 0.01 * sum of squared dense w; "
         "x row 0 and dense_0/b[1] are 0, so one relu sits exactly at its kink",
         {"in_features": 4, "hidden": [5, 5], "num_classes": 3, "activation": "relu",
          "l2": 0.01, "l2_on": "every dense w (not b)", "batch": 4,
          "probes": list(MLP.layer_names)},
         _model_case(MLP, (4, 4), labels=[0, 2, 1, 1], tweak=_relu_at_zero), depth="deep",
         written=MLP_SPEC),
    Spec("model.cnn", "model",
         "conv3x3(2, stride 1, SAME) relu conv3x3(3, stride 2, SAME) relu flatten dense(3); "
         "mean cross-entropy",
         {"in_shape": [2, 4, 4, 1], "channels": [2, 3], "kernel_size": [3, 3],
          "strides": [[1, 1], [2, 2]], "padding": [[[1, 1], [1, 1]], [[0, 1], [0, 1]]],
          "padding_from": "SAME", "num_classes": 3, "flatten": "row-major over (h, w, c)",
          "probes": list(CNN.layer_names)},
         _model_case(CNN, (2, 4, 4, 1), labels=[1, 2]), depth="deep", written=CNN_SPEC),
    Spec("model.cnn.zero_background", "model",
         "model.cnn on one 6x6 image of zeros with a bright stroke, conv biases 0: relu "
         "meets exact zeros everywhere off the stroke; batch 1; the stride-2 SAME padding on "
         "the even size 6 is asymmetric",
         {"in_shape": [1, 6, 6, 1], "channels": [2, 3], "kernel_size": [3, 3],
          "strides": [[1, 1], [2, 2]], "padding": [[[1, 1], [1, 1]], [[0, 1], [0, 1]]],
          "padding_from": "SAME", "num_classes": 3, "flatten": "row-major over (h, w, c)",
          "batch": 1, "probes": list(CNN_6.layer_names)},
         _model_case(CNN_6, (1, 6, 6, 1), labels=[1], tweak=_zero_background,
                     margin=ZERO_BACKGROUND_MARGIN), depth="deep",
         written=ZERO_BACKGROUND_SPEC),
    Spec("model.rnn", "model",
         "Elman RNN (hidden 4) over 4 steps, last state, dense(3); mean cross-entropy",
         {"in_features": 3, "hidden": 4, "time": 4, "batch": 2, "num_classes": 3,
          "probes": list(RNN.layer_names)},
         _model_case(RNN, (2, 4, 3), labels=[0, 2]), depth="deep", written=RNN_SPEC),
    Spec("model.transformer", "model",
         "dense(8), learned positions, 1 pre-norm block (causal 2-head attention, gelu mlp "
         "8 -> 32 -> 8), layer norm, mean over time, dense(3); mean cross-entropy",
         {"in_features": 4, "width": 8, "num_heads": 2, "depth": 1, "num_classes": 3,
          "max_len": 3, "causal": True, "mlp_width": 32, "gelu": "tanh approximation",
          "layer_norm_eps": 1e-5, "time": 3, "batch": 2,
          "probes": list(instrumented.PROBES["transformer"])},
         _model_case(TRANSFORMER, (2, 3, 4), labels=[2, 0], twin="transformer"), depth="deep",
         written=TRANSFORMER_SPEC),
    Spec("model.linear_regression", "model",
         "y_hat = x @ w + b (w [3, 1], b [1]), loss = mean (y_hat - y)^2; y float [5]",
         {"in_features": 3, "batch": 5, "loss": "mean squared error",
          "probes": list(LINEAR.layer_names)},
         _model_case(LINEAR, (5, 3), targets=True), depth="shallow", written=LINEAR_SPEC),
]
