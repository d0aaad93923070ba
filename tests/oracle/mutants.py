"""Planted wrong gradients for ``check_grads``, each next to its correct twin.

How a mutant reaches ``check_grads``: the way an engineer's own backward pass does, as
``check_grads(f, *args, argnums=..., vjp=my_vjp)`` with ``my_vjp(*args, g) -> cotangents of
args[argnums]``. ``f`` is the (right) forward; the planted bug is in the hand-written backward,
written in NumPy as a from-scratch implementation would be. The engine, ``jax.vjp`` and finite
differences all see the true derivative of ``f``, so a mutant is caught as ``yours vs engine``,
``yours vs jax`` and ``yours vs fd`` failing, and nothing else.

The relu mutant has no finite-difference signal and no engine or jax one either: at 0 there is
no derivative, so any convention is the author's to choose. It is caught by the declared
convention (``check_grads(..., kink_grads={0.0: 0.0})``) as ``yours vs declared``.

Each entry of ``MUTANTS``: ``name -> (f, (mutant_vjp, twin_vjp), args, argnums)``; the twin is
the correct backward, which must pass (the harness itself has no bug).

``planted`` builds the other kind of planted bug: a ``jax.custom_vjp`` with a wrong ``bwd``.
``jax.vjp`` and funcnn's engine both run that bwd, as the program declares, so it shows as
``engine vs fd`` and ``jax vs fd`` failing while ``engine vs jax`` passes.
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

RNG = np.random.default_rng(7)


def planted(forward, backward):
    """A custom_vjp function: ``forward(*args)``; ``backward(args, g) -> cotangents``."""
    f = jax.custom_vjp(forward)
    f.defvjp(lambda *args: (forward(*args), args), backward)
    return f


# --- the forwards (JAX) -------------------------------------------------------------------

def dense(w, b, x):
    return x @ w + jnp.broadcast_to(b, (x.shape[0], b.shape[0]))


def sigmoid(z):
    return jax.nn.sigmoid(z)


def softmax(z):
    return jax.nn.softmax(z, axis=-1)


def conv(x, w):
    """Cross-correlation, stride 1, SAME padding, NHWC / HWIO (as every framework's conv)."""
    return lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def rnn(wx, wh, x):
    """Elman RNN, every state: x [batch, time, in] -> [batch, time, hidden]."""
    h = jnp.zeros((x.shape[0], wh.shape[0]), x.dtype)
    hs = []
    for t in range(x.shape[1]):
        h = jnp.tanh(x[:, t] @ wx + h @ wh)
        hs.append(h)
    return jnp.stack(hs, axis=1)


def relu(z):
    return jnp.where(z > 0, z, 0)


# --- the hand-written backwards (NumPy), each with its planted bug behind a flag ----------

def dense_vjp(transpose_w=False, mean_b=False):
    def vjp(w, b, x, g):
        dw = x.T @ g
        return (dw.T if transpose_w else dw, g.mean(0) if mean_b else g.sum(0), g @ w.T)
    return vjp


def sigmoid_vjp(wrong):
    def vjp(z, g):
        s = 1 / (1 + np.exp(-z))
        return g * s * ((1 + s) if wrong else (1 - s))
    return vjp


def softmax_vjp(wrong):
    def vjp(z, g):
        e = np.exp(z - z.max(-1, keepdims=True))
        y = e / e.sum(-1, keepdims=True)
        ct = y * (g - np.sum(g * y, axis=-1, keepdims=True))
        return -ct if wrong else ct
    return vjp


def conv_vjp(flip):
    def vjp(x, w, g):
        kh, kw = w.shape[:2]
        height, width = x.shape[1:3]
        # the planted bug: the backward of a true convolution (kernel flipped)
        k = w[::-1, ::-1] if flip else w
        xp = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
        dxp, dk = np.zeros_like(xp), np.zeros_like(w)
        for a in range(kh):
            for b in range(kw):
                dk[a, b] = np.einsum("nhwi,nhwo->io", xp[:, a:a + height, b:b + width], g)
                dxp[:, a:a + height, b:b + width] += np.einsum("nhwo,io->nhwi", g, k[a, b])
        dx = dxp[:, kh // 2:kh // 2 + height, kw // 2:kw // 2 + width]
        return dx, (dk[::-1, ::-1] if flip else dk)
    return vjp


def rnn_vjp(short):
    def vjp(wx, wh, x, g):
        batch, time = x.shape[:2]
        h, hs = np.zeros((batch, wh.shape[0])), []
        for t in range(time):
            h = np.tanh(x[:, t] @ wx + h @ wh)
            hs.append(h)
        dwx, dwh, dx = np.zeros_like(wx), np.zeros_like(wh), np.zeros_like(x)
        carry = np.zeros_like(hs[0])
        stop = 0 if short else -1  # the planted bug: BPTT stops one step short of t = 0
        for t in range(time - 1, stop, -1):
            da = (g[:, t] + carry) * (1 - hs[t] ** 2)
            prev = hs[t - 1] if t > 0 else np.zeros_like(hs[0])
            dwx, dwh = dwx + x[:, t].T @ da, dwh + prev.T @ da
            dx[:, t] = da @ wx.T
            carry = da @ wh.T
        return dwx, dwh, dx
    return vjp


def relu_vjp(wrong):
    def vjp(z, g):
        return g * ((z >= 0) if wrong else (z > 0))
    return vjp


def _n(*shape):
    return RNG.standard_normal(shape)


KINKED = np.array([[-1.0, 0.0, 0.5], [0.0, 2.0, -0.3]])

MUTANTS = {
    "transposed_weight_gradient": (dense, (dense_vjp(transpose_w=True), dense_vjp()),
                                   (_n(4, 4), _n(4), _n(3, 4)), (0, 1, 2)),
    "bias_gradient_averaged": (dense, (dense_vjp(mean_b=True), dense_vjp()),
                               (_n(4, 4), _n(4), _n(3, 4)), (0, 1, 2)),
    "sigmoid_derivative_s_times_1_plus_s": (sigmoid, (sigmoid_vjp(True), sigmoid_vjp(False)),
                                            (_n(3, 4),), 0),
    "convolution_flips_its_kernel": (conv, (conv_vjp(True), conv_vjp(False)),
                                     (_n(1, 4, 4, 2), _n(3, 3, 2, 2) / 3), (0, 1)),
    "softmax_gradient_wrong_sign": (softmax, (softmax_vjp(True), softmax_vjp(False)),
                                    (2 * _n(3, 4),), 0),
    "bptt_one_step_short": (rnn, (rnn_vjp(True), rnn_vjp(False)),
                            (_n(2, 3) / 2, _n(3, 3) / 2, _n(2, 4, 2)), (0, 1, 2)),
    "relu_derivative_1_at_0": (relu, (relu_vjp(True), relu_vjp(False)), (KINKED,), 0),
}


def _sigmoid_bwd(args, g):  # sigmoid' written as s (1 + s), inside a custom_vjp
    s = jax.nn.sigmoid(args[0])
    return (g * s * (1 + s),)


PLANTED_CUSTOM_VJP = (planted(sigmoid, _sigmoid_bwd), (_n(3, 4),))
