#!/usr/bin/env python
"""An implementation from scratch in NumPy, checked against funcnn's golden files.

This is the template to copy when you want to check your own forward and backward passes
(PyTorch, C++, Rust, a compiler): read each case's ``params/``, ``inputs/`` and
``cotangents/`` from ``GOLDEN/<case>.npz``, compute the outputs and the vector-Jacobian
product by hand, write them to ``RESULTS/<case>.npz`` under the same keys, then run

    python -m oracle verify GOLDEN RESULTS --cases 'activation.*' ...

which says, per key, whether you agree and, for a model, which layer first goes wrong.

Implemented here, forward and backward by hand: every activation (sigmoid, relu, step, sign,
tanh, softplus, gelu, leaky_relu, softmax, log_softmax, abs; also on large-magnitude inputs),
every loss (cross-entropy with integer labels and with soft targets, binary cross-entropy from
logits, mean squared error, L2 penalty), the dense layer, the
mlp model with its per-layer probes, linear regression, the notes' sigmoid neuron, the SGD
training trajectory, and (in ``numpy_linalg.py``, next to this file) the linear-algebra cases
(solve, Cholesky, log-determinant, singular values, eigh), the FFT filter and the top_k
router. Everything else is skipped, and the script says so.

Usage:
    python -m oracle export golden/
    python scripts/verify_numpy_reference.py golden/ results/ [--cases GLOB] [--verify]

Each function computes in the dtype of its inputs: float32 cases are computed in float32,
float16 cases (``python -m oracle export GOLDEN --dtypes f16 bf16``) in float16, bfloat16
cases in float32 (their storage dtype: NumPy has no bfloat16).
"""
import argparse
import fnmatch
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np


def _load_sibling(name):
    """The module ``name``.py next to this file (without putting scripts/ on sys.path)."""
    path = Path(__file__).resolve().with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


linalg = _load_sibling("numpy_linalg")  # linear algebra, FFT and top_k, by hand

# ----------------------------------------------------------------------------- activations
# At the points where a derivative does not exist, the golden files follow the conventions
# the manifest declares (its "conventions" block, e.g. relu_grad_at_0); ``run`` loads them
# here, and each derivative below uses them at its kink.
CONVENTIONS = {"relu_grad_at_0": 0.0, "abs_grad_at_0": 1.0, "leaky_relu_grad_at_0": 1.0}


def at_zero(z, elsewhere, key):
    """``elsewhere`` where z != 0, the declared convention ``key`` where z == 0."""
    return np.where(z == 0, np.asarray(CONVENTIONS[key], z.dtype), elsewhere).astype(z.dtype)


def sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_grad(s):
    """d sigmoid / dz in terms of the output s."""
    return s * (1 - s)


def relu(z):
    return np.where(z > 0, z, 0).astype(z.dtype)


def relu_grad(z):
    return at_zero(z, (z > 0).astype(z.dtype), "relu_grad_at_0")


def tanh_grad(y):
    return 1 - y * y


def gelu_tanh(z):
    c = np.asarray(math.sqrt(2 / math.pi), z.dtype)
    return 0.5 * z * (1 + np.tanh(c * (z + 0.044715 * z**3)))


def gelu_tanh_grad(z):
    c = np.asarray(math.sqrt(2 / math.pi), z.dtype)
    t = np.tanh(c * (z + 0.044715 * z**3))
    return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * c * (1 + 3 * 0.044715 * z * z)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu_exact(z):
    return (0.5 * z * (1 + _erf(z / math.sqrt(2)))).astype(z.dtype)


def gelu_exact_grad(z):
    z64 = z.astype(np.float64)
    cdf = 0.5 * (1 + _erf(z64 / math.sqrt(2)))
    return (cdf + z64 * np.exp(-0.5 * z64 * z64) / math.sqrt(2 * math.pi)).astype(z.dtype)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_vjp(y, g):
    """Cotangent of z for y = softmax(z) and output cotangent g."""
    return y * (g - np.sum(g * y, axis=-1, keepdims=True))


def log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def log_softmax_vjp(y, g):
    return g - np.exp(y) * np.sum(g, axis=-1, keepdims=True)


def activation_vjp(name, z, g, config):
    """(y, dz): the activation's output and the cotangent of its input."""
    zero = np.zeros_like(z)
    if name == "sigmoid":
        y = sigmoid(z)
        return y, g * sigmoid_grad(y)
    if name == "relu":
        return relu(z), g * relu_grad(z)
    if name == "step":
        return (z > 0).astype(z.dtype), zero
    if name == "sign":
        return np.sign(z), zero
    if name == "tanh":
        y = np.tanh(z)
        return y, g * tanh_grad(y)
    if name == "softplus":
        return np.logaddexp(z, 0).astype(z.dtype), g * sigmoid(z)
    if name == "gelu":
        if config.get("approximate", True):
            return gelu_tanh(z), g * gelu_tanh_grad(z)
        return gelu_exact(z), g * gelu_exact_grad(z)
    if name == "leaky_relu":
        a = np.asarray(config["negative_slope"], z.dtype)
        slope = at_zero(z, np.where(z > 0, 1, a), "leaky_relu_grad_at_0")
        return np.where(z >= 0, z, a * z), g * slope
    if name == "softmax":
        y = softmax(z)
        return y, softmax_vjp(y, g)
    if name == "log_softmax":
        y = log_softmax(z)
        return y, log_softmax_vjp(y, g)
    if name == "abs":
        return np.abs(z), g * at_zero(z, np.sign(z), "abs_grad_at_0")
    raise KeyError(name)


# ----------------------------------------------------------------------------- dense, losses

def dense_forward(x, w, b):
    """y = x @ w + b; x [batch, in], w [in, out], b [out]."""
    return x @ w + b


def dense_backward(x, w, g):
    """(dx, dw, db) for the output cotangent g [batch, out]."""
    return g @ w.T, x.T @ g, g.sum(axis=0)


def cross_entropy(logits, labels):
    """(mean -log softmax(logits)[label], d loss / d logits)."""
    n = logits.shape[0]
    log_p = log_softmax(logits)
    loss = -log_p[np.arange(n), labels].mean()
    dlogits = np.exp(log_p)
    dlogits[np.arange(n), labels] -= 1
    return loss, dlogits / n


def cross_entropy_soft(logits, targets):
    """(loss, d logits, d targets) for mean -sum targets * log softmax(logits)."""
    n = logits.shape[0]
    log_p = log_softmax(logits)
    loss = -(targets * log_p).sum(axis=-1).mean()
    dlogits = (np.exp(log_p) * targets.sum(axis=-1, keepdims=True) - targets) / n
    return loss, dlogits, -log_p / n


def binary_cross_entropy(logits, targets):
    """(loss, d logits, d targets) for mean softplus(z) - t z over every entry: the stable
    form of -(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))), finite for any z."""
    n = logits.size
    loss = np.mean(np.logaddexp(logits, 0) - targets * logits)
    return loss, (sigmoid(logits) - targets) / n, -logits / n


def mean_squared_error(pred, target):
    """(mean (pred - target)^2, d pred, d target)."""
    d = pred - target
    grad = 2 * d / d.size
    return np.mean(d * d), grad, -grad


# ----------------------------------------------------------------------------- sequential model

def model_forward(layers, params, x):
    """Outputs of every layer (``layers`` = names like dense_0, relu_0, squeeze_0)."""
    values = []
    for name in layers:
        kind = name.rsplit("_", 1)[0]
        if kind == "dense":
            x = dense_forward(x, params[f"{name}/w"], params[f"{name}/b"])
        elif kind == "squeeze":
            x = x[..., 0]
        else:
            x, _ = activation_vjp(kind, x, x, {})
        values.append(x)
    return values


def model_backward(layers, params, x, values, g):
    """(param grads, input grad, adjoints): g is dL/d(last output); walk the layers back."""
    grads, adjoints = {}, {}
    inputs = [x] + values[:-1]
    for name, inp in zip(reversed(layers), reversed(inputs), strict=True):
        adjoints[name] = g
        kind = name.rsplit("_", 1)[0]
        if kind == "dense":
            g, grads[f"{name}/w"], grads[f"{name}/b"] = dense_backward(
                inp, params[f"{name}/w"], g)
        elif kind == "squeeze":
            g = g[..., None]
        else:
            _, g = activation_vjp(kind, inp, g, {})
    return grads, g, adjoints


def model_loss(layers, params, x, y, config):
    """(loss, param grads, dx, values, adjoints) for cross-entropy (+ l2) or squared error."""
    values = model_forward(layers, params, x)
    if config.get("loss") == "mean squared error":
        loss, g, dy = mean_squared_error(values[-1], y)
    else:
        loss, g = cross_entropy(values[-1], y)
        dy = None
    grads, dx, adjoints = model_backward(layers, params, x, values, g)
    l2 = config.get("l2", 0.0)
    if l2:
        for name in layers:
            if name.startswith("dense"):
                w = params[f"{name}/w"]
                loss = loss + l2 * np.sum(w * w)
                grads[f"{name}/w"] = grads[f"{name}/w"] + 2 * l2 * w
    return loss, grads, dx, dy, values, adjoints


# ----------------------------------------------------------------------------- case handlers
# Each takes the manifest entry and the golden arrays, and returns {key: array} results.

def sub(arrays, prefix):
    """{rest: array} for every key 'prefix/rest'."""
    return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


def run_activation(entry, a):
    name = entry["name"].split(".")[1]
    y, dx = activation_vjp(name, a["inputs/x"], a["cotangents/y"], entry["config"])
    return {"outputs/y": y, "grads/inputs/x": dx}


def run_loss(entry, a):
    name = entry["name"].split(".")[1]
    if name == "cross_entropy":
        loss, dlogits = cross_entropy(a["inputs/logits"], a["inputs/labels"])
        return {"outputs/loss": loss, "grads/inputs/logits": dlogits * a["cotangents/loss"]}
    if name == "cross_entropy_soft":
        loss, dlogits, dtargets = cross_entropy_soft(a["inputs/logits"], a["inputs/targets"])
        ct = a["cotangents/loss"]
        return {"outputs/loss": loss, "grads/inputs/logits": dlogits * ct,
                "grads/inputs/targets": dtargets * ct}
    if name == "binary_cross_entropy":
        loss, dlogits, dtargets = binary_cross_entropy(a["inputs/logits"], a["inputs/targets"])
        ct = a["cotangents/loss"]
        return {"outputs/loss": loss, "grads/inputs/logits": dlogits * ct,
                "grads/inputs/targets": dtargets * ct}
    if name == "mean_squared_error":
        loss, dpred, dtarget = mean_squared_error(a["inputs/pred"], a["inputs/target"])
        ct = a["cotangents/loss"]
        return {"outputs/loss": loss, "grads/inputs/pred": dpred * ct,
                "grads/inputs/target": dtarget * ct}
    if name == "l2_penalty":
        params = sub(a, "params")
        ct = a["cotangents/loss"]
        out = {"outputs/loss": sum(np.sum(p * p) for p in params.values())}
        out.update({f"grads/params/{k}": 2 * p * ct for k, p in params.items()})
        return out
    raise KeyError(name)


def run_dense(entry, a):
    x, w, b, g = a["inputs/x"], a["params/w"], a["params/b"], a["cotangents/y"]
    dx, dw, db = dense_backward(x, w, g)
    return {"outputs/y": dense_forward(x, w, b), "grads/inputs/x": dx, "grads/params/w": dw,
            "grads/params/b": db}


def run_model(entry, a):
    layers, config = entry["probes"], entry["config"]
    params = sub(a, "params")
    loss, grads, dx, dy, values, adjoints = model_loss(layers, params, a["inputs/x"],
                                                       a["inputs/y"], config)
    out = {"outputs/loss": loss, "grads/inputs/x": dx}
    if dy is not None:
        out["grads/inputs/y"] = dy
    out.update({f"grads/params/{k}": v for k, v in grads.items()})
    for name, value in zip(layers, values, strict=True):
        out[f"probes/{name}/value"] = value
        out[f"probes/{name}/adjoint"] = adjoints[name]
    return out


def run_notes(entry, a):
    lam = entry["config"]["lambda"]
    w, b, x, y = a["params/w"], a["params/b"], a["inputs/x"], a["inputs/y"]
    s = sigmoid(w * x + b)
    loss = 0.5 * (y - s) ** 2 + lam * w * w
    dz = (s - y) * sigmoid_grad(s)  # dL/d(w x + b)
    return {"outputs/loss": loss, "grads/params/w": dz * x + 2 * lam * w,
            "grads/params/b": dz, "grads/inputs/x": dz * w, "grads/inputs/y": y - s}


def run_training(entry, a):
    config = entry["config"]
    model = config["model"]
    layers = []
    for i in range(len(model["hidden"])):
        layers += [f"dense_{i}", f"{model['activation']}_{i}"]
    layers.append(f"dense_{len(model['hidden'])}")
    params = sub(a, "params")
    x, y = a["inputs/x"], a["inputs/y"]
    loss, grads, dx, _, _, _ = model_loss(layers, params, x, y, model)
    out = {"outputs/loss": loss, "grads/inputs/x": dx}
    out.update({f"grads/params/{k}": v for k, v in grads.items()})
    n, lr = config["batch_size"], np.asarray(config["learning_rate"], x.dtype)
    for k in range(config["steps"]):
        rows = slice(k * n, (k + 1) * n)
        loss, grads, *_ = model_loss(layers, params, x[rows], y[rows], model)
        params = {key: p - lr * grads[key] for key, p in params.items()}
        out[f"trajectory/{k}/loss"] = loss
        out.update({f"trajectory/{k}/params/{key}": p for key, p in params.items()})
    return out


HANDLERS = [
    ("activation.*", run_activation),
    ("loss.*", run_loss),
    ("layer.dense.*", run_dense),
    ("model.mlp.*", run_model),
    ("model.linear_regression.*", run_model),
    ("example.notes_sigmoid_neuron.*", run_notes),
    ("training.mlp_sgd.*", run_training),
    *linalg.HANDLERS,
]


def handler_for(name):
    for pattern, handler in HANDLERS:
        if fnmatch.fnmatchcase(name, pattern):
            return handler
    return None


def run(golden, results, pattern=None, log=print):
    """Write RESULTS/<case>.npz for every case we implement; return (done, skipped) names."""
    manifest = json.loads((Path(golden) / "manifest.json").read_text())
    CONVENTIONS.update(manifest["conventions"])
    Path(results).mkdir(parents=True, exist_ok=True)
    done, skipped = [], []
    for entry in manifest["cases"]:
        name = entry["name"]
        if pattern and not fnmatch.fnmatchcase(name, pattern):
            continue
        handler = handler_for(name)
        if handler is None:
            skipped.append(name)
            continue
        with np.load(Path(golden) / entry["file"], allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
        # bfloat16 cases are stored (and answered) as float32 holding bfloat16 values; this
        # template computes them in float32 (a bfloat16 kernel would round more)
        dtype = np.dtype(entry.get("storage_dtype", entry["dtype"]))
        out = handler(entry, arrays)
        out = {k: np.asarray(v).astype(dtype) for k, v in out.items()}
        np.savez(Path(results) / f"{name}.npz", **out)
        done.append(name)
    log(f"wrote {len(done)} results to {results}")
    if skipped:
        log(f"skipped {len(skipped)} cases this implementation does not cover: "
            + ", ".join(skipped))
    return done, skipped


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("golden", metavar="GOLDEN", help="directory with manifest.json")
    p.add_argument("results", metavar="RESULTS", help="directory to write <case>.npz to")
    p.add_argument("--cases", metavar="GLOB", help="only cases whose name matches")
    p.add_argument("--verify", action="store_true",
                   help="then run `python -m oracle verify` on the cases written")
    args = p.parse_args(argv)
    done, _ = run(args.golden, args.results, args.cases)
    patterns = [pattern for pattern, _ in HANDLERS
                if any(fnmatch.fnmatchcase(n, pattern) for n in done)]
    command = ["verify", args.golden, args.results]
    for pattern in patterns:
        command += ["--cases", pattern]
    if not args.verify:
        print("now run: python -m oracle " + " ".join(
            f"'{c}'" if "*" in c else c for c in command))
        return 0
    from oracle.cli import main as oracle_main
    if args.cases:  # exactly the cases written
        command = ["verify", args.golden, args.results]
        for name in done:
            command += ["--cases", name]
    return oracle_main(command)


if __name__ == "__main__":
    sys.exit(main())
