"""Planted wrong gradients for ``check_grads``, each next to its correct twin.

How a mutant reaches ``check_grads``: a ``jax.custom_vjp`` function whose forward is right and
whose backward has the bug. ``jax.vjp`` runs the planted backward, and so does funcnn's
engine (it calls a custom_vjp's own ``bwd``, as JAX does); finite differences only ever call
the forward, so they see the truth. A mutant is therefore caught as ``engine vs fd`` and
``jax vs fd`` failing. (A bug inside the engine alone, with jax right, is planted by patching
one rule of the engine's table: ``test_a_wrong_rule_inside_the_engine_is_caught``.)

The relu mutant has no finite-difference signal: at 0 there is no derivative to compare. It
is caught by the declared convention (``check_grads(..., kink_grads={0.0: 0.0})``).

Each entry: ``name -> ((mutant, twin), args, argnums)`` where ``twin`` is the same custom_vjp with
the correct backward, which must pass (the harness itself has no bug).
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


def _dense(w, b, x):
    return x @ w + jnp.broadcast_to(b, (x.shape[0], b.shape[0]))


def _dense_bwd(transpose_w=False, mean_b=False):
    def bwd(args, g):
        w, b, x = args
        dw = x.T @ g
        return (dw.T if transpose_w else dw, g.mean(0) if mean_b else g.sum(0), g @ w.T)
    return bwd


def _sigmoid_bwd(wrong):
    def bwd(args, g):
        s = jax.nn.sigmoid(args[0])
        return (g * s * ((1 + s) if wrong else (1 - s)),)
    return bwd


def _softmax_bwd(wrong):
    def bwd(args, g):
        y = jax.nn.softmax(args[0], axis=-1)
        ct = y * (g - jnp.sum(g * y, axis=-1, keepdims=True))
        return (-ct if wrong else ct,)
    return bwd


def _conv(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _conv_bwd(flip):
    def bwd(args, g):
        x, w = args
        # the planted bug: the backward of a true convolution (kernel flipped)
        fn = (lambda x, w: _conv(x, w[::-1, ::-1])) if flip else _conv
        return jax.vjp(fn, x, w)[1](g)
    return bwd


def _rnn(wx, wh, x):
    """Elman RNN, every state: x [batch, time, in] -> [batch, time, hidden]."""
    h = jnp.zeros((x.shape[0], wh.shape[0]), x.dtype)
    hs = []
    for t in range(x.shape[1]):
        h = jnp.tanh(x[:, t] @ wx + h @ wh)
        hs.append(h)
    return jnp.stack(hs, axis=1)


def _rnn_bwd(short):
    def bwd(args, g):
        wx, wh, x = args
        hs = _rnn(wx, wh, x)
        time = x.shape[1]
        dwx, dwh = jnp.zeros_like(wx), jnp.zeros_like(wh)
        dx = [jnp.zeros_like(x[:, 0])] * time
        carry = jnp.zeros_like(hs[:, 0])
        stop = 0 if short else -1  # the planted bug: BPTT stops one step short of t = 0
        for t in range(time - 1, stop, -1):
            da = (g[:, t] + carry) * (1 - hs[:, t] ** 2)
            prev = hs[:, t - 1] if t > 0 else jnp.zeros_like(hs[:, 0])
            dwx, dwh = dwx + x[:, t].T @ da, dwh + prev.T @ da
            dx[t] = da @ wx.T
            carry = da @ wh.T
        return dwx, dwh, jnp.stack(dx, axis=1)
    return bwd


def _relu_bwd(wrong):
    def bwd(args, g):
        x = args[0]
        return (g * ((x >= 0) if wrong else (x > 0)).astype(g.dtype),)
    return bwd


def _pair(forward, make_bwd):
    return planted(forward, make_bwd(True)), planted(forward, make_bwd(False))


def _n(*shape):
    return RNG.standard_normal(shape)


KINKED = np.array([[-1.0, 0.0, 0.5], [0.0, 2.0, -0.3]])

_dense_t = planted(_dense, _dense_bwd(transpose_w=True)), planted(_dense, _dense_bwd())
_dense_m = planted(_dense, _dense_bwd(mean_b=True)), planted(_dense, _dense_bwd())
_sig = _pair(lambda z: jax.nn.sigmoid(z), _sigmoid_bwd)
_soft = _pair(lambda z: jax.nn.softmax(z, axis=-1), _softmax_bwd)
_cv = _pair(_conv, _conv_bwd)
_rn = _pair(_rnn, _rnn_bwd)
_re = _pair(lambda z: jnp.where(z > 0, z, 0), _relu_bwd)

MUTANTS = {
    "transposed_weight_gradient": (_dense_t, (_n(4, 4), _n(4), _n(3, 4)), (0, 1, 2)),
    "bias_gradient_averaged": (_dense_m, (_n(4, 4), _n(4), _n(3, 4)), (0, 1, 2)),
    "sigmoid_derivative_s_times_1_plus_s": (_sig, (_n(3, 4),), 0),
    "convolution_flips_its_kernel": (_cv, (_n(1, 4, 4, 2), _n(3, 3, 2, 2) / 3), (0, 1)),
    "softmax_gradient_wrong_sign": (_soft, (2 * _n(3, 4),), 0),
    "bptt_one_step_short": (_rn, (_n(2, 3) / 2, _n(3, 3) / 2, _n(2, 4, 2)), (0, 1, 2)),
    "relu_derivative_1_at_0": (_re, (KINKED,), 0),
}
