"""Random programs: hypothesis composes supported ops (unary, binary with broadcasting of
rank-0 and size-1 operands, reductions, reshape/transpose, broadcast, dot, concatenate/slice,
linear algebra, complex numbers, FFTs, top_k, igamma) with random node reuse (``b = a + a``
happens whenever an op draws the same node twice), and the engine's gradient must equal
``jax.grad``'s in float64.

The CI profile runs 200 derandomized examples (reproducible); the soak test runs 10,000 random
ones: ``pytest -m soak tests/backprop/test_programs.py`` (or FUNCNN_SOAK=1 for the CI test).
"""
from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from funcnn import backprop
from tests.backprop.sampling import assert_grads_close, run_jitted

FULL = (2, 3)
SHAPES = [(2, 3), (1, 3), (2, 1), (1, 1), ()]  # all broadcast against FULL without rank promotion


def full(x):
    return jnp.broadcast_to(x, FULL)


UNARY = {
    "sin": jnp.sin,
    "cos": jnp.cos,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "atan": jnp.arctan,
    "neg": jnp.negative,
    "square": jnp.square,
    "cube": lambda x: x ** 3,
    "abs": jnp.abs,
    "relu": lambda x: jnp.where(x > 0, x, 0.0),
    "jax_relu": jax.nn.relu,
    "softplus": jax.nn.softplus,
    "erf": jax.lax.erf,
    "log1p_sq": lambda x: jnp.log1p(x * x),
    "sqrt_1p_sq": lambda x: jnp.sqrt(1.0 + x * x),
    "gauss": lambda x: jnp.exp(-x * x),
    "expm1_tanh": lambda x: jnp.expm1(jnp.tanh(x)),
    "rsqrt_1p_sq": lambda x: jax.lax.rsqrt(1.0 + x * x),
    "sign_times": lambda x: jnp.sign(x) * x,
    "clip": lambda x: jnp.clip(x, -1.5, 1.5),
    "scale": lambda x: 0.5 * x + 1.0,
}

BINARY = {
    "add": jnp.add,
    "sub": jnp.subtract,
    "mul": jnp.multiply,
    "div": lambda x, y: x / (1.0 + y * y),
    "max": jnp.maximum,
    "min": jnp.minimum,
    "where": lambda x, y: jnp.where(x > y, x * y, x - y),
    "logaddexp": jnp.logaddexp,
    "pow": lambda x, y: (1.0 + x * x) ** jnp.tanh(y),
}

def on_axes(reduce):
    """A reduction along the matrix axes (keepdims); a rank-0 node passes through."""
    return lambda x: reduce(x) if jnp.ndim(x) else x


OTHER = {  # (arity, op); each returns a shape in SHAPES
    "sum0": (1, on_axes(lambda x: x.sum(axis=0, keepdims=True))),
    "sum1": (1, on_axes(lambda x: x.sum(axis=1, keepdims=True))),
    "mean_all": (1, jnp.mean),
    "max0": (1, on_axes(lambda x: x.max(axis=0, keepdims=True))),
    "min1": (1, on_axes(lambda x: x.min(axis=1, keepdims=True))),
    "prod1": (1, on_axes(lambda x: jnp.tanh(x).prod(axis=1, keepdims=True))),
    "logsumexp": (1, on_axes(lambda x: jax.nn.logsumexp(x, axis=1, keepdims=True))),
    "softmax": (1, lambda x: jax.nn.softmax(full(x), axis=1)),
    "cumsum": (1, lambda x: jnp.cumsum(full(x), axis=1)),
    "broadcast": (1, full),
    "reshape_T": (1, lambda x: full(x).reshape(3, 2).T),
    "rev": (1, lambda x: full(x)[::-1]),
    "dot": (3, lambda a, b, c: full(a) @ (full(b).T @ full(c)) / 3.0),
    "concat_slice": (2, lambda a, b: jnp.concatenate([full(a), full(b)], axis=1)[:, 2:5]),
    "stack_sum": (2, lambda a, b: jnp.stack([full(a), full(b)]).sum(axis=0)),
}


def spd(x, n):
    """An [n, n] symmetric positive definite matrix from a node: 2 I + B B^T / 3, B the
    node's [2, 3] broadcast (its transpose when n == 3). Eigenvalues >= 2: well conditioned."""
    b = full(x) if n == 2 else full(x).T
    return 2.0 * jnp.eye(n) + b @ b.T / 3.0


# Linear algebra, complex numbers, top_k and igamma (issue #12), each at points where it is
# smooth (positive definite matrices, positive arguments) or, where ties can occur (top_k of a
# broadcast node), following the same index as JAX.
LAPACK = {
    "solve": (2, lambda a, b: jnp.linalg.solve(spd(a, 2), full(b))),
    "cholesky": (2, lambda a, b: jnp.linalg.cholesky(spd(a, 2)) @ full(b)),
    "eigvalsh": (1, lambda a: jnp.linalg.eigvalsh(spd(a, 3) + jnp.diag(jnp.arange(3.0)))[None]),
    "svdvals": (1, lambda a: jnp.linalg.svd(full(a) + jnp.eye(2, 3), compute_uv=False)[:, None]),
}
COMPLEX_TOPK_SPECIAL = {
    "complex_mix": (2, lambda a, b: (jnp.exp(jax.lax.complex(full(a), full(b)) / 2)
                                     * jnp.conj(jax.lax.complex(full(b), 1.0))).real),
    "top1": (1, lambda x: jax.lax.top_k(full(x), 1)[0]),
    "igamma": (1, lambda x: jax.lax.igamma(1.5, 1.0 + x * x)),
}
# Every FFT type, 1-D along either axis and 2-D: complex-to-complex forward and inverse,
# real-to-complex and back (a circular convolution), and a power spectrum.
FFT = {
    "fft_real": (1, lambda x: jnp.fft.fft(full(x), axis=1).real),
    "ifft_imag": (2, lambda a, b: jnp.fft.ifft(jax.lax.complex(full(a), full(b)), axis=0).imag),
    "rfft_conv": (2, lambda a, b: jnp.fft.irfft(jnp.fft.rfft(full(a), axis=1)
                                                * jnp.fft.rfft(full(b), axis=1), n=3, axis=1)),
    "fft2_abs": (1, lambda x: jnp.abs(jnp.fft.fft2(full(x)) + 1.5)),
    "rfft2_power": (1, lambda x: (jnp.abs(jnp.fft.rfft2(full(x))) ** 2).sum(1, keepdims=True)),
    "irfft2": (2, lambda a, b: jnp.fft.irfft2(jax.lax.complex(full(a), full(b)), s=(2, 3))),
}
OTHER.update(COMPLEX_TOPK_SPECIAL)
# XLA:CPU (jaxlib 0.10 and 0.12) fails at run time ("fft_thunk.cc: RET_CHECK
# IsMonotonicWithDim0Major(input layout)") on a program where an FFT consumes the output of a
# LAPACK call (solve, svd, ...) — jax.grad's program as well as the engine's. So a program draws
# its vocabulary with either the LAPACK ops or the FFT ops, never both.
VOCABULARY = {"lapack": LAPACK, "fft": FFT}
EXTRA_OPS = {name: op for ops in VOCABULARY.values() for name, op in ops.items()}

OPS = ([(name, 1) for name in UNARY] + [(name, 2) for name in BINARY]
       + [(name, arity) for name, (arity, _) in OTHER.items()])
OPS_OF = {family: OPS + [(name, arity) for name, (arity, _) in ops.items()]
          for family, ops in VOCABULARY.items()}
ALL_OPS = OPS + [(name, arity) for name, (arity, _) in EXTRA_OPS.items()]


def apply(name, args):
    if name in UNARY:
        return UNARY[name](*args)
    if name in BINARY:
        return BINARY[name](*args)
    return {**OTHER, **EXTRA_OPS}[name][1](*args)


class Program(NamedTuple):
    shapes: tuple  # one per input
    ops: tuple  # (name, operand node indices)
    outputs: tuple  # (node index, weight): the loss is sum_k weight_k * sum(node_k)
    seed: int

    def __call__(self, *inputs):
        nodes = list(inputs)
        for name, operands in self.ops:
            nodes.append(apply(name, [nodes[i] for i in operands]))
        return sum(w * jnp.sum(nodes[i]) for i, w in self.outputs)

    def inputs(self):
        rng = np.random.default_rng(self.seed)
        return tuple(rng.standard_normal(s) for s in self.shapes)

    def __repr__(self):
        lines = [f"inputs {self.shapes} seed={self.seed}"]
        n = len(self.shapes)
        for k, (name, operands) in enumerate(self.ops):
            lines.append(f"  v{n + k} = {name}({', '.join(f'v{i}' for i in operands)})")
        lines.append("  loss = " + " + ".join(f"{w:g}*sum(v{i})" for i, w in self.outputs))
        return "\n".join(lines)


@st.composite
def programs(draw, max_ops=6):
    shapes = tuple(draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3)))
    vocabulary = OPS_OF[draw(st.sampled_from(sorted(OPS_OF)))]
    n_nodes = len(shapes)
    ops = []
    for _ in range(draw(st.integers(1, max_ops))):
        name, arity = draw(st.sampled_from(vocabulary))
        # operands may repeat (b = a + a) and reach back to any earlier node (reuse)
        operands = tuple(draw(st.integers(0, n_nodes - 1)) for _ in range(arity))
        ops.append((name, operands))
        n_nodes += 1
    extra = draw(st.lists(st.integers(0, n_nodes - 2), max_size=2)) if n_nodes > 1 else []
    weights = st.sampled_from([1.0, -0.5, 2.0, 0.3])
    outputs = tuple((i, draw(weights)) for i in [n_nodes - 1, *extra])
    return Program(shapes, tuple(ops), outputs, draw(st.integers(0, 2 ** 31 - 1)))


def check_program(program: Program):
    """Engine and jax.grad in one jitted function (one compilation per program: op-by-op
    dispatch of hundreds of fresh programs would compile every op again and again)."""
    inputs = program.inputs()
    argnums = tuple(range(len(inputs)))

    def both(*xs):
        return (jax.value_and_grad(program, argnums=argnums)(*xs),
                backprop.value_and_grad(program, argnums=argnums)(*xs))

    (value, want), (got_value, got) = run_jitted(both, *inputs)
    assume(np.isfinite(value) and all(np.isfinite(g).all() for g in want))
    scale = max([1.0] + [float(np.abs(g).max()) for g in want if np.size(g)])
    assert_grads_close(got_value, value, rtol=1e-9, atol=1e-9 * max(1.0, abs(float(value))),
                       what=f"{program!r}\nvalue ")
    assert_grads_close(got, want, rtol=1e-8, atol=1e-10 * scale, what=f"{program!r}\ngrads ")


SOAK = os.environ.get("FUNCNN_SOAK") == "1"
CI = settings(max_examples=10_000 if SOAK else 200, deadline=None, derandomize=not SOAK,
              database=None, suppress_health_check=[HealthCheck.too_slow])


@CI
@given(programs())
def test_random_programs(program):
    check_program(program)


@pytest.mark.soak
@settings(max_examples=10_000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(programs(max_ops=14))
def test_random_programs_soak(program):
    check_program(program)


@pytest.mark.parametrize("name, arity", ALL_OPS, ids=[name for name, _ in ALL_OPS])
def test_each_op(name, arity):
    """Each op of the vocabulary on every operand shape (the generator cannot hold an op that
    fails to trace), once per shape as first operand, with the others rotating."""
    n = len(SHAPES)
    ops = tuple((name, tuple((i + k) % n for k in range(arity))) for i in range(n))
    outputs = tuple((n + i, w) for i, w in enumerate([1.0, -0.5, 2.0, 0.3, 1.5]))
    program = Program(tuple(SHAPES), ops, outputs, seed=3)
    inputs = program.inputs()
    argnums = tuple(range(n))
    got, want = run_jitted(lambda *xs: (backprop.grad(program, argnums=argnums)(*xs),
                                        jax.grad(program, argnums=argnums)(*xs)), *inputs)
    assert_grads_close(got, want, rtol=1e-9, atol=1e-11, what=f"{program!r}\n")
