"""Small models written the way users of flax.linen, flax.nnx, equinox and haiku write them.

Each builder imports its library when called (so a missing library skips only its cases) and
returns a ``Model``: ``loss(params, *data)`` (a scalar, or ``(scalar, new_state)`` where the
model updates batch statistics), the library's own params pytree, and the data. Parameters
are cast to float64 after init (the tests run in float64; flax and nnx create float32 params
unless told otherwise).

Data (fixed, float64): ``X`` [batch=4, features=6] with integer labels ``Y`` [4];
``IMAGES`` [2, 8, 8, 1] (NHWC), zero except a 3x3 patch, so that a zero-bias convolution
gives exact zeros over the background (relu at 0, max-pool ties of zeros); ``SEQ``
[batch=2, time=5, features=3] with regression targets ``SEQ_Y`` [2, 4]; ``TOKENS``
[2, 4, 8] with ``LENGTHS`` [2] for padding masks.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax


class Model(NamedTuple):
    loss: Callable  # loss(params, *data) -> scalar, or (scalar, aux) when has_aux
    params: Any
    data: tuple
    has_aux: bool = False


_rng = np.random.default_rng(7)
X = _rng.standard_normal((4, 6))
Y = np.array([0, 2, 1, 2], np.int32)
IMAGES = np.zeros((2, 8, 8, 1))
IMAGES[:, 3:6, 2:5, 0] = _rng.uniform(0.5, 1.5, (2, 3, 3))
IMAGE_Y = np.array([1, 0], np.int32)
SEQ = _rng.standard_normal((2, 5, 3))
SEQ_Y = _rng.standard_normal((2, 4))
TOKENS = _rng.standard_normal((2, 4, 8))
LENGTHS = np.array([4, 2])
KEY = jax.random.key(0)
DROPOUT_KEY = jax.random.key(42)


def f64(tree):
    """Every floating-point array leaf of ``tree`` as float64 (other leaves as they are)."""
    def cast(a):
        floating = hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating)
        return a.astype(jnp.float64) if floating else a

    return jax.tree_util.tree_map(cast, tree)


def xent(logits, labels):
    """Mean softmax cross-entropy: logits [batch, classes], integer labels [batch]."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def mse(pred, target):
    return jnp.mean((pred - target) ** 2)


# --- flax.linen ----------------------------------------------------------------------------------
def linen_mlp():
    import flax.linen as nn

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Dense(16)(x))
            x = nn.gelu(nn.Dense(16)(x))
            return nn.Dense(3)(x)

    model = MLP()
    params = f64(jax.jit(model.init)(KEY, X))["params"]
    return Model(lambda p, x, y: xent(model.apply({"params": p}, x), y), params, (X, Y))


def linen_cnn_zero_bias():
    import flax.linen as nn

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x):  # x: [B, 8, 8, 1]
            x = nn.relu(nn.Conv(4, (3, 3))(x))  # flax's default bias_init: zeros
            x = nn.max_pool(x, (2, 2), strides=(2, 2))  # [B, 4, 4, 4]: ties of zeros
            return nn.Dense(3)(x.reshape((x.shape[0], -1)))

    model = CNN()
    params = f64(jax.jit(model.init)(KEY, IMAGES))["params"]
    assert not np.any(params["Conv_0"]["bias"])
    return Model(lambda p, x, y: xent(model.apply({"params": p}, x), y), params,
                 (IMAGES, IMAGE_Y))


def linen_batchnorm_train():
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            x = nn.Dense(8)(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
            return nn.Dense(3)(nn.relu(x))

    model = Net()
    variables = f64(jax.jit(model.init, static_argnums=2)(KEY, X, False))

    def loss(params, batch_stats, x, y):
        logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, x,
                                      train=True, mutable=["batch_stats"])
        return xent(logits, y), updates["batch_stats"]

    return Model(loss, variables["params"], (variables["batch_stats"], X, Y), has_aux=True)


def linen_attention_masked():
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, mask):  # x: [B, T, 8]; mask: [B, 1, T, T]
            h = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=8)(x, mask=mask)
            return nn.Dense(3)(h[:, 0])

    valid = np.arange(TOKENS.shape[1])[None, :] < LENGTHS[:, None]  # [B, T]
    mask = nn.combine_masks(nn.make_attention_mask(valid, valid), nn.make_causal_mask(valid))
    model = Net()
    params = f64(jax.jit(model.init)(KEY, TOKENS, mask))["params"]
    return Model(lambda p, x, m, y: xent(model.apply({"params": p}, x, m), y), params,
                 (TOKENS, mask, IMAGE_Y))


def linen_recurrent(cell_name: str):
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):  # x: [B, T, 3]
            cell = getattr(nn, cell_name)(features=6, param_dtype=jnp.float64)  # and its carry
            h = nn.RNN(cell)(x)  # scanned over time: [B, T, 6]
            return nn.Dense(4)(h[:, -1])

    model = Net()
    params = f64(jax.jit(model.init)(KEY, SEQ))["params"]
    return Model(lambda p, x, y: mse(model.apply({"params": p}, x), y), params, (SEQ, SEQ_Y))


def linen_dropout():
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            x = nn.relu(nn.Dense(16)(x))
            x = nn.Dropout(rate=0.3, deterministic=not train)(x)
            return nn.Dense(3)(x)

    model = Net()
    params = f64(jax.jit(model.init, static_argnums=2)(KEY, X, False))["params"]

    def loss(params, x, y, key):
        return xent(model.apply({"params": params}, x, True, rngs={"dropout": key}), y)

    return Model(loss, params, (X, Y, DROPOUT_KEY))


# --- flax.nnx ------------------------------------------------------------------------------------
def nnx_mlp():
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(6, 16, rngs=rngs, param_dtype=jnp.float64)
            self.out = nnx.Linear(16, 3, rngs=rngs, param_dtype=jnp.float64)

        def __call__(self, x):
            return self.out(nnx.relu(self.hidden(x)))

    graphdef, params, rest = nnx.split(MLP(nnx.Rngs(0)), nnx.Param, ...)

    def loss(params, x, y):
        return xent(nnx.merge(graphdef, params, rest)(x), y)

    return Model(loss, params, (X, Y))


def nnx_conv_batchnorm():
    from flax import nnx

    class ConvBN(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs, param_dtype=jnp.float64)
            self.bn = nnx.BatchNorm(4, momentum=0.9, rngs=rngs, param_dtype=jnp.float64)
            self.out = nnx.Linear(4, 3, rngs=rngs, param_dtype=jnp.float64)

        def __call__(self, x):  # x: [B, 8, 8, 1]; batch norm in training mode
            x = nnx.relu(self.bn(self.conv(x)))
            return self.out(x.mean(axis=(1, 2)))

    graphdef, params, batch_stats = nnx.split(ConvBN(nnx.Rngs(0)), nnx.Param, nnx.BatchStat)

    def loss(params, batch_stats, x, y):
        # copy=True: fresh Variables inside the trace, or nnx refuses to update the batch
        # statistics under jax.grad ("Cannot mutate BatchStat from a different trace level")
        model = nnx.merge(graphdef, params, batch_stats, copy=True)
        value = xent(model(x), y)
        return value, nnx.split(model, nnx.Param, nnx.BatchStat)[2]

    return Model(loss, params, (f64(batch_stats), IMAGES, IMAGE_Y), has_aux=True)


# --- equinox -------------------------------------------------------------------------------------
def equinox_model(make: Callable, loss_of_model: Callable, data: tuple) -> Model:
    """``make(key)`` builds the module (under ``eqx.filter_jit``: one compilation, not one per
    initializer); the inexact-array leaves are differentiated, the rest held static."""
    import equinox as eqx

    model = eqx.filter_jit(make)(KEY)
    params, static = eqx.partition(f64(model), eqx.is_inexact_array)
    return Model(lambda p, *d: loss_of_model(eqx.combine(p, static), *d), params, data)


def equinox_mlp():
    import equinox as eqx

    def make(key):
        return eqx.nn.MLP(6, 3, width_size=16, depth=2, activation=jax.nn.gelu, key=key)

    return equinox_model(make, lambda m, x, y: xent(jax.vmap(m)(x), y), (X, Y))


def equinox_cnn_zero_bias():
    import equinox as eqx

    class CNN(eqx.Module):
        conv: eqx.nn.Conv2d
        pool: eqx.nn.MaxPool2d
        head: eqx.nn.Linear

        def __call__(self, x):  # one image, [C=1, 8, 8]
            x = self.pool(jax.nn.relu(self.conv(x)))  # [4, 4, 4]
            return self.head(x.reshape(-1))

    def make(key):
        k1, k2 = jax.random.split(key)
        conv = eqx.nn.Conv2d(1, 4, 3, padding=1, key=k1)
        conv = eqx.tree_at(lambda c: c.bias, conv, jnp.zeros_like(conv.bias))
        return CNN(conv, eqx.nn.MaxPool2d(2, 2), eqx.nn.Linear(64, 3, key=k2))

    images = np.moveaxis(IMAGES, -1, 1)  # NCHW
    return equinox_model(make, lambda m, x, y: xent(jax.vmap(m)(x), y), (images, IMAGE_Y))


def equinox_recurrent(cell_name: str):
    import equinox as eqx

    class Recurrent(eqx.Module):
        cell: eqx.Module
        head: eqx.nn.Linear

        def __call__(self, xs):  # one sequence, [T, 3]
            lstm = isinstance(self.cell, eqx.nn.LSTMCell)
            h0 = (jnp.zeros(6), jnp.zeros(6)) if lstm else jnp.zeros(6)

            def step(h, x):
                h = self.cell(x, h)
                return h, None

            h, _ = jax.lax.scan(step, h0, xs)
            return self.head(h[0] if lstm else h)

    def make(key):
        k1, k2 = jax.random.split(key)
        return Recurrent(getattr(eqx.nn, cell_name)(3, 6, key=k1), eqx.nn.Linear(6, 4, key=k2))

    return equinox_model(make, lambda m, x, y: mse(jax.vmap(m)(x), y), (SEQ, SEQ_Y))


def equinox_dropout():
    import equinox as eqx

    class Net(eqx.Module):
        hidden: eqx.nn.Linear
        dropout: eqx.nn.Dropout
        out: eqx.nn.Linear

        def __call__(self, x, key):
            return self.out(self.dropout(jax.nn.relu(self.hidden(x)), key=key))

    def make(key):
        k1, k2 = jax.random.split(key)
        return Net(eqx.nn.Linear(6, 16, key=k1), eqx.nn.Dropout(0.3),
                   eqx.nn.Linear(16, 3, key=k2))

    def loss(m, x, y, key):
        keys = jax.random.split(key, x.shape[0])
        return xent(jax.vmap(m)(x, keys), y)

    return equinox_model(make, loss, (X, Y, DROPOUT_KEY))


# --- haiku ---------------------------------------------------------------------------------------
def haiku_model(fn: Callable, loss_of_out: Callable, inputs: tuple, targets: tuple) -> Model:
    """``hk.transform(fn)``: params from init, the loss of ``apply(params, None, *inputs)``."""
    import haiku as hk

    f = hk.transform(fn)
    params = f64(jax.jit(f.init)(KEY, *inputs))
    return Model(lambda p, inp, tgt: loss_of_out(f.apply(p, None, *inp), *tgt), params,
                 (inputs, targets))


def haiku_mlp():
    import haiku as hk

    return haiku_model(lambda x: hk.nets.MLP([16, 16, 3], activation=jax.nn.relu)(x), xent,
                       (X,), (Y,))


def haiku_convnet_zero_bias():
    import haiku as hk

    def net(x):  # [B, 8, 8, 1]; haiku's default b_init: zeros
        x = jax.nn.relu(hk.Conv2D(4, 3)(x))
        x = hk.max_pool(x, window_shape=(1, 2, 2, 1), strides=(1, 2, 2, 1), padding="VALID")
        return hk.Linear(3)(hk.Flatten()(x))

    return haiku_model(net, xent, (IMAGES,), (IMAGE_Y,))


def haiku_recurrent(core_name: str):
    import haiku as hk

    def net(xs):  # xs: [T, B, 3], time major
        core = getattr(hk, core_name)(6)
        outs, _ = hk.dynamic_unroll(core, xs, core.initial_state(xs.shape[1]))
        return hk.Linear(4)(outs[-1])

    return haiku_model(net, mse, (np.swapaxes(SEQ, 0, 1),), (SEQ_Y,))


def haiku_batchnorm_train():
    import haiku as hk

    def net(x, is_training):
        x = hk.Linear(8)(x)
        x = hk.BatchNorm(create_scale=True, create_offset=True, decay_rate=0.9)(x, is_training)
        return hk.Linear(3)(jax.nn.relu(x))

    f = hk.transform_with_state(net)
    params, state = f64(jax.jit(f.init, static_argnums=2)(KEY, X, True))

    def loss(params, state, x, y):
        logits, new_state = f.apply(params, state, None, x, True)
        return xent(logits, y), new_state

    return Model(loss, params, (state, X, Y), has_aux=True)


def haiku_dropout():
    import haiku as hk

    def net(x):
        x = jax.nn.relu(hk.Linear(16)(x))
        return hk.Linear(3)(hk.dropout(hk.next_rng_key(), 0.3, x))

    f = hk.transform(net)
    params = f64(jax.jit(f.init)(KEY, X))
    return Model(lambda p, x, y, key: xent(f.apply(p, key, x), y), params, (X, Y, DROPOUT_KEY))
