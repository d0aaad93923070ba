"""Recurrent layers: Elman RNN, LSTM and GRU, each run over time with ``lax.scan``.

A cell is a pure function ``cell(params, carry, x_t) -> (carry, h_t)`` with
``x_t: [batch, in_features]`` and ``h_t: [batch, hidden]``. The sequence layers take
``x: [batch, time, in_features]``, start from a zero carry and return every hidden state
``[batch, time, hidden]``; follow them with ``last_state()`` to keep h_T only. Scanning the
cell over time is the unrolled graph of the notes; its reverse is backpropagation through time.

Example:
    >>> net = serial(lstm(16), last_state(), dense(10))
    >>> out_shape, params = net.init(jax.random.key(0), (-1, -1, 8))   # (-1, 10)
"""
import jax
import jax.numpy as jnp
from jax import lax

from funcnn.activations import sigmoid, tanh
from funcnn.initializers import glorot_uniform, zeros
from funcnn.layers.base import Layer, LayerError

LSTM_GATES = ("input", "forget", "candidate", "output")
GRU_GATES = ("update", "reset", "candidate")


def _affine(params, x, h):
    """x @ w_x + h @ w_h + b for one gate. x: [batch, in], h: [batch, hidden]."""
    y = x @ params["w_x"] + h @ params["w_h"]
    return y + jnp.broadcast_to(params["b"], y.shape)


def elman_cell(params, h, x_t):
    """h_t = tanh(x_t @ w_xh + h_{t-1} @ w_hh + b); returns (h_t, h_t).

    Params: ``w_xh: [in, hidden]``, ``w_hh: [hidden, hidden]``, ``b: [hidden]``.
    Example: ``h, _ = elman_cell(params, jnp.zeros((batch, hidden)), x[:, 0])``.
    """
    pre = x_t @ params["w_xh"] + h @ params["w_hh"]
    h = tanh(pre + jnp.broadcast_to(params["b"], pre.shape))
    return h, h


def lstm_cell(params, carry, x_t):
    """One LSTM step; carry = (h, c), each [batch, hidden]; returns ((h, c), h).

    i = sigmoid(a_input), f = sigmoid(a_forget), g = tanh(a_candidate), o = sigmoid(a_output)
    with a_gate = x_t @ w_x + h @ w_h + b of that gate; c' = f * c + i * g; h' = o * tanh(c').
    Params: ``{gate: {"w_x": [in, hidden], "w_h": [hidden, hidden], "b": [hidden]}}`` for
    gate in LSTM_GATES.
    Example: ``(h, c), _ = lstm_cell(params, (h, c), x[:, t])``.
    """
    h, c = carry
    i = sigmoid(_affine(params["input"], x_t, h))
    f = sigmoid(_affine(params["forget"], x_t, h))
    g = tanh(_affine(params["candidate"], x_t, h))
    o = sigmoid(_affine(params["output"], x_t, h))
    c = f * c + i * g
    h = o * tanh(c)
    return (h, c), h


def gru_cell(params, h, x_t):
    """One GRU step (Cho et al. 2014); h: [batch, hidden]; returns (h', h').

    z = sigmoid(a_update), r = sigmoid(a_reset),
    n = tanh(x_t @ w_x + (r * h) @ w_h + b) with the candidate's weights,
    h' = (1 - z) * n + z * h. Params as ``lstm_cell``'s, for gate in GRU_GATES.
    Example: ``h, _ = gru_cell(params, h, x[:, t])``.
    """
    z = sigmoid(_affine(params["update"], x_t, h))
    r = sigmoid(_affine(params["reset"], x_t, h))
    n = tanh(_affine(params["candidate"], x_t, r * h))
    h = (1 - z) * n + z * h
    return h, h


def _sequence(kind, cell, hidden, init_params, zero_carry, w_x_of):
    """A layer scanning ``cell`` over x: [batch, time, in] from ``zero_carry(batch, dtype)``;
    ``w_x_of(params)`` is an input weight ``[in, hidden]``, read to check x."""

    def init(key, in_shape):
        if len(in_shape) != 3:
            raise LayerError(kind, f"expected x [batch, time, features], got shape "
                                   f"{tuple(in_shape)}")
        return tuple(in_shape[:2]) + (hidden,), init_params(key, in_shape[-1])

    def apply(params, x, **kwargs):
        in_features = w_x_of(params).shape[0]
        if x.ndim != 3 or x.shape[-1] != in_features:
            raise LayerError(kind, f"expected x [batch, time, {in_features}], got shape "
                                   f"{x.shape}")
        xs = jnp.swapaxes(x, 0, 1)  # [time, batch, in]
        dtype = jnp.result_type(x, *jax.tree_util.tree_leaves(params))
        _, hs = lax.scan(lambda carry, x_t: cell(params, carry, x_t),
                         zero_carry(x.shape[0], dtype), xs)  # hs: [time, batch, hidden]
        return jnp.swapaxes(hs, 0, 1)

    return Layer(init, apply, kind)


def _gates(gates, hidden, w_init, b_init):
    def init_params(key, in_features):
        params = {}
        for gate, gate_key in zip(gates, jax.random.split(key, len(gates)), strict=True):
            kx, kh, kb = jax.random.split(gate_key, 3)
            params[gate] = {"w_x": w_init(kx, (in_features, hidden)),
                            "w_h": w_init(kh, (hidden, hidden)),
                            "b": b_init(kb, (hidden,))}
        return params

    return init_params


def elman_rnn(hidden, w_init=glorot_uniform, b_init=zeros):
    """Elman RNN over time: ``x: [batch, time, in] -> [batch, time, hidden]``, h_0 = 0.

    Params: ``w_xh: [in, hidden]``, ``w_hh: [hidden, hidden]``, ``b: [hidden]``
    (see ``elman_cell``). Example: ``serial(elman_rnn(32), last_state(), dense(10))``.
    """

    def init_params(key, in_features):
        kx, kh, kb = jax.random.split(key, 3)
        return {"w_xh": w_init(kx, (in_features, hidden)),
                "w_hh": w_init(kh, (hidden, hidden)),
                "b": b_init(kb, (hidden,))}

    return _sequence("elman_rnn", elman_cell, hidden, init_params,
                     lambda batch, dtype: jnp.zeros((batch, hidden), dtype),
                     lambda params: params["w_xh"])


def lstm(hidden, w_init=glorot_uniform, b_init=zeros):
    """LSTM over time: ``x: [batch, time, in] -> [batch, time, hidden]``, (h_0, c_0) = 0.

    Params: see ``lstm_cell``. Example: ``lstm(16)``.
    """
    return _sequence("lstm", lstm_cell, hidden, _gates(LSTM_GATES, hidden, w_init, b_init),
                     lambda batch, dtype: (jnp.zeros((batch, hidden), dtype),) * 2,
                     lambda params: params["input"]["w_x"])


def gru(hidden, w_init=glorot_uniform, b_init=zeros):
    """GRU over time: ``x: [batch, time, in] -> [batch, time, hidden]``, h_0 = 0.

    Params: see ``gru_cell``. Example: ``gru(16)``.
    """
    return _sequence("gru", gru_cell, hidden, _gates(GRU_GATES, hidden, w_init, b_init),
                     lambda batch, dtype: jnp.zeros((batch, hidden), dtype),
                     lambda params: params["update"]["w_x"])


def last_state():
    """Keep the last time step: ``x: [batch, time, hidden] -> [batch, hidden]``; params {}.

    Example: ``serial(gru(16), last_state())``.
    """

    def init(key, in_shape):
        return (in_shape[0],) + tuple(in_shape[2:]), {}

    def apply(params, x, **kwargs):
        return x[:, -1]

    return Layer(init, apply, "last_state")
