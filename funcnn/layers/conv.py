"""Convolution and pooling on NHWC images, and ``flatten``.

Images are ``x: [batch, height, width, channels]``; kernels are HWIO
``w: [kh, kw, in_channels / groups, out_channels]``. ``padding`` is ``"SAME"``, ``"VALID"`` or
explicit ``[(top, bottom), (left, right)]``. Output shapes are computed by ``jax.eval_shape``
of the apply function, so they agree with it by construction.
"""
import math

import jax
import jax.numpy as jnp
from jax import lax

from funcnn.initializers import glorot_uniform, zeros
from funcnn.layers.base import Layer, LayerError


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _padding(padding):
    return padding if isinstance(padding, str) else [tuple(p) for p in padding]


def _check_image(kind, shape, channels=None):
    if len(shape) != 4 or (channels is not None and shape[-1] != channels):
        want = "C" if channels is None else channels
        raise LayerError(kind, f"expected x [batch, height, width, {want}] (NHWC), got shape "
                               f"{tuple(shape)}")


def _out_shape(apply, params, in_shape):
    """Shape of apply(params, x) for x: in_shape, the batch kept as given (-1 allowed)."""
    probe = jax.ShapeDtypeStruct((1,) + tuple(in_shape[1:]), jnp.zeros(()).dtype)
    out = jax.eval_shape(lambda x: apply(params, x), probe)
    return (in_shape[0],) + out.shape[1:]


def conv2d(out_channels, kernel_size, strides=1, padding="SAME", dilation=1,
           feature_group_count=1, w_init=glorot_uniform, b_init=zeros):
    """2-D convolution (cross-correlation, as in the notes and every framework) plus bias.

    y[n, i, j, o] = b[o] + sum_{di, dj, c} x_pad[n, i*sh + di*dh, j*sw + dj*dw, g*cg + c]
    * w[di, dj, c, o], where g = o // (out_channels / groups) is o's group and cg the input
    channels per group.

    Args:
        out_channels: O; must be divisible by ``feature_group_count``.
        kernel_size, strides, dilation: int or (h, w) pair (dilation is the kernel's).
        padding: "SAME", "VALID" or [(top, bottom), (left, right)].
        feature_group_count: groups; in_channels must be divisible by it.

    Params: ``w: [kh, kw, in_channels / groups, out_channels]``, ``b: [out_channels]``.
    Shapes: ``x: [batch, h, w, in_channels] -> y: [batch, h', w', out_channels]``.

    Example: ``conv2d(16, 3, strides=2)`` on x: [batch, 8, 8, 1] gives [batch, 4, 4, 16].
    """
    kernel_size, strides, dilation = _pair(kernel_size), _pair(strides), _pair(dilation)
    pad = _padding(padding)
    groups = feature_group_count

    def init(key, in_shape):
        _check_image("conv2d", in_shape)
        in_channels = in_shape[-1]
        if in_channels % groups or out_channels % groups:
            raise LayerError("conv2d", f"expected in_channels ({in_channels}) and "
                                       f"out_channels ({out_channels}) divisible by "
                                       f"feature_group_count {groups}")
        w_key, b_key = jax.random.split(key)
        params = {"w": w_init(w_key, kernel_size + (in_channels // groups, out_channels)),
                  "b": b_init(b_key, (out_channels,))}
        return _out_shape(apply, params, in_shape), params

    def apply(params, x, **kwargs):
        _check_image("conv2d", x.shape, params["w"].shape[2] * groups)
        dtype = jnp.result_type(x, params["w"])  # promote as dense's x @ w does
        y = lax.conv_general_dilated(
            x.astype(dtype), params["w"].astype(dtype), window_strides=strides, padding=pad,
            rhs_dilation=dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=groups)
        return y + jnp.broadcast_to(params["b"], y.shape)

    return Layer(init, apply, "conv2d")


def _pool(kind, reduce, window, strides, padding):
    window = _pair(window)
    strides = window if strides is None else _pair(strides)
    dims, steps, pad = (1,) + window + (1,), (1,) + strides + (1,), _padding(padding)
    if not isinstance(pad, str):
        pad = [(0, 0)] + pad + [(0, 0)]

    def init(key, in_shape):
        _check_image(kind, in_shape)
        return _out_shape(apply, {}, in_shape), {}

    def apply(params, x, **kwargs):
        _check_image(kind, x.shape)
        return reduce(x, dims, steps, pad)

    return Layer(init, apply, kind)


def max_pool(window, strides=None, padding="VALID"):
    """Maximum over each window (padding counts as -inf), per channel.

    Args: window, strides (default: the window) int or (h, w); padding as in ``conv2d``.
    Shapes: ``x: [batch, h, w, c] -> y: [batch, h', w', c]``; params ``{}``.

    Example: ``max_pool(2)`` on [batch, 8, 8, c] gives [batch, 4, 4, c].
    """

    def reduce(x, dims, steps, pad):
        return lax.reduce_window(x, -jnp.inf, lax.max, dims, steps, pad)

    return _pool("max_pool", reduce, window, strides, padding)


def avg_pool(window, strides=None, padding="VALID"):
    """Mean over each window, per channel; padded cells are not counted in the mean.

    Args: window, strides (default: the window) int or (h, w); padding as in ``conv2d``.
    Shapes: ``x: [batch, h, w, c] -> y: [batch, h', w', c]``; params ``{}``.

    Example: ``avg_pool(2, strides=1, padding="SAME")``.
    """

    def reduce(x, dims, steps, pad):
        total = lax.reduce_window(x, 0.0, lax.add, dims, steps, pad)
        count = lax.reduce_window(jnp.ones_like(x), 0.0, lax.add, dims, steps, pad)
        return total / count

    return _pool("avg_pool", reduce, window, strides, padding)


def flatten():
    """Flatten all but the batch axis: ``x: [batch, ...] -> y: [batch, prod(...)]``.

    Example: ``flatten()`` on [batch, 4, 4, 16] gives [batch, 256].
    """

    def init(key, in_shape):
        return (in_shape[0], math.prod(in_shape[1:])), {}

    def apply(params, x, **kwargs):
        return x.reshape(x.shape[0], -1)

    return Layer(init, apply, "flatten")
