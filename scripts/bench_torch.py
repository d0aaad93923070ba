"""The benchmark's four reference models in PyTorch (eager), for scripts/bench.py.

Same shapes and the same step as the JAX side: forward, cross-entropy, backward, plain SGD.
Imported only when torch is installed.
"""
from __future__ import annotations

import torch
from torch import nn

LR = 1e-3


class Elman(nn.Module):
    def __init__(self, n_in, hidden, classes):
        super().__init__()
        self.wx = nn.Linear(n_in, hidden)
        self.wh = nn.Linear(hidden, hidden, bias=False)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):  # x: [batch, time, in]
        h = x.new_zeros(x.shape[0], self.wh.in_features)
        xs = self.wx(x)
        for t in range(x.shape[1]):
            h = torch.tanh(xs[:, t] + self.wh(h))
        return self.head(h)


class Block(nn.Module):
    def __init__(self, n_in, width, heads, classes, seq):
        super().__init__()
        self.proj = nn.Linear(n_in, width)
        self.pos = nn.Parameter(torch.zeros(seq, width))
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(),
                                 nn.Linear(4 * width, width))
        self.head = nn.Linear(width, classes)
        self.register_buffer("mask", torch.triu(torch.ones(seq, seq, dtype=torch.bool), 1))

    def forward(self, x):
        x = self.proj(x) + self.pos
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=self.mask, need_weights=False)[0]
        x = x + self.mlp(self.ln2(x))
        return self.head(self.ln3(x).mean(1))


def sync():
    """Wait for queued GPU work (a no-op on the CPU): timings must include it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def torch_steps(quick: bool):
    """name -> a zero-argument function running one training step (on the GPU if there is
    one, else the CPU)."""
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    s = 8 if quick else 1
    nets = {
        "mlp": (nn.Sequential(nn.Linear(784, 1024 // s), nn.ReLU(), nn.Linear(1024 // s, 1024 // s),
                              nn.ReLU(), nn.Linear(1024 // s, 10)), torch.randn(256 // s, 784)),
        "cnn": (nn.Sequential(nn.Conv2d(1, 32 // s, 3, padding=1), nn.ReLU(),
                              nn.Conv2d(32 // s, 64 // s, 3, stride=2, padding=1), nn.ReLU(),
                              nn.Flatten(), nn.Linear(64 // s * 14 * 14, 10)),
                torch.randn(64 // s, 1, 28, 28)),
        "rnn": (Elman(32, 256 // s, 10), torch.randn(32 // s, 64 // s, 32)),
        "transformer": (Block(256 // s, 256 // s, 4, 10, 128 // s),
                        torch.randn(16 // s, 128 // s, 256 // s)),
    }
    steps = {}
    for name, (net, x) in nets.items():
        net, x = net.to(device), x.to(device)
        y = torch.randint(0, 10, (x.shape[0],), device=device)
        opt = torch.optim.SGD(net.parameters(), lr=LR)

        def step(net=net, x=x, y=y, opt=opt):
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            return loss.detach()

        steps[name] = step
    return steps
