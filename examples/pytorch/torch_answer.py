"""Answer every case family of a golden directory with PyTorch: read ``params/``, ``inputs/``
and ``cotangents/``, compute the outputs with ``torch_functions.py``, let autograd
take the vector-Jacobian product (``sum(cotangent * output).backward()``), read the probes'
values and gradients, and write ``RESULTS/<case>.npz`` with the golden keys.

    python examples/pytorch/torch_answer.py GOLDEN RESULTS [--cases GLOB]
    python -m oracle verify GOLDEN RESULTS

Each case is computed in its own dtype (float64, float32, float16; bfloat16 cases, stored as
float32, in bfloat16) and written in its storage dtype.
"""
import argparse
import fnmatch
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_functions as fn  # noqa: E402 (this directory, as a script or imported by tests)

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
                "bfloat16": torch.bfloat16}


def tree(arrays, prefix, dtype):
    """{"a/b": tensor} -> nested dicts {a: {b: tensor}}; float tensors require grad."""
    out = {}
    for key, value in arrays.items():
        if not key.startswith(prefix + "/"):
            continue
        parts = key[len(prefix) + 1:].split("/")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        t = torch.from_numpy(np.array(value))
        if t.is_floating_point():
            t = t.to(dtype).requires_grad_(True)
        node[parts[-1]] = t
    return out


def flat(prefix, nested):
    out = {}
    for k, v in nested.items():
        if isinstance(v, dict):
            out.update(flat(f"{prefix}/{k}", v))
        else:
            out[f"{prefix}/{k}"] = v
    return out


# ----------------------------------------------------------------------------- families

ACTIVATIONS = {
    "sigmoid": lambda x, c: fn.sigmoid(x), "relu": lambda x, c: fn.relu(x),
    "step": lambda x, c: fn.step(x), "sign": lambda x, c: fn.sign(x),
    "tanh": lambda x, c: torch.tanh(x), "softplus": lambda x, c: fn.softplus(x),
    "gelu": lambda x, c: fn.gelu(x, c.get("approximate", True)),
    "leaky_relu": lambda x, c: fn.leaky_relu(x, c["negative_slope"]),
    "softmax": lambda x, c: fn.softmax(x), "log_softmax": lambda x, c: fn.log_softmax(x),
    "abs": lambda x, c: fn.abs_(x),
}


def activation(entry, p, i, probes):
    return {"y": ACTIVATIONS[entry["name"].split(".")[1]](i["x"], entry["config"])}


def loss(entry, p, i, probes):
    name = entry["name"].split(".")[1]
    if name == "cross_entropy":
        return {"loss": fn.cross_entropy(i["logits"], i["labels"])}
    if name == "cross_entropy_soft":
        return {"loss": fn.cross_entropy_soft(i["logits"], i["targets"])}
    if name == "binary_cross_entropy":
        return {"loss": fn.binary_cross_entropy(i["logits"], i["targets"])}
    if name == "mean_squared_error":
        return {"loss": fn.mean_squared_error(i["pred"], i["target"])}
    return {"loss": sum((v ** 2).sum() for v in flat("", p).values())}  # l2_penalty


def layer(entry, p, i, probes):
    kind, c = entry["name"].split(".")[1], entry["config"]
    if kind == "dense":
        return {"y": fn.dense(i["x"], p["w"], p["b"])}
    if kind == "conv2d":
        return {"y": fn.conv2d(i["x"], p["w"], p["b"], c["strides"], c["padding"], c["dilation"],
                               c["feature_group_count"])}
    if kind in ("max_pool", "avg_pool"):
        pool = fn.max_pool if kind == "max_pool" else fn.avg_pool
        return {"y": pool(i["x"], c["window"], c["strides"], c["padding"])}
    if kind == "elman_rnn":
        return {"y": fn.elman(p, i["x"])}
    if kind == "lstm":
        return {"y": fn.lstm(p, i["x"], probes)}
    if kind == "gru":
        return {"y": fn.gru(p, i["x"], probes)}
    if kind == "attention":
        return {"y": fn.attention(p, i["x"], c["num_heads"], c["causal"], probes)}
    if kind == "scaled_dot_product_attention":
        d = i["q"].shape[-1]
        s = i["q"] @ i["k"].transpose(-1, -2) / d ** 0.5
        mask = fn.causal_mask(s.shape[-1], True, s.device)
        w = torch.softmax(s.masked_fill(~mask, torch.finfo(s.dtype).min), -1)
        return {"y": w.masked_fill(~mask, 0.0) @ i["v"]}
    if kind == "residual":
        branch = torch.tanh(fn.dense(i["x"], p["dense_0"]["w"], p["dense_0"]["b"]))
        skip = fn.dense(i["x"], p["projection"]["w"], p["projection"]["b"]) \
            if "projection" in p else i["x"]
        return {"y": skip + branch}
    if kind == "layer_norm":
        return {"y": fn.layer_norm(i["x"], p["scale"], p["bias"], c["eps"])}
    if kind == "embedding":
        return {"y": fn.embedding(p["table"], i["ids"])}
    raise KeyError(entry["name"])


def mlp_logits(p, x, layers, probes, activation_name="relu"):
    for name in layers:
        kind = name.rsplit("_", 1)[0]
        if kind == "dense":
            x = fn.dense(x, p[name]["w"], p[name]["b"])
        elif kind == "relu":
            x = fn.relu(x)
        elif kind == "tanh":
            x = torch.tanh(x)
        elif kind == "squeeze":
            x = x[..., 0]
        x = probes.keep(name, x)
    return x


def cnn_logits(entry, p, x, probes):
    c = entry["config"]
    for j in range(len(c["channels"])):
        x = probes.keep(f"conv2d_{j}", fn.conv2d(x, p[f"conv2d_{j}"]["w"], p[f"conv2d_{j}"]["b"],
                                                 c["strides"][j], c["padding"][j], [1, 1]))
        x = probes.keep(f"relu_{j}", fn.relu(x))
    x = probes.keep("flatten_0", fn.flatten_nhwc(x))
    return probes.keep("dense_0", fn.dense(x, p["dense_0"]["w"], p["dense_0"]["b"]))


def transformer_logits(entry, p, x, probes):
    c, b = entry["config"], p["block_0"]
    keep = probes.keep
    e = keep("dense_0", fn.dense(x, p["dense_0"]["w"], p["dense_0"]["b"]))
    pos = keep("positional_embedding_0", fn.positions(e, p["positional_embedding_0"]["table"]))
    n1 = keep("block_0/attention/norm", fn.layer_norm(pos, **b["attention"]["norm"]))
    att = fn.attention(b["attention"]["self_attention"], n1, c["num_heads"], c["causal"], probes,
                       "block_0/attention/self_attention/")
    a = keep("block_0/attention", pos + att)
    n2 = keep("block_0/mlp/norm", fn.layer_norm(a, **b["mlp"]["norm"]))
    d0 = keep("block_0/mlp/dense_0", fn.dense(n2, b["mlp"]["dense_0"]["w"],
                                              b["mlp"]["dense_0"]["b"]))
    g = keep("block_0/mlp/gelu", fn.gelu(d0, True))
    d1 = keep("block_0/mlp/dense_1", fn.dense(g, b["mlp"]["dense_1"]["w"],
                                              b["mlp"]["dense_1"]["b"]))
    y0 = keep("block_0", a + d1)
    n = keep("layer_norm_0", fn.layer_norm(y0, **p["layer_norm_0"]))
    pooled = keep("mean_pool_0", n.mean(1))
    return keep("dense_1", fn.dense(pooled, p["dense_1"]["w"], p["dense_1"]["b"]))


def model(entry, p, i, probes):
    kind, c = entry["name"].split(".")[1], entry["config"]
    x, y = i["x"], i["y"]
    if kind == "mlp":
        logits = mlp_logits(p, x, entry["probes"], probes)
        l2 = c["l2"] * sum((p[n]["w"] ** 2).sum() for n in entry["probes"]
                           if n.startswith("dense"))
        return {"loss": fn.cross_entropy(logits, y) + l2}
    if kind == "linear_regression":
        return {"loss": fn.mean_squared_error(mlp_logits(p, x, entry["probes"], probes), y)}
    if kind == "cnn":
        return {"loss": fn.cross_entropy(cnn_logits(entry, p, x, probes), y)}
    if kind == "rnn":
        hs = probes.keep("elman_rnn_0", fn.elman(p["elman_rnn_0"], x))
        last = probes.keep("last_state_0", hs[:, -1])
        logits = probes.keep("dense_0", fn.dense(last, p["dense_0"]["w"], p["dense_0"]["b"]))
        return {"loss": fn.cross_entropy(logits, y)}
    if kind == "transformer":
        return {"loss": fn.cross_entropy(transformer_logits(entry, p, x, probes), y)}
    raise KeyError(entry["name"])


def example(entry, p, i, probes):
    s = torch.sigmoid(p["w"] * i["x"] + p["b"])
    return {"loss": 0.5 * (i["y"] - s) ** 2 + entry["config"]["lambda"] * p["w"] ** 2}


def training(entry, p, i, probes):
    c = entry["config"]
    layers = ["dense_0", f"{c['model']['activation']}_0", "dense_1"]

    def loss_of(params, rows):
        logits = mlp_logits(params, i["x"][rows], layers, fn.Probes())
        return fn.cross_entropy(logits, i["y"][rows])

    extra, params = {}, {k: {n: t.detach().clone().requires_grad_(True) for n, t in v.items()}
                         for k, v in p.items()}
    for k in range(c["steps"]):
        value = loss_of(params, fn.sgd_minibatch_rows(k, c["batch_size"], c["steps"]))
        grads = torch.autograd.grad(value, [t for v in params.values() for t in v.values()])
        it = iter(grads)
        params = {key: {n: (t - c["learning_rate"] * next(it)).detach().requires_grad_(True)
                        for n, t in v.items()} for key, v in params.items()}
        extra[f"trajectory/{k}/loss"] = value.detach()
        extra.update({key: t.detach() for key, t in flat(f"trajectory/{k}/params",
                                                          params).items()})
    out = {"loss": loss_of(p, slice(None))}
    out["_extra"] = extra
    return out


def linalg(entry, p, i, probes):
    kind = entry["name"].split(".")[1]
    if kind == "solve":
        return {"x": torch.linalg.solve(i["a"], i["b"])}
    if kind == "cholesky":
        return {"l": fn.cholesky(i["a"])}
    if kind == "logdet":
        sign, logabsdet = fn.slogdet(i["a"])
        return {"logabsdet": logabsdet, "sign": sign}
    if kind == "svdvals":
        return {"s": fn.svdvals(i["a"])}
    if kind == "eigh":
        w, v = fn.eigh(i["a"])
        return {"eigenvalues": w, "overlaps": (v.mT @ i["c"]) ** 2}  # sign-invariant
    raise KeyError(entry["name"])


def fft(entry, p, i, probes):
    n = entry["config"]["n"]
    spectrum = fn.rfft(i["x"])
    y = fn.irfft(spectrum * torch.complex(p["w_re"], p["w_im"]), n)
    return {"y": y, "power": spectrum.abs() ** 2 / n}


def top_k(entry, p, i, probes):
    x = i["x"]
    top, idx = fn.top_k(x @ p["w_router"], entry["config"]["k"])
    gates = torch.softmax(top, dim=-1)
    chosen = p["w_experts"][idx]  # [tokens, k, features, out]
    return {"y": torch.einsum("tk,tf,tkfo->to", gates, x, chosen), "gates": gates}


FAMILIES = {"activation": activation, "loss": loss, "layer": layer, "model": model,
            "example": example, "training": training, "linalg": linalg, "fft": fft,
            "top_k": top_k}


def answer(entry, arrays) -> dict:
    """{key: numpy array} results for one case."""
    dtype = TORCH_DTYPES[entry["dtype"]]
    params, inputs = tree(arrays, "params", dtype), tree(arrays, "inputs", dtype)
    probes = fn.Probes()
    outputs = FAMILIES[entry["kind"]](entry, params, inputs, probes)
    extra = outputs.pop("_extra", {})
    total = sum((torch.from_numpy(np.array(arrays[f"cotangents/{k}"])).to(dtype) * v).sum()
                for k, v in outputs.items())
    if total.requires_grad:  # step and sign have no gradient path at all
        total.backward()
    out = {f"outputs/{k}": v.detach() for k, v in outputs.items()}
    for prefix, nested in (("grads/params", params), ("grads/inputs", inputs)):
        for key, t in flat(prefix, nested).items():
            if t.is_floating_point():
                out[key] = t.grad if t.grad is not None else torch.zeros_like(t)
    for name, (value, adjoint) in probes.arrays().items():
        out[f"probes/{name}/value"], out[f"probes/{name}/adjoint"] = value, adjoint
    out.update(extra)
    storage = np.dtype(entry.get("storage_dtype", entry["dtype"]))
    return {k: v.detach().to(torch.float64).numpy().astype(storage) for k, v in out.items()}


def run(golden, results, pattern=None, log=print):
    """Write RESULTS/<case>.npz for every (selected) case; return the names written."""
    manifest = json.loads((Path(golden) / "manifest.json").read_text())
    Path(results).mkdir(parents=True, exist_ok=True)
    done = []
    for entry in manifest["cases"]:
        if pattern and not fnmatch.fnmatchcase(entry["name"], pattern):
            continue
        with np.load(Path(golden) / entry["file"], allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
        np.savez(Path(results) / f"{entry['name']}.npz", **answer(entry, arrays))
        done.append(entry["name"])
    log(f"wrote {len(done)} results to {results}")
    return done


def main(argv=None):
    p = argparse.ArgumentParser(description="Answer funcnn's golden cases with PyTorch.")
    p.add_argument("golden", metavar="GOLDEN")
    p.add_argument("results", metavar="RESULTS")
    p.add_argument("--cases", metavar="GLOB", help="only cases whose name matches")
    args = p.parse_args(argv)
    run(args.golden, args.results, args.cases)
    print(f"now run: python -m oracle verify {args.golden} {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
