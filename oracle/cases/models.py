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
from oracle.cases.base import Built, Spec, draw_params, jitted


def _model_case(model, x_shape, labels=None, targets=False, tweak=None):
    def fn(params, inputs):
        return {"loss": model.loss(params, (inputs["x"], inputs["y"]))}

    def probe_fn(params, inputs, probes):
        return {"loss": model.loss(params, (inputs["x"], inputs["y"]), taps=probes)}

    def probe_values(params, inputs):
        return intermediates(model, params, inputs["x"])

    def build(rng):
        names = tuple(model.layer_names)
        shapes = jax.eval_shape(lambda: model.init(jax.random.key(0)))
        for _ in range(100):
            params = draw_params(rng, shapes)
            x = rng.standard_normal(x_shape)
            y = rng.standard_normal(x_shape[0]) if targets else np.asarray(labels, np.int32)
            if tweak is not None:
                tweak(params, x)
            if _relu_margin(probe_values, names, params, {"x": x, "y": y}) >= MARGIN:
                break
        else:
            raise RuntimeError(f"no draw keeps the relu inputs {MARGIN} away from 0")
        return Built(fn, params, {"x": x, "y": y}, probes=names, probe_fn=probe_fn,
                     probe_values=probe_values)

    return build


MARGIN = 0.05


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


MLP = models.mlp(4, hidden=(5, 5), num_classes=3, activation="relu", l2=0.01)
CNN = models.cnn(in_shape=(4, 4, 1), channels=(2, 3), num_classes=3)
RNN = models.rnn(3, hidden=4, num_classes=3)
TRANSFORMER = models.transformer(4, width=8, num_heads=2, depth=1, num_classes=3, max_len=3,
                                 causal=True)
LINEAR = models.linear_regression(3)

SPECS = [
    Spec("model.mlp", "model",
         "mlp 4 -> 5 -> 5 -> 3, relu, mean cross-entropy + 0.01 * sum of squared dense w; "
         "x row 0 and dense_0/b[1] are 0, so one relu sits exactly at its kink",
         {"in_features": 4, "hidden": [5, 5], "num_classes": 3, "activation": "relu",
          "l2": 0.01, "l2_on": "every dense w (not b)", "batch": 4,
          "probes": list(MLP.layer_names)},
         _model_case(MLP, (4, 4), labels=[0, 2, 1, 1], tweak=_relu_at_zero), depth="deep"),
    Spec("model.cnn", "model",
         "conv3x3(2, stride 1, SAME) relu conv3x3(3, stride 2, SAME) relu flatten dense(3); "
         "mean cross-entropy",
         {"in_shape": [2, 4, 4, 1], "channels": [2, 3], "kernel_size": [3, 3],
          "strides": [[1, 1], [2, 2]], "padding": [[[1, 1], [1, 1]], [[0, 1], [0, 1]]],
          "padding_from": "SAME", "num_classes": 3, "flatten": "row-major over (h, w, c)",
          "probes": list(CNN.layer_names)},
         _model_case(CNN, (2, 4, 4, 1), labels=[1, 2]), depth="deep"),
    Spec("model.rnn", "model",
         "Elman RNN (hidden 4) over 4 steps, last state, dense(3); mean cross-entropy",
         {"in_features": 3, "hidden": 4, "time": 4, "batch": 2, "num_classes": 3,
          "probes": list(RNN.layer_names)},
         _model_case(RNN, (2, 4, 3), labels=[0, 2]), depth="deep"),
    Spec("model.transformer", "model",
         "dense(8), learned positions, 1 pre-norm block (causal 2-head attention, gelu mlp "
         "8 -> 32 -> 8), layer norm, mean over time, dense(3); mean cross-entropy",
         {"in_features": 4, "width": 8, "num_heads": 2, "depth": 1, "num_classes": 3,
          "max_len": 3, "causal": True, "mlp_width": 32, "gelu": "tanh approximation",
          "layer_norm_eps": 1e-5, "time": 3, "batch": 2,
          "probes": list(TRANSFORMER.layer_names)},
         _model_case(TRANSFORMER, (2, 3, 4), labels=[2, 0]), depth="deep"),
    Spec("model.linear_regression", "model",
         "y_hat = x @ w + b (w [3, 1], b [1]), loss = mean (y_hat - y)^2; y float [5]",
         {"in_features": 3, "batch": 5, "loss": "mean squared error",
          "probes": list(LINEAR.layer_names)},
         _model_case(LINEAR, (5, 3), targets=True), depth="shallow"),
]
