"""Elman RNN, LSTM and GRU against their equations unrolled in a NumPy loop over time."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.layers import (
    LayerError,
    elman_rnn,
    gru,
    gru_cell,
    last_state,
    lstm,
    lstm_cell,
    serial,
)
from tests.helpers import assert_trees_close

RNG = np.random.default_rng(0)


def _sig(z):
    return 1 / (1 + np.exp(-z))


def _randomized(params):
    return jax.tree_util.tree_map(lambda a: RNG.normal(scale=0.7, size=a.shape), params)


def _gate(p, x, h):
    return x @ p["w_x"] + h @ p["w_h"] + p["b"]


def np_elman_step(p, carry, x):
    h = np.tanh(x @ p["w_xh"] + carry @ p["w_hh"] + p["b"])
    return h, h


def np_lstm_step(p, carry, x):
    h, c = carry
    i, f = _sig(_gate(p["input"], x, h)), _sig(_gate(p["forget"], x, h))
    g, o = np.tanh(_gate(p["candidate"], x, h)), _sig(_gate(p["output"], x, h))
    c = f * c + i * g
    h = o * np.tanh(c)
    return (h, c), h


def np_gru_step(p, h, x):
    z, r = _sig(_gate(p["update"], x, h)), _sig(_gate(p["reset"], x, h))
    n = np.tanh(x @ p["candidate"]["w_x"] + (r * h) @ p["candidate"]["w_h"] + p["candidate"]["b"])
    h = (1 - z) * n + z * h
    return h, h


def np_run(step, p, carry, x):
    """Unrolled Python loop over time: x [batch, time, in] -> [batch, time, hidden]."""
    outputs = []
    for t in range(x.shape[1]):
        carry, h = step(p, carry, x[:, t])
        outputs.append(h)
    return np.stack(outputs, axis=1)


CASES = [
    ("elman", elman_rnn, np_elman_step, lambda b, n: np.zeros((b, n)),
     {"w_xh": (3, 4), "w_hh": (4, 4), "b": (4,)}),
    ("lstm", lstm, np_lstm_step, lambda b, n: (np.zeros((b, n)),) * 2,
     {g: {"w_x": (3, 4), "w_h": (4, 4), "b": (4,)}
      for g in ("input", "forget", "candidate", "output")}),
    ("gru", gru, np_gru_step, lambda b, n: np.zeros((b, n)),
     {g: {"w_x": (3, 4), "w_h": (4, 4), "b": (4,)} for g in ("update", "reset", "candidate")}),
]


@pytest.mark.parametrize("name, make, np_step, zero, shapes", CASES, ids=[c[0] for c in CASES])
def test_sequence_layer_matches_unrolled_loop(name, make, np_step, zero, shapes):
    net = serial(make(4), names=[name])
    out_shape, params = net.init(jax.random.key(0), (-1, -1, 3))
    assert out_shape == (-1, -1, 4)
    assert jax.tree_util.tree_map(jnp.shape, params[name]) == shapes
    params = {name: _randomized(params[name])}
    x = RNG.normal(size=(2, 5, 3))
    expected = np_run(np_step, params[name], zero(2, 4), x)
    y = jax.jit(net.apply)(params, x)
    assert_trees_close(y, expected, rtol=1e-10)
    with pytest.raises(LayerError, match=rf"^{name}: expected x \[batch, time, 3\], "
                                         r"got shape \(2, 3\)$"):
        net.apply(params, jnp.ones((2, 3)))


@pytest.mark.parametrize("cell, np_step, carry", [
    (lstm_cell, np_lstm_step, (RNG.normal(size=(2, 4)), RNG.normal(size=(2, 4)))),
    (gru_cell, np_gru_step, RNG.normal(size=(2, 4))),
])
def test_cell_from_nonzero_carry(cell, np_step, carry):
    gates = ("input", "forget", "candidate", "output") if cell is lstm_cell else (
        "update", "reset", "candidate")
    params = {g: {"w_x": RNG.normal(size=(3, 4)), "w_h": RNG.normal(size=(4, 4)),
                  "b": RNG.normal(size=(4,))} for g in gates}
    x = RNG.normal(size=(2, 3))
    assert_trees_close(jax.jit(cell)(params, carry, x),
                       np_step(params, carry, x))


def test_last_state_and_gradient_through_time():
    net = serial(elman_rnn(3), last_state())
    out_shape, params = net.init(jax.random.key(0), (-1, -1, 2))
    assert out_shape == (-1, 3)
    x = RNG.normal(size=(2, 4, 2))
    all_states = np_run(np_elman_step, jax.tree_util.tree_map(np.asarray, params["elman_rnn_0"]),
                        np.zeros((2, 3)), x)
    assert_trees_close(jax.jit(net.apply)(params, x), all_states[:, -1])
    # d h_T / d x_0 is nonzero: the gradient flows back through every step
    g = jax.jit(jax.grad(lambda x: jnp.sum(net.apply(params, x))))(x)
    assert np.all(np.isfinite(g)) and np.abs(g[:, 0]).sum() > 0
