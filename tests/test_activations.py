"""Activations against values computed by hand (math module), including 0 and large |z|;
their derivatives at the kinks; softmax / log_softmax against NumPy."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import activations as act
from tests.helpers import assert_trees_close

E = math.e
SQRT_2_OVER_PI = math.sqrt(2 / math.pi)

VALUE_CASES = [
    ("sigmoid", act.sigmoid, [-1000.0, -1.0, 0.0, 1.0, 1000.0],
     [0.0, 1 / (1 + E), 0.5, 1 / (1 + 1 / E), 1.0]),
    ("sigmoid_moderate", act.sigmoid, [-30.0, 30.0],
     [math.exp(-30) / (1 + math.exp(-30)), 1 / (1 + math.exp(-30))]),
    ("relu", act.relu, [-1000.0, -2.0, 0.0, 3.0, 1000.0], [0.0, 0.0, 0.0, 3.0, 1000.0]),
    ("step", act.step, [-1000.0, -1e-9, 0.0, 1e-9, 1000.0], [0.0, 0.0, 0.0, 1.0, 1.0]),
    ("sign", act.sign, [-1000.0, -0.5, 0.0, 0.5, 1000.0], [-1.0, -1.0, 0.0, 1.0, 1.0]),
    ("tanh", act.tanh, [-1000.0, -0.5, 0.0, 0.5, 1000.0],
     [-1.0, -math.tanh(0.5), 0.0, math.tanh(0.5), 1.0]),
    ("softplus", act.softplus, [-1000.0, -1.0, 0.0, 1.0, 1000.0],
     [0.0, math.log(1 + 1 / E), math.log(2), math.log(1 + E), 1000.0]),
    ("gelu_tanh", act.gelu, [-1000.0, -1.0, 0.0, 1.0, 1000.0],
     [0.0, -0.5 * (1 + math.tanh(-SQRT_2_OVER_PI * 1.044715)), 0.0,
      0.5 * (1 + math.tanh(SQRT_2_OVER_PI * 1.044715)), 1000.0]),
    ("gelu_exact", lambda z: act.gelu(z, approximate=False), [-1000.0, -1.0, 0.0, 1.0, 1000.0],
     [0.0, -0.5 * (1 + math.erf(-1 / math.sqrt(2))), 0.0, 0.5 * (1 + math.erf(1 / math.sqrt(2))),
      1000.0]),
    ("leaky_relu", act.leaky_relu, [-1000.0, -2.0, 0.0, 3.0], [-10.0, -0.02, 0.0, 3.0]),
    ("leaky_relu_slope", lambda z: act.leaky_relu(z, negative_slope=0.5), [-2.0, 0.0, 2.0],
     [-1.0, 0.0, 2.0]),
]


@pytest.mark.parametrize("name, fn, z, expected", VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_values_by_hand(name, fn, z, expected):
    y = jax.jit(fn)(jnp.array(z))
    assert_trees_close(y, np.array(expected), rtol=1e-12, atol=1e-300, what=name)


# d/dz at chosen points: the kinks follow the conventions in activations.py; the large-|z|
# derivatives must be finite (no inf * 0 in an unselected branch).
DERIVATIVE_CASES = [
    ("sigmoid", act.sigmoid, [-1000.0, 0.0, 1.0, 1000.0],
     [0.0, 0.25, (1 / (1 + 1 / E)) * (1 / (1 + E)), 0.0]),
    ("relu", act.relu, [-1.0, 0.0, 2.0], [0.0, 0.0, 1.0]),
    ("step", act.step, [-1.0, 0.0, 2.0], [0.0, 0.0, 0.0]),
    ("sign", act.sign, [-1.0, 0.0, 2.0], [0.0, 0.0, 0.0]),
    ("tanh", act.tanh, [-1000.0, 0.0, 0.5], [0.0, 1.0, 1 - math.tanh(0.5) ** 2]),
    ("softplus", act.softplus, [-1000.0, 0.0, 1000.0], [0.0, 0.5, 1.0]),
    ("leaky_relu", act.leaky_relu, [-1.0, 0.0, 2.0], [0.01, 1.0, 1.0]),
    ("gelu_exact", lambda z: act.gelu(z, approximate=False), [0.0, 1.0],
     [0.5, 0.5 * (1 + math.erf(1 / math.sqrt(2))) + math.exp(-0.5) / math.sqrt(2 * math.pi)]),
]


@pytest.mark.parametrize("name, fn, z, expected", DERIVATIVE_CASES,
                         ids=[c[0] for c in DERIVATIVE_CASES])
def test_derivatives_at_chosen_points(name, fn, z, expected):
    grads = jax.jit(jax.vmap(jax.grad(fn)))(jnp.array(z))
    assert_trees_close(grads, np.array(expected), rtol=1e-12, atol=1e-300, what=name)


@pytest.mark.parametrize("fn", [act.step, act.sign, act.relu])
def test_keeps_dtype(fn):
    assert fn(jnp.array([-1.0, 0.0, 1.0], jnp.float32)).dtype == jnp.float32


def _np_softmax(z, axis):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


SOFTMAX_CASES = [
    ("row", np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]), -1),
    ("large", np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -999.0]]), -1),
    ("axis0", np.random.default_rng(0).normal(size=(3, 4)), 0),
]


@pytest.mark.parametrize("name, z, axis", SOFTMAX_CASES, ids=[c[0] for c in SOFTMAX_CASES])
def test_softmax_and_log_softmax_match_numpy(name, z, axis):
    expected = _np_softmax(z, axis)
    assert_trees_close(act.softmax(jnp.array(z), axis=axis), expected, what=name)
    shifted = z - z.max(axis=axis, keepdims=True)
    expected_log = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    assert_trees_close(act.log_softmax(jnp.array(z), axis=axis), expected_log, what=name)


def test_log_softmax_gradient_is_softmax_minus_onehot():
    z = jnp.array([0.3, -1.2, 2.0])
    g = jax.grad(lambda z: act.log_softmax(z)[1])(z)
    assert_trees_close(g, np.eye(3)[1] * 1.0 - _np_softmax(np.asarray(z), -1))


def test_activations_table_looks_up_by_name():
    assert act.ACTIVATIONS["relu"] is act.relu
    assert act.ACTIVATIONS["sigmoid"] is act.sigmoid
    assert {"step", "sign", "tanh", "softplus", "gelu", "leaky_relu"} <= set(act.ACTIVATIONS)
