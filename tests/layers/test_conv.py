"""conv2d, max_pool, avg_pool and flatten against explicit NumPy loops."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn.initializers import zeros
from funcnn.layers import LayerError, avg_pool, conv2d, flatten, max_pool, serial
from tests.helpers import assert_trees_close

RNG = np.random.default_rng(0)


def _pads(padding, size, window, strides):
    """[(top, bottom), (left, right)] for "VALID", "SAME" (XLA's rule) or explicit pairs."""
    if padding == "VALID":
        return [(0, 0), (0, 0)]
    if padding == "SAME":
        pads = []
        for n, k, s in zip(size, window, strides, strict=True):
            total = max((math.ceil(n / s) - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        return pads
    return padding


def np_conv2d(x, w, b, strides, padding, dilation, groups):
    n, h, wd, _ = x.shape
    kh, kw, cg, out = w.shape
    (sh, sw), (dh, dw) = strides, dilation
    eff = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    (pt, pb), (pl, pr) = _pads(padding, (h, wd), eff, strides)
    xp = np.pad(x, [(0, 0), (pt, pb), (pl, pr), (0, 0)])
    oh, ow = (xp.shape[1] - eff[0]) // sh + 1, (xp.shape[2] - eff[1]) // sw + 1
    y = np.zeros((n, oh, ow, out))
    for i in range(oh):
        for j in range(ow):
            for o in range(out):
                g = o // (out // groups)
                for di in range(kh):
                    for dj in range(kw):
                        for c in range(cg):
                            y[:, i, j, o] += (xp[:, i * sh + di * dh, j * sw + dj * dw, g * cg + c]
                                              * w[di, dj, c, o])
    return y + b


# (id, x shape, out channels, kernel, strides, padding, dilation, groups)
CONV_CASES = [
    ("same_s1", (2, 5, 5, 2), 3, 3, 1, "SAME", 1, 1),
    ("same_s2", (1, 5, 5, 2), 2, 3, 2, "SAME", 1, 1),
    ("same_s2_even", (1, 6, 4, 1), 2, (2, 3), (2, 1), "SAME", 1, 1),
    ("valid_s2", (1, 6, 5, 2), 2, 3, 2, "VALID", 1, 1),
    ("explicit", (1, 4, 5, 1), 2, (2, 3), (1, 2), [(1, 0), (2, 1)], 1, 1),
    ("dilated_same", (1, 6, 6, 1), 2, 3, 1, "SAME", 2, 1),
    ("dilated_explicit_s2", (1, 7, 6, 2), 1, 2, 2, [(0, 2), (1, 1)], (2, 1), 1),
    ("groups", (1, 4, 4, 4), 6, 2, 1, "VALID", 1, 2),
    ("depthwise", (1, 4, 4, 3), 3, 3, 1, "SAME", 1, 3),
]


@pytest.mark.parametrize("name, x_shape, out, kernel, strides, padding, dilation, groups",
                         CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_conv2d_matches_loops(name, x_shape, out, kernel, strides, padding, dilation, groups):
    # zeros: the values are redrawn below, and zeros skip compiling a random draw per shape
    layer = conv2d(out, kernel, strides, padding, dilation, feature_group_count=groups,
                   w_init=zeros)
    out_shape, params = layer.init(jax.random.key(0), (-1,) + x_shape[1:])
    pair = lambda v: (v, v) if isinstance(v, int) else v
    assert params["w"].shape == pair(kernel) + (x_shape[-1] // groups, out)
    w, b = RNG.normal(size=params["w"].shape), RNG.normal(size=(out,))
    x = RNG.normal(size=x_shape)
    expected = np_conv2d(x, w, b, pair(strides), padding, pair(dilation), groups)
    y = jax.jit(layer.apply)({"w": w, "b": b}, x)
    assert out_shape == (-1,) + expected.shape[1:]
    assert_trees_close(y, expected, rtol=1e-10)


def np_pool(x, reduce, window, strides, padding):
    pads = _pads(padding, x.shape[1:3], window, strides)
    xp = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=np.nan)
    oh = (xp.shape[1] - window[0]) // strides[0] + 1
    ow = (xp.shape[2] - window[1]) // strides[1] + 1
    y = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * strides[0]:i * strides[0] + window[0],
                       j * strides[1]:j * strides[1] + window[1]]
            y[:, i, j] = reduce(patch, axis=(1, 2))
    return y


# (id, window, strides, padding); window/strides given as pairs, None strides = window
POOL_CASES = [
    ("valid_2", (2, 2), None, "VALID"),
    ("valid_3_s1", (3, 3), (1, 1), "VALID"),
    ("same_3_s2", (3, 3), (2, 2), "SAME"),
    ("same_2x3_s1", (2, 3), (1, 1), "SAME"),
    ("explicit", (2, 2), (2, 1), [(1, 0), (0, 1)]),
]


@pytest.mark.parametrize("kind, layer_fn, reduce", [("max_pool", max_pool, np.nanmax),
                                                    ("avg_pool", avg_pool, np.nanmean)])
@pytest.mark.parametrize("name, window, strides, padding", POOL_CASES,
                         ids=[c[0] for c in POOL_CASES])
def test_pool_matches_loops(kind, layer_fn, reduce, name, window, strides, padding):
    layer = layer_fn(window, strides, padding)
    x = RNG.normal(size=(2, 5, 6, 2))
    out_shape, params = layer.init(jax.random.key(0), (-1, 5, 6, 2))
    expected = np_pool(x, reduce, window, window if strides is None else strides, padding)
    assert (params, layer.name, out_shape) == ({}, kind, (-1,) + expected.shape[1:])
    assert_trees_close(jax.jit(layer.apply)(params, x), expected)


def test_flatten():
    layer = flatten()
    assert layer.init(jax.random.key(0), (-1, 2, 3, 4)) == ((-1, 24), {})
    x = RNG.normal(size=(2, 2, 3, 4))
    assert_trees_close(jax.jit(layer.apply)({}, x), x.reshape(2, 24))


def test_conv2d_rank3_input_is_an_error():
    net = serial(conv2d(4, 3, w_init=zeros))
    with pytest.raises(ValueError, match=r"^conv2d_0: expected x \[batch, height, width, C\] "
                                         r"\(NHWC\), got shape \(-1, 8, 8\)$"):
        net.init(jax.random.key(0), (-1, 8, 8))
    _, params = net.init(jax.random.key(0), (-1, 8, 8, 2))
    with pytest.raises(LayerError, match=r"^conv2d_0: expected x \[batch, height, width, 2\] "
                                         r"\(NHWC\), got shape \(8, 8, 2\)$"):
        net.apply(params, jnp.ones((8, 8, 2)))
    with pytest.raises(LayerError, match="divisible by feature_group_count 2"):
        conv2d(3, 3, feature_group_count=2).init(jax.random.key(0), (-1, 4, 4, 2))


def test_conv2d_promotes_mixed_dtypes_like_dense():
    layer = conv2d(2, 3)
    _, params = layer.init(jax.random.PRNGKey(0), (-1, 5, 5, 1))  # float64 under x64
    x = np.ones((1, 5, 5, 1), np.float32)
    y = layer.apply(params, jnp.asarray(x))
    expected = layer.apply(params, jnp.asarray(x, jnp.float64))
    assert y.dtype == jnp.float64
    assert_trees_close(y, expected)
