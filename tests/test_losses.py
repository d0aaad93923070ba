"""Losses against NumPy references, and their bad-input errors."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import losses
from tests.helpers import assert_trees_close


def _np_log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


RNG = np.random.default_rng(0)
CE_CASES = [
    ("random", RNG.normal(size=(4, 3)), np.array([0, 2, 1, 2])),
    ("large_logits", np.array([[1000.0, -1000.0], [0.0, 800.0]]), np.array([1, 1])),
    ("single", np.array([[0.0, 0.0, 0.0, 0.0]]), np.array([3])),
]


@pytest.mark.parametrize("name, logits, labels", CE_CASES, ids=[c[0] for c in CE_CASES])
def test_cross_entropy_matches_numpy(name, logits, labels):
    expected = -np.mean(_np_log_softmax(logits)[np.arange(len(labels)), labels])
    assert_trees_close(losses.cross_entropy(logits, labels), expected)
    onehot = np.eye(logits.shape[1])[labels]
    assert_trees_close(jax.jit(losses.cross_entropy_soft)(logits, onehot),
                       expected)


def test_cross_entropy_soft_with_soft_targets():
    logits = RNG.normal(size=(3, 4))
    targets = RNG.dirichlet(np.ones(4), size=3)
    expected = -np.mean(np.sum(targets * _np_log_softmax(logits), axis=-1))
    assert_trees_close(losses.cross_entropy_soft(jnp.array(logits), jnp.array(targets)),
                       expected)


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_batch():
    logits, labels = RNG.normal(size=(3, 4)), np.array([1, 0, 3])
    g = jax.jit(jax.grad(losses.cross_entropy))(logits, labels)
    expected = (np.exp(_np_log_softmax(logits)) - np.eye(4)[labels]) / 3
    assert_trees_close(g, expected)


def test_cross_entropy_under_jit_with_traced_labels():
    logits, labels = RNG.normal(size=(2, 3)), np.array([2, 0])
    expected = -np.mean(_np_log_softmax(logits)[[0, 1], labels])
    assert_trees_close(jax.jit(losses.cross_entropy)(logits, labels), expected)


def test_mean_squared_error_and_l2_penalty():
    pred, target = RNG.normal(size=(5,)), RNG.normal(size=(5,))
    assert_trees_close(losses.mean_squared_error(jnp.array(pred), jnp.array(target)),
                       np.mean((pred - target) ** 2))
    tree = {"a": {"w": RNG.normal(size=(2, 3))}, "b": RNG.normal(size=(4,)), "c": {}}
    expected = np.sum(tree["a"]["w"] ** 2) + np.sum(tree["b"] ** 2)
    assert_trees_close(losses.l2_penalty(jax.tree_util.tree_map(jnp.array, tree)), expected)
    assert_trees_close(losses.l2_penalty({}), np.array(0.0))


ERROR_CASES = [
    ("label_too_big", losses.cross_entropy, (np.zeros((2, 3)), np.array([0, 3])), ValueError,
     ["[0, 3)", "label 3", "(2, 3)"]),
    ("label_negative", losses.cross_entropy, (np.zeros((2, 3)), np.array([-1, 0])), ValueError,
     ["[0, 3)", "label -1"]),
    ("batch_mismatch", losses.cross_entropy, (np.zeros((2, 3)), np.array([0, 1, 2])),
     ValueError, ["(2, 3)", "(3,)"]),
    ("float_labels", losses.cross_entropy, (np.zeros((2, 3)), np.array([0.0, 1.0])),
     TypeError, ["integer", "float64"]),
    ("soft_shapes", losses.cross_entropy_soft, (np.zeros((2, 3)), np.zeros((2, 4))),
     ValueError, ["(2, 3)", "(2, 4)"]),
    ("mse_shapes", losses.mean_squared_error, (np.zeros((4,)), np.zeros((4, 1))), ValueError,
     ["(4,)", "(4, 1)"]),
]


@pytest.mark.parametrize("name, fn, args, error, fragments", ERROR_CASES,
                         ids=[c[0] for c in ERROR_CASES])
def test_bad_input_errors(name, fn, args, error, fragments):
    with pytest.raises(error) as info:
        fn(*(jnp.array(a) for a in args))
    for fragment in fragments:
        assert re.search(re.escape(fragment), str(info.value)), (fragment, str(info.value))
    assert fn.__name__ in str(info.value)
