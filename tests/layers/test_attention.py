"""Attention against the formula computed by hand in NumPy, with padding and causal masks."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.layers import (
    LayerError,
    multi_head_self_attention,
    scaled_dot_product_attention,
    serial,
)
from tests.helpers import assert_trees_close

RNG = np.random.default_rng(0)


def np_attend(q, k, v, keep):
    """One query: softmax over the kept keys of q.k / sqrt(d), times v; zeros if none kept."""
    if not keep:
        return np.zeros(v.shape[-1])
    logits = np.array([q @ k[j] / math.sqrt(q.shape[-1]) for j in keep])
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    return sum(w * v[j] for w, j in zip(weights, keep, strict=True))


MASKS = [
    ("none", None),
    ("some", np.array([[True, False, True, True], [False, True, False, True],
                       [True, True, True, False]])),
    ("fully_masked_row", np.array([[True, False, False, True], [False] * 4, [True] * 4])),
]


@pytest.mark.parametrize("name, mask", MASKS, ids=[m[0] for m in MASKS])
def test_scaled_dot_product_attention_by_hand(name, mask):
    q, k, v = RNG.normal(size=(2, 3, 5)), RNG.normal(size=(2, 4, 5)), RNG.normal(size=(2, 4, 2))
    expected = np.zeros((2, 3, 2))
    for b in range(2):
        for i in range(3):
            keep = [j for j in range(4) if mask is None or mask[i, j]]
            expected[b, i] = np_attend(q[b, i], k[b], v[b], keep)
    y = jax.jit(scaled_dot_product_attention)(q, k, v, mask)
    assert_trees_close(y, expected)
    g = jax.jit(jax.grad(lambda q: jnp.sum(scaled_dot_product_attention(q, k, v, mask))))(q)
    assert np.all(np.isfinite(g))


def np_mhsa(p, x, heads, causal, padding_mask):
    batch, time, width = x.shape
    d = width // heads
    q, k, v = (x @ p["w" + n] + p["b" + n] for n in "qkv")
    out = np.zeros_like(x)
    for b in range(batch):
        for h in range(heads):
            cols = slice(h * d, (h + 1) * d)
            for i in range(time):
                keep = [j for j in range(time) if (not causal or j <= i)
                        and (padding_mask is None or padding_mask[b, j])]
                out[b, i, cols] = np_attend(q[b, i, cols], k[b, :, cols], v[b, :, cols], keep)
    return out @ p["wo"] + p["bo"]


PAD = np.array([[True, True, True, False, False], [True, True, True, True, True]])


@pytest.mark.parametrize("heads, causal, padding_mask", [
    (1, False, None), (2, False, None), (2, True, None), (3, False, PAD), (2, True, PAD),
])
def test_multi_head_self_attention_by_hand(heads, causal, padding_mask):
    layer = multi_head_self_attention(heads, causal=causal)
    out_shape, params = layer.init(jax.random.key(0), (-1, -1, 6))
    assert out_shape == (-1, -1, 6) and layer.name == "attention"
    assert sorted(params) == ["bk", "bo", "bq", "bv", "wk", "wo", "wq", "wv"]
    params = jax.tree_util.tree_map(lambda a: RNG.normal(size=a.shape), params)
    x = RNG.normal(size=(2, 5, 6))
    expected = np_mhsa(params, x, heads, causal, padding_mask)
    pm = None if padding_mask is None else jnp.array(padding_mask)
    y = jax.jit(layer.apply)(params, x, padding_mask=pm)
    if padding_mask is not None:  # outputs at padded query positions carry no meaning
        y, expected = y * padding_mask[..., None], expected * padding_mask[..., None]
    assert_trees_close(y, expected, rtol=1e-10)


@pytest.mark.parametrize("t", [0, 2, 4])
def test_causal_mask_blocks_the_future(t):
    layer = multi_head_self_attention(2, causal=True)
    _, params = layer.init(jax.random.key(0), (-1, -1, 4))
    x = jnp.array(RNG.normal(size=(1, 5, 4)))
    apply = jax.jit(layer.apply)
    y = apply(params, x)
    y_perturbed = apply(params, x.at[:, t].add(1.0))
    assert_trees_close(y_perturbed[:, :t], y[:, :t])
    assert np.abs(np.asarray(y_perturbed[:, t:] - y[:, t:])).min() > 0
    # and no gradient flows from the outputs before t back to x at t
    g = jax.jit(jax.grad(lambda x: jnp.sum(apply(params, x)[:, :t] ** 2)))(x)
    assert_trees_close(g[:, t:], np.zeros((1, 5 - t, 4)))


def test_heads_must_divide_width():
    with pytest.raises(ValueError) as info:
        serial(multi_head_self_attention(4)).init(jax.random.key(0), (-1, 7, 30))
    message = str(info.value)
    assert message.startswith("attention_0:") and "num_heads=4" in message
    assert "width 30" in message and "(-1, 7, 30)" in message


def test_bad_x_and_padding_mask_shapes():
    layer = multi_head_self_attention(2)
    _, params = layer.init(jax.random.key(0), (-1, -1, 4))
    with pytest.raises(LayerError, match=r"attention: expected x \[batch, time, 4\], got shape "
                                         r"\(2, 3, 6\)"):
        layer.apply(params, jnp.ones((2, 3, 6)))
    with pytest.raises(LayerError, match=r"attention: expected padding_mask \[batch, time\] = "
                                         r"\(2, 3\), got shape \(3,\)"):
        layer.apply(params, jnp.ones((2, 3, 4)), padding_mask=jnp.ones(3, bool))
