"""serial (names, taps, intermediates, error paths), parallel / fan_out / fan_in_sum and
residual, against compositions written out in NumPy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.layers import (
    LayerError,
    dense,
    fan_in_sum,
    fan_out,
    intermediates,
    layer_norm,
    parallel,
    relu_layer,
    residual,
    serial,
    sublayer_names,
)
from tests.helpers import assert_trees_close

RNG = np.random.default_rng(0)


def _randomized(params):
    """Same structure, every leaf redrawn from N(0, 1) (so zero biases cannot hide a bug)."""
    return jax.tree_util.tree_map(lambda a: jnp.array(RNG.normal(size=a.shape)), params)


def _np_dense(p, x):
    return x @ np.asarray(p["w"]) + np.asarray(p["b"])


@pytest.fixture
def mlp():
    net = serial(dense(4), relu_layer, dense(2))
    out_shape, params = net.init(jax.random.key(0), (-1, 3))
    assert out_shape == (-1, 2)
    return net, _randomized(params)


def test_serial_names_params_and_forward(mlp):
    net, params = mlp
    assert sublayer_names([dense(4), relu_layer, dense(2)]) == ("dense_0", "relu_0", "dense_1")
    assert jax.tree_util.tree_map(jnp.shape, params) == {
        "dense_0": {"w": (3, 4), "b": (4,)}, "relu_0": {}, "dense_1": {"w": (4, 2), "b": (2,)}}
    x = RNG.normal(size=(5, 3))
    hidden = np.maximum(_np_dense(params["dense_0"], x), 0)
    expected = _np_dense(params["dense_1"], hidden)
    assert_trees_close(jax.jit(net.apply)(params, x), expected)
    assert_trees_close(intermediates(net, params, jnp.array(x)), {
        "dense_0": _np_dense(params["dense_0"], x), "relu_0": hidden, "dense_1": expected})


@pytest.mark.parametrize("tap_name", ["dense_0", "relu_0", "dense_1"])
def test_serial_taps_add_to_output_and_give_adjoints(mlp, tap_name):
    net, params = mlp
    x = jnp.array(RNG.normal(size=(5, 3)))
    outs = intermediates(net, params, x)
    tap = jnp.array(RNG.normal(size=outs[tap_name].shape))
    tapped = intermediates(net, params, x, taps={tap_name: tap})
    assert_trees_close(tapped[tap_name], outs[tap_name] + tap)
    # adjoint of the tapped output for L = sum(y * c), computed by hand from the layers
    c = RNG.normal(size=(5, 2))
    loss = lambda t: jnp.sum(net.apply(params, x, taps={tap_name: t}) * c)
    adjoint = jax.jit(jax.grad(loss))(jnp.zeros_like(tap))
    w1 = np.asarray(params["dense_1"]["w"])
    by_hand = {"dense_1": c, "relu_0": c @ w1.T,
               "dense_0": (c @ w1.T) * (np.asarray(outs["dense_0"]) > 0)}[tap_name]
    assert_trees_close(adjoint, by_hand)


@pytest.mark.parametrize("taps, fragments", [
    ({"dense_9": jnp.zeros((5, 2))}, ["serial", "dense_9", "dense_0"]),
    ({"dense_1": jnp.zeros((5, 3))}, ["serial", "dense_1", "(5, 2)", "(5, 3)"]),
])
def test_serial_bad_taps(mlp, taps, fragments):
    net, params = mlp
    with pytest.raises(ValueError) as info:
        net.apply(params, jnp.ones((5, 3)), taps=taps)
    assert all(f in str(info.value) for f in fragments), str(info.value)


def test_nested_error_names_the_parameter_path():
    inner = serial(layer_norm(), dense(3), names=("norm", "proj"), name="block")
    net = serial(dense(5), inner, inner)
    _, params = net.init(jax.random.key(0), (-1, 2))
    params["block_1"]["proj"]["w"] = jnp.ones((4, 3))
    with pytest.raises(LayerError) as info:  # raised while tracing: jit compiles nothing
        jax.jit(net.apply)(params, jnp.ones((1, 2)))
    assert str(info.value) == "block_1/proj: expected x[..., 4], got shape (1, 3)"
    with pytest.raises(ValueError, match="expected 2 distinct names"):
        serial(dense(1), dense(1), names=("a", "a"))


def test_parallel_between_fan_out_and_fan_in_sum():
    net = serial(fan_out(2), parallel(dense(3), dense(3), names=("left", "right")), fan_in_sum())
    out_shape, params = net.init(jax.random.key(0), (-1, 4))
    assert out_shape == (-1, 3)
    params = _randomized(params)
    x = RNG.normal(size=(2, 4))
    branches = params["parallel_0"]
    expected = _np_dense(branches["left"], x) + _np_dense(branches["right"], x)
    assert_trees_close(jax.jit(net.apply)(params, x), expected)
    with pytest.raises(LayerError, match=r"parallel: expected a tuple of 2 inputs"):
        parallel(dense(3), dense(3)).apply(branches, (jnp.ones((1, 4)),))


@pytest.mark.parametrize("branch, projection, in_features, out_features", [
    (dense(4), None, 4, 4),
    (dense(6), None, 4, 6),
    (serial(dense(5), relu_layer, dense(3)), dense(3), 3, 3),
])
def test_residual_matches_numpy(branch, projection, in_features, out_features):
    layer = residual(branch, projection)
    out_shape, params = layer.init(jax.random.key(0), (-1, in_features))
    assert out_shape == (-1, out_features)
    params = _randomized(params)
    x = RNG.normal(size=(3, in_features))
    branch_params = {k: v for k, v in params.items() if k != "projection"}
    skip = _np_dense(params["projection"], x) if "projection" in params else x
    with_projection = projection is not None or in_features != out_features
    assert ("projection" in params) == with_projection
    expected = skip + np.asarray(branch.apply(branch_params, jnp.array(x)))
    assert_trees_close(jax.jit(layer.apply)(params, x), expected)


def test_residual_branch_is_dense_by_hand():
    layer = residual(dense(2))
    _, params = layer.init(jax.random.key(1), (-1, 2))
    params = _randomized(params)
    x = RNG.normal(size=(3, 2))
    assert_trees_close(jax.jit(layer.apply)(params, x), x + _np_dense(params, x))


def test_residual_shape_mismatch():
    with pytest.raises(LayerError, match=r"residual: expected the skip path's shape \(-1, 5\) "
                                         r"to equal the branch's output shape \(-1, 3\)"):
        residual(dense(3), projection=dense(5)).init(jax.random.key(0), (-1, 4))
