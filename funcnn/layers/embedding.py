"""Embeddings: a lookup table for integer ids, and a learned positional embedding."""
import jax
import jax.numpy as jnp
import numpy as np

from funcnn.initializers import normal
from funcnn.layers.base import Layer, LayerError


def embedding(vocab, features, init=None):
    """Look up ids in a table: ``ids: [...] int -> y: [..., features]``; y = table[ids].

    Params: ``table: [vocab, features]``, drawn by ``init`` (default ``normal(1.0)``).
    Concrete ids outside [0, vocab) are an error; under jit/vmap they cannot be checked and
    gather NaN (``jnp.take``'s fill mode).

    Example: ``embedding(100, 16)`` on ids: [batch, time] gives [batch, time, 16].
    """

    draw = normal(1.0) if init is None else init

    def init_fn(key, in_shape):
        return tuple(in_shape) + (features,), {"table": draw(key, (vocab, features))}

    def apply(params, ids, **kwargs):
        ids = jnp.asarray(ids)
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise TypeError(f"embedding: expected integer ids, got dtype {ids.dtype} "
                            f"(shape {ids.shape})")
        if not isinstance(ids, jax.core.Tracer):
            host = np.asarray(ids)
            bad = (host < 0) | (host >= vocab)
            if bad.any():
                raise LayerError("embedding", f"expected ids in [0, {vocab}), got "
                                              f"{host[bad][0]} (ids shape {ids.shape})")
        return jnp.take(params["table"], ids, axis=0, mode="fill", fill_value=jnp.nan)

    return Layer(init_fn, apply, "embedding")


def positional_embedding(max_len, init=None):
    """Add a learned vector per position: ``x: [batch, time, width] -> same``, time <= max_len.

    y[:, t] = x[:, t] + table[t]. Params: ``table: [max_len, width]``, drawn by ``init``
    (default ``normal(0.02)``).

    Example: ``serial(dense(32), positional_embedding(64))``.
    """

    draw = normal(0.02) if init is None else init

    def init_fn(key, in_shape):
        return tuple(in_shape), {"table": draw(key, (max_len, in_shape[-1]))}

    def apply(params, x, **kwargs):
        width = params["table"].shape[1]
        if x.ndim != 3 or x.shape[1] > max_len or x.shape[2] != width:
            raise LayerError("positional_embedding", f"expected x [batch, time <= {max_len}, "
                                                     f"{width}], got shape {x.shape}")
        return x + jnp.broadcast_to(params["table"][: x.shape[1]], x.shape)

    return Layer(init_fn, apply, "positional_embedding")
