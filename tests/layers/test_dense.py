"""dense against NumPy, its shape errors, and the initializers' distributions."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import initializers as inits
from funcnn.layers import LayerError, dense, serial
from tests.helpers import assert_trees_close

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("x_shape", [(5,), (4, 5), (2, 3, 5)])
def test_dense_matches_numpy(x_shape):
    layer = dense(3)
    out_shape, params = layer.init(jax.random.key(0), (-1,) * (len(x_shape) - 1) + (5,))
    assert out_shape == (-1,) * (len(x_shape) - 1) + (3,)
    assert jax.tree_util.tree_map(jnp.shape, params) == {"w": (5, 3), "b": (3,)}
    params = {"w": RNG.normal(size=(5, 3)), "b": RNG.normal(size=(3,))}
    x = RNG.normal(size=x_shape)
    expected = np.einsum("...i,io->...o", x, params["w"]) + params["b"]
    assert_trees_close(jax.jit(layer.apply)(params, x),
                       expected)


def test_dense_custom_initializers():
    _, params = dense(2, w_init=inits.ones, b_init=inits.normal(0.0)).init(jax.random.key(1),
                                                                           (-1, 3))
    assert_trees_close(params, {"w": np.ones((3, 2)), "b": np.zeros(2)})


@pytest.mark.parametrize("layer, where", [(dense(3), "dense"),
                                          (serial(dense(3)), "dense_0"),
                                          (serial(dense(3), names=["head"]), "head")])
def test_dense_wrong_feature_size_names_layer_and_shapes(layer, where):
    _, params = layer.init(jax.random.key(0), (-1, 5))
    with pytest.raises(ValueError) as info:
        layer.apply(params, jnp.ones((4, 3)))
    assert isinstance(info.value, LayerError)
    assert str(info.value) == f"{where}: expected x[..., 5], got shape (4, 3)"


# (initializer, shape, expected std, uniform bound or None)
INIT_CASES = [
    ("glorot_uniform", inits.glorot_uniform, (200, 300), math.sqrt(2 / 500), math.sqrt(6 / 500)),
    ("glorot_normal", inits.glorot_normal, (200, 300), math.sqrt(2 / 500), None),
    ("he_normal", inits.he_normal, (200, 300), math.sqrt(2 / 200), None),
    ("he_uniform", inits.he_uniform, (200, 300), math.sqrt(2 / 200), math.sqrt(6 / 200)),
    ("he_normal_conv", inits.he_normal, (3, 3, 20, 40), math.sqrt(2 / 180), None),
    ("normal", inits.normal(0.5), (300, 200), 0.5, None),
]


@pytest.mark.parametrize("name, init, shape, std, bound", INIT_CASES,
                         ids=[c[0] for c in INIT_CASES])
def test_initializer_statistics(name, init, shape, std, bound):
    w = np.asarray(init(jax.random.key(0), shape))
    assert w.shape == shape and w.dtype == np.float64
    assert abs(w.mean()) < 0.05 * std and abs(w.std() / std - 1) < 0.03
    if bound is not None:
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound


def test_constant_initializers_and_dtype():
    assert_trees_close(inits.zeros(None, (2,)), np.zeros(2))
    assert_trees_close(inits.ones(None, (2,)), np.ones(2))
    assert inits.glorot_uniform(jax.random.key(0), (2, 2), jnp.float32).dtype == jnp.float32
    with pytest.raises(ValueError, match=r"rank >= 2.*\(3,\)"):
        inits.glorot_uniform(jax.random.key(0), (3,))


def test_layer_unpacks_as_a_pair_like_stax():
    layer = dense(3)
    init, apply = layer
    assert (init, apply) == (layer.init, layer.apply) and layer.name == "dense"
    _, params = init(jax.random.PRNGKey(0), (-1, 2))
    x = jnp.ones((4, 2))
    assert_trees_close(apply(params, x), x @ params["w"] + params["b"][None, :])
