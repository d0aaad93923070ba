"""Every model: init, forward under jit and vmap, a finite scalar loss, finite gradients with
the params' structure; taps give the adjoint; model-specific checks by hand."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import models
from funcnn.layers import intermediates
from tests.helpers import assert_trees_close

RNG = np.random.default_rng(0)
B = 3  # batch

MODELS = {
    "mlp": models.mlp(4, hidden=(5, 6), num_classes=3, l2=0.1),
    "mlp_tanh": models.mlp(4, hidden=(5, 6), num_classes=3, activation="tanh"),
    "cnn": models.cnn(in_shape=(6, 6, 1), channels=(2, 3), num_classes=3),
    "rnn": models.rnn(2, hidden=4, num_classes=3),
    "transformer": models.transformer(2, width=4, num_heads=2, depth=2, num_classes=3,
                                      max_len=8, causal=True),
    "linear_regression": models.linear_regression(3),
}
LABELS = jnp.array([0, 2, 1])
# (model, x [B, ...], y [B], output shape)
CASES = {
    "mlp": (RNG.normal(size=(B, 4)), LABELS, (B, 3)),
    "mlp_tanh": (RNG.normal(size=(B, 4)), LABELS, (B, 3)),
    "cnn": (RNG.normal(size=(B, 6, 6, 1)), LABELS, (B, 3)),
    "rnn": (RNG.normal(size=(B, 5, 2)), LABELS, (B, 3)),
    "transformer": (RNG.normal(size=(B, 5, 2)), LABELS, (B, 3)),
    "linear_regression": (RNG.normal(size=(B, 3)), jnp.array(RNG.normal(size=B)), (B,)),
}


@functools.cache
def _params(name):
    """Each model's params, initialised once for the whole module."""
    return MODELS[name].init(jax.random.key(0))


@functools.cache
def _apply(name):
    return jax.jit(MODELS[name].apply)


@pytest.mark.parametrize("name", list(CASES))
def test_forward_jit_vmap_loss_and_grad(name):
    model, params, (x, y, out_shape) = MODELS[name], _params(name), CASES[name]
    logits = _apply(name)(params, x)
    assert logits.shape == out_shape and np.all(np.isfinite(logits))
    # vmap over a batch of batches: [2, B, ...] -> [2, *out_shape]
    batched = jax.jit(jax.vmap(model.apply, in_axes=(None, 0)))(params, np.stack([x, 2 * x]))
    assert_trees_close(batched, jnp.stack([logits, _apply(name)(params, 2 * x)]), rtol=1e-10)
    loss, grads = jax.jit(jax.value_and_grad(model.loss))(params, (x, y))
    assert loss.shape == () and np.isfinite(loss)
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
    assert sum(float(jnp.abs(g).sum()) for g in jax.tree_util.tree_leaves(grads)) > 0
    outputs = jax.eval_shape(lambda p, x: intermediates(model, p, x), params, x)
    assert sorted(outputs) == sorted(model.layer_names)  # (eval_shape sorts dict keys)


def test_per_example_vmap_with_batch_of_one():
    model, params, x = MODELS["transformer"], _params("transformer"), CASES["transformer"][0]
    per_example = jax.jit(jax.vmap(lambda xi: model.apply(params, xi[None])[0]))(x)
    assert_trees_close(per_example, _apply("transformer")(params, x), rtol=1e-10)


def test_mlp_tap_adjoint_is_softmax_minus_onehot_over_batch():
    model, params, (x, y, _) = MODELS["mlp_tanh"], _params("mlp_tanh"), CASES["mlp_tanh"]
    assert model.layer_names == ("dense_0", "tanh_0", "dense_1", "tanh_1", "dense_2")
    tap = jax.grad(lambda t: model.loss(params, (x, y), taps={"dense_2": t}))(jnp.zeros((B, 3)))
    logits = np.asarray(_apply("mlp_tanh")(params, x))
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert_trees_close(tap, (softmax - np.eye(3)[np.asarray(y)]) / B)


def test_mlp_l2_penalises_weights_only():
    plain = models.mlp(4, hidden=(5, 6), num_classes=3)
    params, batch = _params("mlp"), CASES["mlp"][:2]
    expected = sum(np.sum(np.asarray(params[n]["w"]) ** 2) for n in ("dense_0", "dense_1",
                                                                       "dense_2"))
    difference = MODELS["mlp"].loss(params, batch) - plain.loss(params, batch)
    assert_trees_close(difference, 0.1 * expected)


def test_linear_regression_by_hand():
    model, params = MODELS["linear_regression"], _params("linear_regression")
    assert model.layer_names == ("dense_0", "squeeze_0")
    w, b = np.asarray(params["dense_0"]["w"]), np.asarray(params["dense_0"]["b"])
    x, y = RNG.normal(size=(4, 3)), RNG.normal(size=4)
    pred = x @ w[:, 0] + b[0]
    assert_trees_close(_apply("linear_regression")(params, x), pred)
    assert_trees_close(model.loss(params, (x, y)), np.mean((pred - y) ** 2))


def test_transformer_param_paths_and_padding_mask():
    model, params = MODELS["transformer"], _params("transformer")
    assert params["block_1"]["attention"]["self_attention"]["wq"].shape == (4, 4)
    assert params["block_1"]["mlp"]["dense_0"]["w"].shape == (4, 16)
    assert model.layer_names == ("dense_0", "positional_embedding_0", "block_0", "block_1",
                                 "layer_norm_0", "mean_pool_0", "dense_1")
    # padding: the padded tail of example 0 must not change its logits
    x = jnp.array(CASES["transformer"][0])
    mask = jnp.array([[True, True, True, False, False]] + [[True] * 5] * (B - 1))
    apply = _apply("transformer")
    y = apply(params, x, padding_mask=mask)
    assert_trees_close(apply(params, x.at[0, 3:].add(5.0), padding_mask=mask), y)
    assert_trees_close(y[:1], apply(params, x[:1, :3]), rtol=1e-10)
