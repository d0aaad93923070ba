"""The functions of the golden cases in plain PyTorch (autograd does every backward pass), as a
user who read only ``docs/oracle-format.md`` would write them.

Layouts: the golden files are NHWC / HWIO and ``x @ w`` with ``w: [in, out]``; PyTorch's
convolutions want NCHW / OIHW, so ``conv2d`` converts on the way in and out, written out:
``x.permute(0, 3, 1, 2)`` (NHWC -> NCHW), ``w.permute(3, 2, 0, 1)`` (HWIO -> OIHW),
``y.permute(0, 2, 3, 1)`` (NCHW -> NHWC). Explicit, possibly asymmetric padding goes through
``F.pad(x, (left, right, top, bottom))``.

Where PyTorch's default derivative at a kink differs from the manifest's ``conventions``
(abs at 0, leaky_relu at 0), the function is written so that autograd takes the declared
branch. ``probes`` (a ``Probes``) records the intermediate values the cases name.

Every function is looked up through this module (``torch_functions.softmax``), so that the mutation
catalog (``torch_mutants.py``) can replace one at a time.
"""
import math

import torch
import torch.nn.functional as F


class Probes:
    """Named intermediate tensors whose gradients autograd keeps (``retain_grad``).

    ``keep(name, t)`` records t and returns it (use the returned tensor downstream);
    ``step(name, t)`` appends one time step of a recurrent probe (stacked on axis 1).
    """

    def __init__(self):
        self.tensors, self.steps = {}, {}

    def keep(self, name, tensor):
        if tensor.requires_grad:
            tensor.retain_grad()
        self.tensors[name] = tensor
        return tensor

    def step(self, name, tensor):
        if tensor.requires_grad:
            tensor.retain_grad()
        self.steps.setdefault(name, []).append(tensor)
        return tensor

    def arrays(self):
        """{name: (value, adjoint)} as tensors (adjoint 0 where nothing reads the value)."""
        def grad(t):
            return t.grad if t.grad is not None else torch.zeros_like(t)
        out = {n: (t.detach(), grad(t)) for n, t in self.tensors.items()}
        for n, ts in self.steps.items():
            out[n] = (torch.stack([t.detach() for t in ts], 1), torch.stack([grad(t) for t in ts],
                                                                            1))
        return out


# ----------------------------------------------------------------------------- activations

def sigmoid(z):
    return torch.sigmoid(z)  # stable; its backward is s (1 - s)


def relu(z):
    return torch.where(z > 0, z, torch.zeros_like(z))  # relu'(0) = 0 (relu_grad_at_0)


def abs_(z):
    return torch.where(z >= 0, z, -z)  # abs'(0) = +1 (abs_grad_at_0); torch.abs gives 0


def leaky_relu(z, slope):
    return torch.where(z >= 0, z, slope * z)  # derivative 1 at 0; F.leaky_relu gives slope


def step(z):
    return (z > 0).to(z.dtype)  # no gradient: 0 everywhere


def sign(z):
    return torch.sign(z).detach()  # sign's derivative is 0 everywhere


def gelu(z, approximate=True):
    return F.gelu(z, approximate="tanh" if approximate else "none")


def softplus(z):
    return torch.logaddexp(z, torch.zeros_like(z))


def softmax(z):
    return torch.softmax(z, dim=-1)  # subtracts the max


def log_softmax(z):
    return torch.log_softmax(z, dim=-1)


# ----------------------------------------------------------------------------- losses

def cross_entropy(logits, labels):
    return -log_softmax(logits).gather(1, labels[:, None].long())[:, 0].mean()


def cross_entropy_soft(logits, targets):
    return -(targets * log_softmax(logits)).sum(-1).mean()


def binary_cross_entropy(logits, targets):
    return (softplus(logits) - targets * logits).mean()


def mean_squared_error(pred, target):
    return ((pred - target) ** 2).mean()


# ----------------------------------------------------------------------------- layers

def dense(x, w, b):
    return x @ w + b


def conv2d(x, w, b, strides, padding, dilation, groups=1):
    """NHWC x, HWIO w, explicit padding [[top, bottom], [left, right]] -> NHWC y."""
    (top, bottom), (left, right) = padding
    x_nchw = F.pad(x.permute(0, 3, 1, 2), (left, right, top, bottom))
    w_oihw = w.permute(3, 2, 0, 1)
    y = F.conv2d(x_nchw, w_oihw, stride=tuple(strides), dilation=tuple(dilation),
                 groups=groups)
    return y.permute(0, 2, 3, 1) + b


def max_pool(x, window, strides, padding):
    (top, bottom), (left, right) = padding
    x_nchw = F.pad(x.permute(0, 3, 1, 2), (left, right, top, bottom), value=-math.inf)
    return F.max_pool2d(x_nchw, tuple(window), tuple(strides)).permute(0, 2, 3, 1)


def avg_pool(x, window, strides, padding):
    """Mean over the window's cells inside x (padded cells not counted)."""
    (top, bottom), (left, right) = padding
    pad = (left, right, top, bottom)
    x_nchw = F.pad(x.permute(0, 3, 1, 2), pad)
    ones = F.pad(torch.ones_like(x.permute(0, 3, 1, 2)), pad)
    total = F.avg_pool2d(x_nchw, tuple(window), tuple(strides)) * (window[0] * window[1])
    count = F.avg_pool2d(ones, tuple(window), tuple(strides)) * (window[0] * window[1])
    return (total / count).permute(0, 2, 3, 1)


def layer_norm(x, scale, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)  # biased
    return (x - mean) / torch.sqrt(var + eps) * scale + bias


def embedding(table, ids):
    return table[ids.long()]


def elman(p, x, probes=None):
    h = x.new_zeros(x.shape[0], p["w_hh"].shape[0])
    hs = []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ p["w_xh"] + recurrent(h) @ p["w_hh"] + p["b"])
        hs.append(h)
    return torch.stack(hs, 1)


def recurrent(h):
    """The hidden state as the next step reads it (a mutant detaches it)."""
    return h


LSTM_GATES = ("input", "forget", "candidate", "output")


def lstm_gates(pre):
    """{gate: activation} from {gate: pre-activation}."""
    return {g: torch.tanh(a) if g == "candidate" else torch.sigmoid(a) for g, a in pre.items()}


def lstm(p, x, probes):
    batch, time, _ = x.shape
    hidden = p["input"]["b"].shape[0]
    h = c = x.new_zeros(batch, hidden)
    for t in range(time):
        h_in = recurrent(h)
        pre = {g: probes.step(f"{g}_pre", x[:, t] @ p[g]["w_x"] + h_in @ p[g]["w_h"] + p[g]["b"])
               for g in LSTM_GATES}
        act = {g: probes.step(g, a) for g, a in lstm_gates(pre).items()}
        c = probes.step("cell", act["forget"] * c + act["input"] * act["candidate"])
        h = probes.step("hidden", act["output"] * torch.tanh(c))
    return torch.stack(probes.steps["hidden"], 1)


def gru(p, x, probes):
    batch, time, _ = x.shape
    h = x.new_zeros(batch, p["update"]["b"].shape[0])
    for t in range(time):
        h_in = recurrent(h)
        aff = {g: x[:, t] @ p[g]["w_x"] + h_in @ p[g]["w_h"] + p[g]["b"]
               for g in ("update", "reset")}
        z_pre = probes.step("update_pre", aff["update"])
        r_pre = probes.step("reset_pre", aff["reset"])
        z = probes.step("update", torch.sigmoid(z_pre))
        r = probes.step("reset", torch.sigmoid(r_pre))
        rh = probes.step("reset_hidden", r * h_in)
        n_pre = probes.step("candidate_pre", candidate_pre(x[:, t], r, rh, h_in, p["candidate"]))
        n = probes.step("candidate", torch.tanh(n_pre))
        h = probes.step("hidden", (1 - z) * n + z * h_in)
    return torch.stack(probes.steps["hidden"], 1)


def candidate_pre(x_t, r, rh, h, p):
    """Cho et al. 2014: r multiplies h before the product with w_h (torch's nn.GRU applies it
    after: a different function)."""
    return x_t @ p["w_x"] + rh @ p["w_h"] + p["b"]


def split_heads(y, heads):
    batch, time, width = y.shape
    return y.reshape(batch, time, heads, width // heads).transpose(1, 2)


def attention_scale(q, heads):
    return math.sqrt(q.shape[-1])  # the head size


def causal_mask(time, causal, device):
    keep = torch.ones(time, time, dtype=torch.bool, device=device)
    return torch.tril(keep) if causal else keep


def attention(p, x, heads, causal, probes, prefix=""):
    """Multi-head self-attention with probes q, k, v, scores, weights, heads (and output)."""
    batch, time, width = x.shape
    q, k, v = (probes.keep(prefix + n, split_heads(x @ p["w" + n] + p["b" + n], heads))
               for n in "qkv")
    scores = probes.keep(prefix + "scores", q @ k.transpose(-1, -2) / attention_scale(q, heads))
    mask = causal_mask(time, causal, x.device)
    masked = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = probes.keep(prefix + "weights", torch.softmax(masked, -1).masked_fill(~mask, 0.0))
    o = probes.keep(prefix + "heads", weights @ v)
    merged = o.transpose(1, 2).reshape(batch, time, width)
    out = merged @ p["wo"] + p["bo"]
    return probes.keep(prefix.rstrip("/") if prefix else "output", out)


def flatten_nhwc(x):
    return x.reshape(x.shape[0], -1)  # NHWC order, as the golden files


def positions(e, table):
    return e + table[: e.shape[1]]


def sgd_minibatch_rows(k, batch_size, steps):
    return slice(k * batch_size, (k + 1) * batch_size)


# ----------------------------------------------------------------------------- linalg, fft, top_k

def symmetrized(a):
    """The cases' symmetric input convention: f(A) = g((A + A^T) / 2)."""
    return (a + a.mT) / 2


def cholesky(a):
    return torch.linalg.cholesky(symmetrized(a))


def slogdet(a):
    """(sign, log|det a|): torch.logdet would be nan for det < 0."""
    return torch.linalg.slogdet(a)


def svdvals(a):
    return torch.linalg.svdvals(a)


def eigh(a):
    """(ascending eigenvalues, eigenvectors as columns) of the symmetrized input."""
    return torch.linalg.eigh(symmetrized(a))


def rfft(x):
    return torch.fft.rfft(x, dim=-1)  # norm="backward": no scaling forward


def irfft(z, n):
    return torch.fft.irfft(z, n=n, dim=-1)


def top_k(logits, k):
    return torch.topk(logits, k, dim=-1, sorted=True)
