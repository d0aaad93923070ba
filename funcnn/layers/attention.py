"""Scaled dot-product attention and a multi-head self-attention layer.

Masks are boolean with True = attend (keep). Masked logits are replaced by the most negative
finite number of their dtype (not -inf), so softmax never computes inf - inf; a row whose keys
are all masked would then spread its weight evenly, so its weights are set to 0 instead: a
fully masked query returns zeros, with zero gradient, never NaN.
"""
import math

import jax
import jax.numpy as jnp

from funcnn.activations import softmax
from funcnn.initializers import glorot_uniform, zeros
from funcnn.layers.base import Layer, LayerError


def scaled_dot_product_attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d) with masked logits removed) v.

    Args:
        q: [..., tq, d] queries.
        k: [..., tk, d] keys.
        v: [..., tk, dv] values.
        mask: optional bool, broadcastable to [..., tq, tk]; True = attend.

    Returns: [..., tq, dv].

    Example:
        >>> y = scaled_dot_product_attention(q, k, v, mask=jnp.tril(jnp.ones((t, t), bool)))
    """
    logits = jnp.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.shape[-1])  # [..., tq, tk]
    if mask is None:
        weights = softmax(logits, axis=-1)
    else:
        mask = jnp.broadcast_to(mask, logits.shape)
        weights = softmax(jnp.where(mask, logits, jnp.finfo(logits.dtype).min), axis=-1)
        weights = jnp.where(mask, weights, 0)
    return jnp.einsum("...qk,...kd->...qd", weights, v)


def multi_head_self_attention(num_heads, causal=False, w_init=glorot_uniform, b_init=zeros):
    """Multi-head self-attention (Vaswani et al. 2017), kind ``"attention"``.

    q, k, v = x @ wq + bq, x @ wk + bk, x @ wv + bv, split into ``num_heads`` heads of size
    width / num_heads; each head attends with ``scaled_dot_product_attention``; the heads are
    concatenated and mapped by ``wo, bo``.

    Args:
        num_heads: must divide the width.
        causal: if True, position t attends only to positions <= t.

    Params: ``wq, wk, wv, wo: [width, width]``, ``bq, bk, bv, bo: [width]``.
    Shapes: ``x: [batch, time, width] -> y: [batch, time, width]``.
    ``apply(params, x, padding_mask=None)``: ``padding_mask: [batch, time]`` bool, True for
    real tokens; padded positions are never attended to (their own outputs are not defined
    to mean anything; ignore them downstream).

    Example: ``multi_head_self_attention(4, causal=True)`` on x: [batch, time, 32].
    """

    def init(key, in_shape):
        width = in_shape[-1]
        if len(in_shape) != 3 or width % num_heads:
            raise LayerError("attention", f"expected x [batch, time, width] with width "
                                          f"divisible by num_heads={num_heads}, got shape "
                                          f"{tuple(in_shape)} (width {width})")
        params = {}
        for name, sub_key in zip("qkvo", jax.random.split(key, 4), strict=True):
            w_key, b_key = jax.random.split(sub_key)
            params["w" + name] = w_init(w_key, (width, width))
            params["b" + name] = b_init(b_key, (width,))
        return tuple(in_shape), params

    def project(params, name, x):
        y = x @ params["w" + name]
        return y + jnp.broadcast_to(params["b" + name], y.shape)

    def apply(params, x, padding_mask=None, **kwargs):
        width = params["wq"].shape[0]
        if x.ndim != 3 or x.shape[-1] != width:
            raise LayerError("attention", f"expected x [batch, time, {width}], got shape "
                                          f"{x.shape}")
        batch, time, _ = x.shape
        head = width // num_heads

        def split(y):  # [batch, time, width] -> [batch, heads, time, head]
            return y.reshape(batch, time, num_heads, head).transpose(0, 2, 1, 3)

        q, k, v = (split(project(params, name, x)) for name in "qkv")
        mask = jnp.ones((batch, 1, time, time), bool)
        if causal:
            mask = mask & jnp.tril(jnp.ones((time, time), bool))[None, None]
        if padding_mask is not None:
            if padding_mask.shape != (batch, time):
                raise LayerError("attention", f"expected padding_mask [batch, time] = "
                                              f"{(batch, time)}, got shape "
                                              f"{padding_mask.shape}")
            mask = mask & padding_mask[:, None, None, :].astype(bool)
        y = scaled_dot_product_attention(q, k, v, mask)  # [batch, heads, time, head]
        y = y.transpose(0, 2, 1, 3).reshape(batch, time, width)
        return project(params, "o", y)

    return Layer(init, apply, "attention")
