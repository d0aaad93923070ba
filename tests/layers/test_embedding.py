"""embedding and positional_embedding against NumPy indexing; id and length errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.layers import embedding, positional_embedding
from tests.helpers import assert_trees_close

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("ids", [np.array([3, 0, 3]), np.array([[1, 2], [4, 0]]), np.array(2)])
def test_embedding_is_table_lookup(ids):
    layer = embedding(5, 3)
    out_shape, params = layer.init(jax.random.key(0), ids.shape)
    assert out_shape == ids.shape + (3,) and params["table"].shape == (5, 3)
    table = RNG.normal(size=(5, 3))
    assert_trees_close(jax.jit(layer.apply)({"table": jnp.array(table)}, ids), table[ids])


@pytest.mark.parametrize("ids, error, fragments", [
    (np.array([0, 5]), ValueError, ["embedding", "[0, 5)", "5", "(2,)"]),
    (np.array([-1]), ValueError, ["[0, 5)", "-1"]),
    (np.array([0.0, 1.0]), TypeError, ["embedding", "integer", "float64"]),
])
def test_embedding_bad_ids(ids, error, fragments):
    layer = embedding(5, 3)
    _, params = layer.init(jax.random.key(0), ids.shape)
    with pytest.raises(error) as info:
        layer.apply(params, jnp.array(ids))
    assert all(f in str(info.value) for f in fragments), str(info.value)


@pytest.mark.parametrize("time", [1, 3, 4])
def test_positional_embedding_adds_rows(time):
    layer = positional_embedding(4)
    out_shape, params = layer.init(jax.random.key(0), (-1, -1, 2))
    assert out_shape == (-1, -1, 2) and params["table"].shape == (4, 2)
    table, x = RNG.normal(size=(4, 2)), RNG.normal(size=(3, time, 2))
    y = jax.jit(layer.apply)({"table": table}, x)
    assert_trees_close(y, x + table[None, :time])


def test_positional_embedding_too_long():
    layer = positional_embedding(4)
    _, params = layer.init(jax.random.key(0), (-1, -1, 2))
    with pytest.raises(ValueError, match=r"positional_embedding: expected x \[batch, time <= 4, "
                                         r"2\], got shape \(1, 5, 2\)"):
        layer.apply(params, jnp.ones((1, 5, 2)))
