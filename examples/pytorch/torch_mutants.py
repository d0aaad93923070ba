"""A catalog of realistic PyTorch bugs, each planted into ``torch_functions.py`` one at a time:
verify must catch every one on the case named, and name the layer at fault (for a case with
probes) or fail the key named (for a layer case, whose layer is the case).

    python examples/pytorch/torch_mutants.py GOLDEN        # plants each, verifies, prints a table

Each entry: ``Mutant(replace={function name: bad function}, case, layer, key)``.
"""
import math
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_functions as fn  # noqa: E402 (this directory, as a script or imported by tests)


class Mutant(NamedTuple):
    replace: dict  # {name in torch_functions.py: the buggy version}
    case: str  # a case it must fail
    layer: str | None  # the layer verify must name (cases with probes), else None
    key: str  # a key that must fail


def _naive_softmax(z):
    return torch.exp(z) / torch.exp(z).sum(-1, keepdim=True)


def _naive_log_softmax(z):
    return z - torch.log(torch.exp(z).sum(-1, keepdim=True))


def _bce_log_sigmoid(z, t):
    s = torch.sigmoid(z)
    return -(t * torch.log(s) + (1 - t) * torch.log(1 - s)).mean()


def _dense_float32(x, w, b):
    return (x.float() @ w.float()).to(x.dtype) + b


def _conv_symmetric(x, w, b, strides, padding, dilation, groups=1):
    kh, kw = w.shape[:2]
    y = F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), stride=tuple(strides),
                 padding=(kh // 2, kw // 2), dilation=tuple(dilation), groups=groups)
    return y.permute(0, 2, 3, 1) + b


def _conv_flipped(x, w, b, strides, padding, dilation, groups=1):
    return _CONV(x, w.flip(0, 1), b, strides, padding, dilation, groups)


def _avg_pool_counting_padding(x, window, strides, padding):
    (top, bottom), (left, right) = padding
    x_nchw = F.pad(x.permute(0, 3, 1, 2), (left, right, top, bottom))
    return F.avg_pool2d(x_nchw, tuple(window), tuple(strides)).permute(0, 2, 3, 1)


def _swapped_gates(pre):
    act = _GATES(pre)
    act["input"], act["forget"] = act["forget"], act["input"]
    return act


def _torch_gru_candidate(x_t, r, rh, h, p):
    return x_t @ p["w_x"] + r * (h @ p["w_h"]) + p["b"]


def _layer_norm_unbiased(x, scale, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=True)
    return (x - mean) / torch.sqrt(var + eps) * scale + bias


class _OverwriteEmbedding(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table, ids):
        ctx.save_for_backward(ids)
        ctx.shape = table.shape
        return table[ids]

    @staticmethod
    def backward(ctx, g):
        (ids,) = ctx.saved_tensors
        grad = g.new_zeros(ctx.shape)
        grad[ids.reshape(-1)] = g.reshape(-1, ctx.shape[1])  # overwrite, not accumulate
        return grad, None


class _HandDense(torch.autograd.Function):
    """A hand-written dense backward with one planted bug (``kind``)."""

    @staticmethod
    def forward(ctx, x, w, b, kind):
        ctx.save_for_backward(x, w)
        ctx.kind = kind
        return x @ w + b

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        dw = x.T @ g
        if ctx.kind == "transposed" and dw.shape[0] == dw.shape[1]:
            dw = dw.T
        db = g.mean(0) if ctx.kind == "mean_bias" else g.sum(0)
        return g @ w.T, dw, db, None


def _logdet_through_det(a):
    """torch.logdet: nan where det < 0."""
    return torch.sign(torch.det(a)), torch.logdet(a)


def _eigenvectors_as_rows(a):
    w, v = _EIGH(a)
    return w, v.mT


_CONV, _GATES, _EIGH = fn.conv2d, fn.lstm_gates, fn.eigh

MUTANTS = {
    "softmax_without_max_subtraction": Mutant(
        {"softmax": _naive_softmax}, "activation.softmax.large_logits.f64", None, "outputs/y"),
    "log_softmax_without_max_subtraction": Mutant(
        {"log_softmax": _naive_log_softmax}, "loss.cross_entropy.large_logits.f64", None,
        "outputs/loss"),
    "bce_through_log_sigmoid": Mutant(
        {"binary_cross_entropy": _bce_log_sigmoid}, "loss.binary_cross_entropy.large_logits.f64",
        None, "outputs/loss"),
    "abs_with_torch_default_at_0": Mutant(
        {"abs_": torch.abs}, "activation.abs.kink.f64", None, "grads/inputs/x"),
    "leaky_relu_with_torch_default_at_0": Mutant(
        {"leaky_relu": lambda z, a: F.leaky_relu(z, a)}, "activation.leaky_relu.kink.f64", None,
        "grads/inputs/x"),
    "relu_derivative_1_at_0": Mutant(
        {"relu": lambda z: torch.where(z >= 0, z, torch.zeros_like(z))}, "model.mlp.f64",
        "relu_0", "probes/dense_0/adjoint"),
    "cross_entropy_summed_not_averaged": Mutant(
        {"cross_entropy": lambda lg, y: -torch.log_softmax(lg, -1).gather(
            1, y[:, None].long()).sum()}, "model.mlp.f64", "loss", "outputs/loss"),
    "float32_accumulation_in_a_float64_case": Mutant(
        {"dense": _dense_float32}, "model.mlp.f64", "dense_0", "probes/dense_0/value"),
    "transposed_weight_gradient": Mutant(
        {"dense": lambda x, w, b: _HandDense.apply(x, w, b, "transposed")}, "model.mlp.f64",
        "dense_1", "grads/params/dense_1/w"),
    "bias_gradient_averaged": Mutant(
        {"dense": lambda x, w, b: _HandDense.apply(x, w, b, "mean_bias")}, "model.mlp.f64",
        "dense_0", "grads/params/dense_0/b"),
    "symmetric_same_padding": Mutant(
        {"conv2d": _conv_symmetric}, "model.cnn.f64", "conv2d_1", "probes/conv2d_1/value"),
    "kernel_flipped": Mutant(
        {"conv2d": _conv_flipped}, "model.cnn.f64", "conv2d_0", "probes/conv2d_0/value"),
    "flatten_in_nchw_order": Mutant(
        {"flatten_nhwc": lambda x: x.permute(0, 3, 1, 2).reshape(x.shape[0], -1)},
        "model.cnn.f64", "flatten_0", "probes/flatten_0/value"),
    "avg_pool_counts_padding": Mutant(
        {"avg_pool": _avg_pool_counting_padding}, "layer.avg_pool.window3_stride2_same_even.f64",
        None, "outputs/y"),
    "detached_recurrence": Mutant(
        {"recurrent": lambda h: h.detach()}, "layer.lstm.f64",
        "input_pre, forget_pre, candidate_pre, output_pre", "probes/hidden/adjoint"),
    "lstm_input_and_forget_gates_swapped": Mutant(
        {"lstm_gates": _swapped_gates}, "layer.lstm.f64", "input", "probes/input/value"),
    "gru_reset_after_the_product": Mutant(
        {"candidate_pre": _torch_gru_candidate}, "layer.gru.f64", "candidate_pre",
        "probes/candidate_pre/value"),
    "bptt_detached_in_the_rnn": Mutant(
        {"recurrent": lambda h: h.detach()}, "model.rnn.f64", "elman_rnn_0",
        "grads/params/elman_rnn_0/w_hh"),
    "attention_scaled_by_the_width": Mutant(
        {"attention_scale": lambda q, heads: math.sqrt(q.shape[-1] * heads)},
        "layer.attention.causal.f64", "scores", "probes/scores/value"),
    "causal_mask_forgotten": Mutant(
        {"causal_mask": lambda t, causal, device: torch.ones(t, t, dtype=torch.bool,
                                                             device=device)},
        "layer.attention.causal.f64", "weights", "probes/weights/value"),
    "heads_split_without_transpose": Mutant(
        {"split_heads": lambda y, h: y.reshape(y.shape[0], h, y.shape[1], y.shape[2] // h)},
        "layer.attention.full.f64", "q", "probes/q/value"),
    "layer_norm_unbiased_variance": Mutant(
        {"layer_norm": _layer_norm_unbiased}, "model.transformer.f64", "block_0/attention/norm",
        "probes/block_0/attention/norm/value"),
    "exact_gelu_for_the_tanh_one": Mutant(
        {"gelu": lambda z, approximate=True: F.gelu(z)}, "model.transformer.f64",
        "block_0/mlp/gelu", "probes/block_0/mlp/gelu/value"),
    "positions_not_added": Mutant(
        {"positions": lambda e, table: e}, "model.transformer.f64", "positional_embedding_0",
        "probes/positional_embedding_0/value"),
    "embedding_gradient_overwrites": Mutant(
        {"embedding": lambda table, ids: _OverwriteEmbedding.apply(table, ids.long())},
        "layer.embedding.repeated.f64", None, "grads/params/table"),
    "minibatches_in_reverse_order": Mutant(
        {"sgd_minibatch_rows": lambda k, n, steps: slice((steps - 1 - k) * n,
                                                         (steps - k) * n)},
        "training.mlp_sgd.f64", None, "trajectory/0/loss"),
    "logdet_of_a_negative_determinant": Mutant(
        {"slogdet": _logdet_through_det}, "linalg.logdet.f64", None, "outputs/logabsdet"),
    "cholesky_upper_factor": Mutant(
        {"cholesky": lambda a: torch.linalg.cholesky(fn.symmetrized(a), upper=True)},
        "linalg.cholesky.f64", None, "outputs/l"),
    "eigenvectors_read_as_rows": Mutant(
        {"eigh": _eigenvectors_as_rows}, "linalg.eigh.f64", None, "outputs/overlaps"),
    "singular_values_ascending": Mutant(
        {"svdvals": lambda a: torch.linalg.svdvals(a).flip(-1)}, "linalg.svdvals.f32", None,
        "outputs/s"),
    "rfft_with_orthonormal_scaling": Mutant(
        {"rfft": lambda x: torch.fft.rfft(x, dim=-1, norm="ortho")}, "fft.rfft_filter.f64",
        None, "outputs/power"),
}


def planted(name):
    """Context manager: torch_functions.py with mutant ``name`` planted."""
    import contextlib

    @contextlib.contextmanager
    def plant():
        saved = {k: getattr(fn, k) for k in MUTANTS[name].replace}
        for k, bad in MUTANTS[name].replace.items():
            setattr(fn, k, bad)
        try:
            yield MUTANTS[name]
        finally:
            for k, good in saved.items():
                setattr(fn, k, good)
    return plant()


def main(argv=None):
    """Plant each mutant, answer its case, verify; print what verify said."""
    import json

    import numpy as np
    import torch_answer as answer

    from oracle.verify import verify
    golden = Path((argv or sys.argv[1:])[0])
    caught = 0
    for name in MUTANTS:
        with planted(name) as m, tempfile.TemporaryDirectory() as results, \
                np.errstate(all="ignore"):
            answer.run(golden, results, m.case, log=lambda line: None)
            case = verify(golden, results, m.case).cases[0]
        failed = {k.key for k in case.keys if k.status == "FAIL"}
        ok = case.status == "FAIL" and m.key in failed and case.layer_at_fault == m.layer
        caught += ok
        print(json.dumps({"mutant": name, "case": m.case, "caught": ok,
                          "layer_at_fault": case.layer_at_fault}))
    print(f"{caught} of {len(MUTANTS)} mutants caught with the right layer named")
    return 0 if caught == len(MUTANTS) else 1


if __name__ == "__main__":
    sys.exit(main())
