"""The activation layer applies its function elementwise, with no params."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.layers import activation, gelu_layer, relu_layer, sigmoid_layer, tanh_layer
from tests.helpers import assert_trees_close

Z = np.array([[-2.0, -0.5, 0.0], [0.5, 1.0, 3.0]])
CASES = [
    ("relu", relu_layer, np.maximum(Z, 0)),
    ("sigmoid", sigmoid_layer, 1 / (1 + np.exp(-Z))),
    ("tanh", tanh_layer, np.tanh(Z)),
    ("gelu", gelu_layer,
     0.5 * Z * (1 + np.tanh(np.sqrt(2 / np.pi) * (Z + 0.044715 * Z**3)))),
    ("step", activation("step"), (Z > 0) * 1.0),
    ("leaky_relu", activation("leaky_relu", negative_slope=0.1), np.where(Z >= 0, Z, 0.1 * Z)),
    ("activation", activation(lambda z: z * 2), 2 * Z),
    ("abs", activation(jnp.abs), np.abs(Z)),
]


@pytest.mark.parametrize("kind, layer, expected", CASES, ids=[c[0] for c in CASES])
def test_activation_layer_matches_numpy(kind, layer, expected):
    out_shape, params = layer.init(jax.random.key(0), (-1, 3))
    assert (out_shape, params, layer.name) == ((-1, 3), {}, kind)
    assert_trees_close(jax.jit(layer.apply)(params, jnp.array(Z)), expected)


def test_unknown_activation_name():
    with pytest.raises(ValueError, match="expected one of .*'relu'.*got 'rleu'"):
        activation("rleu")
