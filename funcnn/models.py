"""Models of the notes, built from layers: mlp, cnn, rnn, transformer, linear regression.

Each constructor returns ``Model(init, apply, loss, layer_names)``:

- ``init(key) -> params``: a nested dict keyed by readable paths
  (``params["block_0"]["attention"]["self_attention"]["wq"]``);
- ``apply(params, x, taps=None, with_intermediates=False, **kwargs)``: the top-level
  ``serial``'s apply: logits (or predictions); ``taps={name: array}`` adds the array to that
  layer's output, so the gradient with respect to a zero tap is the adjoint dL/d(output);
- ``loss(params, batch, taps=None) -> scalar`` with ``batch = (x, y)``;
- ``layer_names``: the top-level layer names in forward order (the names ``taps`` accepts).

Classifiers take integer labels ``y: [batch]`` and use ``cross_entropy``.

Example:
    >>> model = mlp(4, hidden=(8,), num_classes=3)
    >>> params = model.init(jax.random.key(0))
    >>> value = model.loss(params, (jnp.ones((2, 4)), jnp.array([0, 2])))
    >>> g = jax.grad(model.loss)(params, (jnp.ones((2, 4)), jnp.array([0, 2])))
"""
from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp

from funcnn.layers import (
    Layer,
    conv2d,
    dense,
    elman_rnn,
    flatten,
    gelu_layer,
    last_state,
    layer_norm,
    multi_head_self_attention,
    positional_embedding,
    relu_layer,
    residual,
    serial,
    sublayer_names,
)
from funcnn.layers import activation as activation_layer
from funcnn.losses import cross_entropy, l2_penalty, mean_squared_error


class Model(NamedTuple):
    """init(key) -> params; apply(params, x, taps=None); loss(params, batch); layer_names."""

    init: Callable
    apply: Callable
    loss: Callable
    layer_names: tuple


def _model(layers, in_shape, loss_fn, penalty=None):
    """Model over ``serial(*layers)``; loss = loss_fn(apply(x), y) [+ penalty(params)]."""
    names = sublayer_names(layers)
    net = serial(*layers, names=names)

    def init(key):
        return net.init(key, in_shape)[1]

    def loss(params, batch, taps=None):
        x, y = batch
        value = loss_fn(net.apply(params, x, taps=taps), y)
        return value if penalty is None else value + penalty(params)

    return Model(init, net.apply, loss, names)


def mlp(in_features, hidden=(64,), num_classes=10, activation="relu", l2=0.0):
    """Multilayer perceptron: (dense, activation) per hidden size, then a dense head.

    x: [batch, in_features] -> logits [batch, num_classes]. ``activation`` is a name in
    ``ACTIVATIONS`` or a function. Layers dense_0, relu_0, ..., dense_{len(hidden)}.
    Loss: cross_entropy + l2 * (sum of squares of every dense ``w``; biases are not
    penalised).

    Example: ``mlp(784, hidden=(128, 64), num_classes=10, l2=1e-4)``.
    """
    layers = []
    for size in hidden:
        layers += [dense(size), activation_layer(activation)]
    layers.append(dense(num_classes))
    weights = [n for n, layer in zip(sublayer_names(layers), layers, strict=True)
               if layer.name == "dense"]
    penalty = None
    if l2 > 0:
        penalty = lambda params: l2 * l2_penalty([params[n]["w"] for n in weights])
    return _model(layers, (-1, in_features), cross_entropy, penalty)


def cnn(in_shape=(8, 8, 1), channels=(16, 32), num_classes=10):
    """Convolutional classifier on NHWC images x: [batch, h, w, c] -> logits [batch, classes].

    One 3x3 SAME conv + relu per entry of ``channels``: the first with stride 1, each later one
    with stride 2 (halving h and w); then flatten and a dense head. Layers conv2d_0, relu_0,
    conv2d_1, relu_1, flatten_0, dense_0 for the default channels.

    Example: ``cnn(in_shape=(28, 28, 1), channels=(8, 16))``.
    """
    layers = []
    for i, out_channels in enumerate(channels):
        layers += [conv2d(out_channels, 3, strides=1 if i == 0 else 2), relu_layer]
    layers += [flatten(), dense(num_classes)]
    return _model(layers, (-1,) + tuple(in_shape), cross_entropy)


def rnn(in_features, hidden=64, num_classes=10):
    """Elman RNN classifier: x: [batch, time, in_features] -> logits [batch, classes].

    Layers elman_rnn_0 (all states), last_state_0 (h_T), dense_0 (the head).

    Example: ``rnn(8, hidden=32, num_classes=4)``.
    """
    layers = [elman_rnn(hidden), last_state(), dense(num_classes)]
    return _model(layers, (-1, -1, in_features), cross_entropy)


def _mean_pool():
    """Mean over time: x: [batch, time, width] -> [batch, width]; with ``padding_mask:
    [batch, time]`` (True = real token) the mean is over real tokens only."""

    def init(key, in_shape):
        return (in_shape[0],) + tuple(in_shape[2:]), {}

    def apply(params, x, padding_mask=None, **kwargs):
        if padding_mask is None:
            return jnp.mean(x, axis=1)
        weight = padding_mask.astype(x.dtype)[:, :, None]  # [batch, time, 1]
        total = jnp.sum(x * jnp.broadcast_to(weight, x.shape), axis=1)  # [batch, width]
        return total / jnp.maximum(jnp.sum(weight, axis=1), 1)

    return Layer(init, apply, "mean_pool")


def _encoder_block(width, num_heads, causal):
    """Pre-norm block: x + attention(layer_norm(x)), then x + mlp(layer_norm(x))."""
    attention = serial(layer_norm(), multi_head_self_attention(num_heads, causal),
                       names=("norm", "self_attention"))
    feed_forward = serial(layer_norm(), dense(4 * width), gelu_layer, dense(width),
                          names=("norm", "dense_0", "gelu", "dense_1"))
    return serial(residual(attention), residual(feed_forward), names=("attention", "mlp"),
                  name="block")


def transformer(in_features, width=32, num_heads=4, depth=1, num_classes=10, max_len=64,
                causal=False):
    """Transformer encoder classifier: x: [batch, time <= max_len, in_features] -> logits.

    Layers: dense_0 (projection to ``width``), positional_embedding_0 (learned), block_0 ..
    block_{depth-1} (pre-norm: attention, then a 4*width gelu mlp, each with a residual),
    layer_norm_0, mean_pool_0 (over time), dense_1 (the head). ``apply`` accepts
    ``padding_mask: [batch, time]`` (True = real token) for attention and the mean.

    Example: ``transformer(8, width=16, num_heads=2, depth=2, num_classes=3, causal=True)``.
    """
    layers = [dense(width), positional_embedding(max_len)]
    layers += [_encoder_block(width, num_heads, causal) for _ in range(depth)]
    layers += [layer_norm(), _mean_pool(), dense(num_classes)]
    return _model(layers, (-1, -1, in_features), cross_entropy)


def _squeeze_last():
    """Drop a last axis of size 1: x: [batch, 1] -> [batch]."""

    def init(key, in_shape):
        return tuple(in_shape[:-1]), {}

    def apply(params, x, **kwargs):
        return x[..., 0]

    return Layer(init, apply, "squeeze")


def linear_regression(in_features):
    """y_hat = x @ w + b: x: [batch, in_features] -> [batch]; loss mean squared error.

    Layers dense_0 (``w: [in_features, 1]``, ``b: [1]``) and squeeze_0. Targets y: [batch].

    Example: ``linear_regression(3).loss(params, (x, y))``.
    """
    return _model([dense(1), _squeeze_last()], (-1, in_features), mean_squared_error)
