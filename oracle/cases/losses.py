"""Loss cases: cross-entropy (integer labels, mean), soft cross-entropy, mean squared error and
the L2 penalty. Each has a scalar ``outputs/loss`` (cotangent 1)."""
import jax.numpy as jnp
import numpy as np

from funcnn import losses
from funcnn.activations import softplus
from oracle.cases.base import Built, Spec, away_from
from oracle.cases.written import spec

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


LARGE_LOGITS = np.array([[1000.0, 0.0, -1000.0], [30.0, 31.0, -30.0],
                         [-1000.0, -999.0, -1001.0], [700.0, -700.0, 699.5]])


def _cross_entropy_large(rng):
    def fn(params, inputs):
        return {"loss": losses.cross_entropy(inputs["logits"], inputs["labels"])}
    return Built(fn, {}, {"logits": LARGE_LOGITS.copy(),
                          "labels": np.array([2, 0, 1, 1], np.int32)}, step_scale=1.0)


def binary_cross_entropy(logits, targets):
    """mean over all entries of -(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))), computed
    as softplus(z) - t z (stable for any z)."""
    return jnp.mean(softplus(logits) - targets * logits)


def _bce_fn(params, inputs):
    return {"loss": binary_cross_entropy(inputs["logits"], inputs["targets"])}


def _bce(rng):
    return Built(_bce_fn, {}, {"logits": away_from(rng, (BATCH, CLASSES), (0.0,), 0.05, 1.5),
                               "targets": rng.uniform(0, 1, (BATCH, CLASSES))})


def _bce_large(rng):
    logits = np.array([[1000.0, -1000.0, 30.0], [-30.0, 700.0, -700.0],
                       [50.0, -50.0, 100.0], [-100.0, 2.0, -2.5]])
    targets = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.3], [0.0, 1.0, 0.7], [1.0, 0.5, 0.0]])
    return Built(_bce_fn, {}, {"logits": logits, "targets": targets}, step_scale=1.0)


def _l2(rng):
    def fn(params, inputs):
        return {"loss": losses.l2_penalty(params)}
    return Built(fn, {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}, {})


CE_LINES = ["log_p = log_softmax(logits, axis=-1)   (max subtracted)",
            "loss = -mean_i log_p[i, labels[i]]   (mean over the batch, as torch's "
            "F.cross_entropy)",
            "dlogits = (softmax(logits) - onehot(labels)) / batch * v   (labels: no gradient)"]

BCE_LINES = ["loss = mean(softplus(z) - t * z)   over all 12 entries; softplus(z) = "
             "log(1 + exp(z)), computed stably as max(z, 0) + log1p(exp(-|z|))",
             "dz = (sigmoid(z) - t) / 12; dt = -z / 12"]

SPECS = [
    Spec("loss.cross_entropy", "loss",
         "loss = mean_i -log softmax(logits_i)[labels_i]",
         {"batch": BATCH, "classes": CLASSES, "reduction": "mean", "labels": "int32 [batch]"},
         _cross_entropy, written=spec(
             CE_LINES, inputs={"inputs/labels": "class ids in [0, classes)"},
             outputs={"outputs/loss": "scalar; cotangents/loss = 1"})),
    Spec("loss.cross_entropy.large_logits", "loss",
         "loss.cross_entropy on logits of +-30 to +-1000 (a label's logit 2000 below the row's "
         "max): log-sum-exp without the max subtracted overflows",
         {"batch": BATCH, "classes": CLASSES, "reduction": "mean", "labels": "int32 [batch]",
          "magnitudes": "+-30 to +-1000"}, _cross_entropy_large,
         written=spec(CE_LINES + [f"logits = {LARGE_LOGITS.tolist()}, labels = [2, 0, 1, 1]"],
                      inputs={"inputs/labels": "class ids in [0, classes)"},
                      outputs={"outputs/loss": "scalar, about 1000"},
                      notes=["log_softmax must subtract the row max: exp(1000) overflows"])),
    Spec("loss.binary_cross_entropy", "loss",
         "loss = mean over entries of softplus(z) - t z = -(t log sigmoid(z) + (1 - t) "
         "log(1 - sigmoid(z))); z = logits, t = targets in [0, 1] (targets get gradients)",
         {"shape": [BATCH, CLASSES], "reduction": "mean", "from_logits": True}, _bce,
         written=spec(BCE_LINES, outputs={"outputs/loss": "scalar"},
                      notes=["torch: F.binary_cross_entropy_with_logits(z, t) (mean)"])),
    Spec("loss.binary_cross_entropy.large_logits", "loss",
         "loss.binary_cross_entropy on logits of +-30 to +-1000: log(sigmoid(z)) is log(0) "
         "there; softplus(z) - t z is finite",
         {"shape": [BATCH, CLASSES], "reduction": "mean", "from_logits": True,
          "magnitudes": "+-30 to +-1000"}, _bce_large,
         written=spec(BCE_LINES, outputs={"outputs/loss": "scalar"},
                      notes=["softplus(z) = max(z, 0) + log1p(exp(-|z|)); never log of a "
                             "sigmoid"])),
    Spec("loss.cross_entropy_soft", "loss",
         "loss = mean_i -sum_c targets_ic log softmax(logits_i)_c (targets get gradients too)",
         {"batch": BATCH, "classes": CLASSES, "reduction": "mean"}, _cross_entropy_soft,
         written=spec(["log_p = log_softmax(logits, axis=-1)",
                       "loss = -mean_i sum_c targets[i, c] * log_p[i, c]",
                       "dlogits = (softmax(logits) * sum_c targets[i, c] - targets) / batch",
                       "dtargets = -log_p / batch   (targets are differentiated too)"],
                      inputs={"inputs/targets": "rows sum to 1"},
                      outputs={"outputs/loss": "scalar"})),
    Spec("loss.mean_squared_error", "loss", "loss = mean over all entries of (pred - target)^2",
         {"shape": [BATCH, CLASSES], "reduction": "mean"}, _mse,
         written=spec(["loss = mean((pred - target)^2) over all 12 entries",
                       "dpred = 2 (pred - target) / 12; dtarget = -dpred"],
                      outputs={"outputs/loss": "scalar"})),
    Spec("loss.l2_penalty", "loss", "loss = sum of squares of every params leaf (w and b)",
         {"leaves": ["w", "b"]}, _l2,
         written=spec(["loss = sum(w^2) + sum(b^2)", "dw = 2 w; db = 2 b"],
                      outputs={"outputs/loss": "scalar"})),
]
