"""Layer normalisation over the last axis."""
import jax.numpy as jnp

from funcnn.initializers import ones, zeros
from funcnn.layers.base import Layer, LayerError


def layer_norm(eps=1e-5):
    """y = (x - mean) / sqrt(var + eps) * scale + bias, statistics over the last axis.

    var is the biased (1/n) variance, as in Ba et al. 2016 and every framework.
    Params: ``scale: [features]`` (ones), ``bias: [features]`` (zeros).
    Shapes: ``x: [..., features] -> y: [..., features]``.

    Example: ``layer_norm()`` on x: [batch, time, 32].
    """

    def init(key, in_shape):
        features = in_shape[-1]
        return tuple(in_shape), {"scale": ones(key, (features,)), "bias": zeros(key, (features,))}

    def apply(params, x, **kwargs):
        features = params["scale"].shape[0]
        if x.ndim < 1 or x.shape[-1] != features:
            raise LayerError("layer_norm", f"expected x[..., {features}], got shape {x.shape}")
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        normed = (x - mean) / jnp.sqrt(var + eps)
        return (normed * jnp.broadcast_to(params["scale"], x.shape)
                + jnp.broadcast_to(params["bias"], x.shape))

    return Layer(init, apply, "layer_norm")
