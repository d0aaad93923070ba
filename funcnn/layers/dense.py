"""Dense (fully connected) layer: y = x @ w + b on the last axis."""
import jax
import jax.numpy as jnp

from funcnn.initializers import glorot_uniform, zeros
from funcnn.layers.base import Layer, LayerError


def dense(out_features, w_init=glorot_uniform, b_init=zeros):
    """y = x @ w + b, applied to the last axis of x.

    Params: ``w: [in_features, out_features]``, ``b: [out_features]``.
    Shapes: ``x: [..., in_features] -> y: [..., out_features]``.

    Example:
        >>> layer = dense(3)
        >>> out_shape, params = layer.init(jax.random.key(0), (-1, 5))   # (-1, 3)
        >>> y = layer.apply(params, jnp.ones((4, 5)))                     # [4, 3]
    """

    def init(key, in_shape):
        w_key, b_key = jax.random.split(key)
        params = {"w": w_init(w_key, (in_shape[-1], out_features)),
                  "b": b_init(b_key, (out_features,))}
        return tuple(in_shape[:-1]) + (out_features,), params

    def apply(params, x, **kwargs):
        in_features = params["w"].shape[0]
        if x.ndim < 1 or x.shape[-1] != in_features:
            raise LayerError("dense", f"expected x[..., {in_features}], got shape {x.shape}")
        y = x @ params["w"]  # [..., out]
        return y + jnp.broadcast_to(params["b"], y.shape)

    return Layer(init, apply, "dense")
