"""Layers: pairs of pure functions, composed by combinators.

The contract, for every layer in this package:

- A constructor (``dense(3)``, ``conv2d(16, 3)``, ...) returns ``Layer(init, apply, name)``, a
  pair: ``init, apply = layer`` (as stax), or ``layer.init`` / ``layer.apply``; ``layer.name``.
- ``init(key, in_shape) -> (out_shape, params)``. ``in_shape`` is the full input shape with a
  leading batch dim given as -1 or any int (``(-1, 64)``); ``out_shape`` keeps it as given.
- ``apply(params, x, **kwargs) -> y``. Keyword arguments a layer does not use are ignored, so
  ``serial`` passes them all down (e.g. ``padding_mask`` for attention).
- ``params`` is a nested dict of arrays with readable keys (``{"w": ..., "b": ...}``); a layer
  without parameters has ``{}``. Hyperparameters live in the closure, never in the pytree.
- ``name`` is the layer's kind (``"dense"``); ``serial`` names its sublayers
  ``f"{kind}_{i}"``, which become the parameter keys: ``{"dense_0": {"w": ..., "b": ...}}``.
- Bad input raises ``LayerError`` (a ``ValueError``) naming the layer's path, what was
  expected and the shape that came: ``dense_0: expected x[..., 5], got shape (4, 3)``.
- Everything is pure ``jax.numpy``/``lax``: it jits, vmaps and differentiates, and it never
  relies on implicit rank promotion.

Example:
    >>> import jax
    >>> from funcnn.layers import dense, relu_layer, serial
    >>> net = serial(dense(8), relu_layer, dense(3))
    >>> out_shape, params = net.init(jax.random.key(0), (-1, 5))   # (-1, 3)
    >>> y = net.apply(params, jax.numpy.ones((4, 5)))               # [4, 3]
"""
from funcnn.layers.activation_layer import (
    activation,
    gelu_layer,
    relu_layer,
    sigmoid_layer,
    tanh_layer,
)
from funcnn.layers.attention import multi_head_self_attention, scaled_dot_product_attention
from funcnn.layers.base import Layer, LayerError
from funcnn.layers.combinators import (
    fan_in_sum,
    fan_out,
    intermediates,
    parallel,
    residual,
    serial,
    sublayer_names,
)
from funcnn.layers.conv import avg_pool, conv2d, flatten, max_pool
from funcnn.layers.dense import dense
from funcnn.layers.embedding import embedding, positional_embedding
from funcnn.layers.norm import layer_norm
from funcnn.layers.recurrent import (
    elman_cell,
    elman_rnn,
    gru,
    gru_cell,
    last_state,
    lstm,
    lstm_cell,
)

__all__ = [
    "Layer", "LayerError",
    "serial", "parallel", "fan_out", "fan_in_sum", "residual", "intermediates",
    "sublayer_names",
    "dense", "activation", "relu_layer", "sigmoid_layer", "tanh_layer", "gelu_layer",
    "conv2d", "max_pool", "avg_pool", "flatten",
    "elman_cell", "elman_rnn", "lstm_cell", "lstm", "gru_cell", "gru", "last_state",
    "scaled_dot_product_attention", "multi_head_self_attention",
    "layer_norm", "embedding", "positional_embedding",
]
