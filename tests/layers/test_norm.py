"""layer_norm against its formula in NumPy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.layers import layer_norm, serial
from tests.helpers import assert_trees_close

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("x_shape, eps", [((4, 6), 1e-5), ((2, 3, 5), 1e-2), ((5,), 0.0)])
def test_layer_norm_matches_formula(x_shape, eps):
    layer = layer_norm(eps)
    in_shape = x_shape if len(x_shape) == 1 else (-1,) + x_shape[1:]
    out_shape, params = layer.init(jax.random.key(0), in_shape)
    assert out_shape == in_shape
    features = x_shape[-1]
    assert_trees_close(params, {"scale": np.ones(features), "bias": np.zeros(features)})
    params = {"scale": RNG.normal(size=features), "bias": RNG.normal(size=features)}
    x = 3.0 + 2.0 * RNG.normal(size=x_shape)
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    expected = (x - mean) / np.sqrt(var + eps) * params["scale"] + params["bias"]
    y = jax.jit(layer.apply)(params, x)
    assert_trees_close(y, expected, rtol=1e-9)


def test_layer_norm_wrong_features():
    net = serial(layer_norm(), names=["norm"])
    _, params = net.init(jax.random.key(0), (-1, 4))
    with pytest.raises(ValueError, match=r"^norm: expected x\[\.\.\., 4\], got shape \(2, 3\)$"):
        net.apply(params, jnp.ones((2, 3)))
