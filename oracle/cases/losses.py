"""Loss cases: cross-entropy (integer labels, mean), soft cross-entropy, mean squared error and
the L2 penalty. Each has a scalar ``outputs/loss`` (cotangent 1)."""
import numpy as np

from funcnn import losses
from oracle.cases.base import Built, Spec

BATCH, CLASSES = 4, 3


def _cross_entropy(rng):
    def fn(params, inputs):
        return {"loss": losses.cross_entropy(inputs["logits"], inputs["labels"])}
    return Built(fn, {}, {"logits": 1.5 * rng.standard_normal((BATCH, CLASSES)),
                          "labels": np.array([0, 2, 1, 2], np.int32)})


def _cross_entropy_soft(rng):
    def fn(params, inputs):
        return {"loss": losses.cross_entropy_soft(inputs["logits"], inputs["targets"])}
    raw = np.exp(rng.standard_normal((BATCH, CLASSES)))
    return Built(fn, {}, {"logits": 1.5 * rng.standard_normal((BATCH, CLASSES)),
                          "targets": raw / raw.sum(axis=1, keepdims=True)})


def _mse(rng):
    def fn(params, inputs):
        return {"loss": losses.mean_squared_error(inputs["pred"], inputs["target"])}
    return Built(fn, {}, {"pred": rng.standard_normal((BATCH, CLASSES)),
                          "target": rng.standard_normal((BATCH, CLASSES))})


def _l2(rng):
    def fn(params, inputs):
        return {"loss": losses.l2_penalty(params)}
    return Built(fn, {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}, {})


SPECS = [
    Spec("loss.cross_entropy", "loss",
         "loss = mean_i -log softmax(logits_i)[labels_i]",
         {"batch": BATCH, "classes": CLASSES, "reduction": "mean", "labels": "int32 [batch]"},
         _cross_entropy),
    Spec("loss.cross_entropy_soft", "loss",
         "loss = mean_i -sum_c targets_ic log softmax(logits_i)_c (targets get gradients too)",
         {"batch": BATCH, "classes": CLASSES, "reduction": "mean"}, _cross_entropy_soft),
    Spec("loss.mean_squared_error", "loss", "loss = mean over all entries of (pred - target)^2",
         {"shape": [BATCH, CLASSES], "reduction": "mean"}, _mse),
    Spec("loss.l2_penalty", "loss", "loss = sum of squares of every params leaf (w and b)",
         {"leaves": ["w", "b"]}, _l2),
]
