"""The hand-written GD/SGD against optax.sgd, step by step, and their argument checks."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import models, optim
from tests.helpers import assert_trees_close

CONFIGS = [dict(momentum=None), dict(momentum=0.9), dict(momentum=0.9, nesterov=True)]


def _batches(num, batch=16, features=12, classes=4):
    kx, ky = jax.random.split(jax.random.key(1))
    xs = jax.random.normal(kx, (num, batch, features), jnp.float64)
    ys = jax.random.randint(ky, (num, batch), 0, classes)
    return xs, ys


def _trajectory(model, params, opt, xs, ys, steps):
    """Params after each of ``steps`` SGD steps (cycling over the batches), stacked."""

    @jax.jit
    def run(params, state):
        def body(carry, i):
            params, state = carry
            batch = (xs[i % xs.shape[0]], ys[i % ys.shape[0]])
            grads = jax.grad(model.loss)(params, batch)
            updates, state = opt.update(grads, state, params)
            params = optim.apply_updates(params, updates)
            return (params, state), params

        return jax.lax.scan(body, (params, state), jnp.arange(steps))[1]

    return run(params, opt.init(params))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: str(c))
def test_hand_sgd_matches_optax_for_100_steps_on_mlp(config):
    model = models.mlp(12, hidden=(16,), num_classes=4)
    params = model.init(jax.random.key(0))
    assert jax.tree.leaves(params)[0].dtype == jnp.float64
    xs, ys = _batches(5)
    hand = _trajectory(model, params, optim.sgd(0.05, **config), xs, ys, 100)
    ref = _trajectory(model, params, optax.sgd(0.05, **config), xs, ys, 100)
    assert_trees_close(hand, ref, rtol=1e-13, atol=1e-15, what=f"{config}: ")
    # the parameters did move: the comparison is not of two frozen trees
    moved = jax.tree.map(lambda p, t: float(jnp.max(jnp.abs(t[-1] - p))), params, hand)
    assert min(jax.tree.leaves(moved)) > 1e-3


def test_gradient_descent_is_the_notes_update():
    params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
    grads = {"w": jnp.array([0.5, 4.0]), "b": jnp.array(-1.0)}
    opt = optim.gradient_descent(0.1)
    updates, state = opt.update(grads, opt.init(params))
    assert state == optim.EmptyState()
    new = optim.apply_updates(params, updates)
    assert_trees_close(new, {"w": jnp.array([0.95, -2.4]), "b": jnp.array(0.6)})


def test_momentum_state_is_a_namedtuple_and_jittable():
    params = {"w": jnp.ones((3,))}
    opt = optim.sgd(0.1, momentum=0.9)
    state = opt.init(params)
    assert isinstance(state, optim.SGDState)
    updates, state = jax.jit(opt.update)({"w": jnp.ones((3,))}, state)
    updates, state = jax.jit(opt.update)({"w": jnp.ones((3,))}, state)
    # m1 = 1, m2 = 1 + 0.9 * 1; updates = -0.1 * m2
    assert_trees_close(state.momentum, {"w": jnp.full((3,), 1.9)})
    assert_trees_close(updates, {"w": jnp.full((3,), -0.19)})


def test_apply_updates_keeps_dtype():
    params = {"w": jnp.ones((2,), jnp.float32)}
    new = optim.apply_updates(params, {"w": jnp.ones((2,), jnp.float64)})
    assert new["w"].dtype == jnp.float32


@pytest.mark.parametrize("lr", [0.0, -0.1, float("nan"), float("inf")])
@pytest.mark.parametrize("name", ["manual", "optax"])
def test_learning_rate_must_be_positive(lr, name):
    with pytest.raises(ValueError, match="learning rate > 0"):
        optim.make_optimizer(name, lr)


def test_bad_momentum_and_nesterov_are_errors():
    with pytest.raises(ValueError, match="momentum in"):
        optim.sgd(0.1, momentum=1.0)
    with pytest.raises(ValueError, match="nesterov"):
        optim.sgd(0.1, nesterov=True)
    with pytest.raises(ValueError, match="nesterov"):
        optim.optax_sgd(0.1, momentum=0.0, nesterov=True)
    with pytest.raises(ValueError, match="expected optimizer in"):
        optim.make_optimizer("adam", 0.1)
    with pytest.raises(TypeError, match="positive number"):
        optim.sgd("fast")


def test_make_optimizer_passes_a_transformation_through():
    tx = optax.adam(1e-3)
    assert optim.make_optimizer(tx, None) is tx
    hand = optim.make_optimizer("manual", 0.1, momentum=0.9, nesterov=True)
    params = {"w": jnp.arange(3.0)}
    grads = {"w": jnp.array([1.0, -1.0, 2.0])}
    ref = optax.sgd(0.1, momentum=0.9, nesterov=True)
    u1, _ = hand.update(grads, hand.init(params))
    u2, _ = ref.update(grads, ref.init(params))
    np.testing.assert_array_equal(u1["w"], u2["w"])
