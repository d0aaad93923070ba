"""VJP rule of conv_general_dilated: both operands, any dimension numbers, window strides,
explicit padding (negative too), lhs and rhs dilation, feature or batch groups.

A convolution is bilinear, and each transpose is itself a convolution (JAX's
``_conv_general_dilated_transpose_lhs/_rhs``). Ignoring space, with m = batch, j = input
feature, k = output feature, the forward contraction is [m, j] [j, k] -> [m, k], so

    lhs: [m, k] [k, j] -> [m, j]   ct correlated with the flipped kernel, I and O swapped;
                                   window strides become lhs dilation and vice versa.
    rhs: [j, m] [m, k] -> [j, k]   lhs correlated with ct, the batch playing the feature;
                                   window strides become rhs dilation.

Feature groups: the lhs transpose moves the group from the kernel's O into its I; the rhs
transpose is a batch-grouped convolution. Batch groups: the other way round.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn.backprop import sharding_jax as sj
from funcnn.backprop.registry import defvjp, is_float, like


def dilate_shape(shape, dilation):
    """The extent of ``shape`` after inserting ``dilation - 1`` holes between elements."""
    return tuple(0 if n == 0 else 1 + r * (n - 1) for n, r in zip(shape, dilation, strict=True))


def lhs_vjp_padding(in_shape, window_shape, window_strides, out_shape, padding, lhs_dilation,
                    rhs_dilation):
    """Padding of the transposed convolution that maps ct: ``out_shape`` back onto
    ``in_shape`` (spatial dims only). Also serves ``reduce_window_sum``."""
    lhs_d = dilate_shape(in_shape, lhs_dilation)
    rhs_d = dilate_shape(window_shape, rhs_dilation)
    out_d = dilate_shape(out_shape, window_strides)
    before = [r - lo - 1 for r, (lo, _) in zip(rhs_d, padding, strict=True)]
    after = [i + r - 1 - o - b for i, r, o, b in zip(lhs_d, rhs_d, out_d, before, strict=True)]
    return [(int(b), int(a)) for b, a in zip(before, after, strict=True)]


def rhs_vjp_padding(in_shape, window_shape, window_strides, out_shape, padding, lhs_dilation,
                    rhs_dilation):
    """Padding of lhs in the convolution that gives the kernel's cotangent (spatial dims)."""
    lhs_d = dilate_shape(in_shape, lhs_dilation)
    rhs_d = dilate_shape(window_shape, rhs_dilation)
    out_d = dilate_shape(out_shape, window_strides)
    return [(int(lo), int(o - i + r - lo - 1))
            for (lo, _), i, r, o in zip(padding, lhs_d, rhs_d, out_d, strict=True)]


def split_axis(x, axis, groups):
    """[..., n, ...] -> [..., groups, n // groups, ...] at ``axis``."""
    shape = list(x.shape)
    shape[axis:axis + 1] = [groups, shape[axis] // groups]
    return lax.reshape(x, tuple(shape))


def merge_axis(x, src, dst):
    """Remove axis ``src`` and fold it into axis ``dst`` (numbered after the removal), as the
    slower-varying factor: [..., g, ..., n, ...] -> [..., g * n, ...]."""
    perm = [i for i in range(x.ndim) if i != src]
    perm.insert(dst, src)
    moved = lax.transpose(x, tuple(perm))
    shape = [x.shape[i] for i in range(x.ndim) if i != src]
    shape[dst] *= x.shape[src]
    return lax.reshape(moved, tuple(shape))


def swap_io(spec):
    """The spec with its first two entries (N/C or O/I) swapped."""
    return (spec[1], spec[0]) + tuple(spec[2:])


def transpose_lhs(ct, lhs_shape, rhs, *, window_strides, padding, lhs_dilation, rhs_dilation,
                  dimension_numbers, feature_group_count, batch_group_count, precision,
                  preferred_element_type, out_sharding=None):
    """d<ct, conv(lhs, rhs)>/d lhs; ct: the output's layout, result: ``lhs_shape``, placed by
    ``out_sharding`` (lhs's on an explicit mesh, as JAX's transpose: the convolution
    contracts over the output features, whose sharding JAX does not infer)."""
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    rhs_shape = rhs.shape
    groups = 1
    if feature_group_count > 1:  # the group moves from the kernel's O into its I
        rhs = merge_axis(split_axis(rhs, rhs_spec[0], feature_group_count),
                         rhs_spec[0], rhs_spec[1])
        groups = feature_group_count
    elif batch_group_count > 1:
        rhs = merge_axis(split_axis(rhs, rhs_spec[0], batch_group_count),
                         rhs_spec[0], rhs_spec[1])
        groups = batch_group_count
    dims = lax.ConvDimensionNumbers(out_spec, swap_io(rhs_spec), lhs_spec)
    pads = lhs_vjp_padding(np.take(lhs_shape, lhs_spec[2:]), np.take(rhs_shape, rhs_spec[2:]),
                           window_strides, np.take(ct.shape, out_spec[2:]), padding,
                           lhs_dilation, rhs_dilation)
    flipped = lax.rev(rhs, tuple(rhs_spec[2:]))
    if flipped.dtype != ct.dtype:
        flipped = lax.convert_element_type(flipped, ct.dtype)
    out = lax.conv_general_dilated(
        ct, flipped, window_strides=lhs_dilation, padding=pads, lhs_dilation=window_strides,
        rhs_dilation=rhs_dilation, dimension_numbers=dims, feature_group_count=groups,
        batch_group_count=1, precision=precision, preferred_element_type=preferred_element_type,
        out_sharding=out_sharding)
    if batch_group_count > 1:  # the batch groups came out as features: move them back
        out = merge_axis(split_axis(out, lhs_spec[1], batch_group_count),
                         lhs_spec[1], lhs_spec[0])
    return out


def transpose_rhs(ct, lhs, rhs_shape, *, window_strides, padding, lhs_dilation, rhs_dilation,
                  dimension_numbers, feature_group_count, batch_group_count, precision,
                  preferred_element_type, out_sharding=None):
    """d<ct, conv(lhs, rhs)>/d rhs; result: ``rhs_shape``, placed by ``out_sharding`` (rhs's
    on an explicit mesh, as JAX's transpose: it contracts over the batch)."""
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    if feature_group_count > 1:
        feature_group_count, batch_group_count = 1, feature_group_count
    elif batch_group_count > 1:
        feature_group_count, batch_group_count = batch_group_count, 1
    dims = lax.ConvDimensionNumbers(swap_io(lhs_spec), swap_io(out_spec), swap_io(rhs_spec))
    pads = rhs_vjp_padding(np.take(lhs.shape, lhs_spec[2:]), np.take(rhs_shape, rhs_spec[2:]),
                           window_strides, np.take(ct.shape, out_spec[2:]), padding,
                           lhs_dilation, rhs_dilation)
    if lhs.dtype != ct.dtype:
        lhs = lax.convert_element_type(lhs, ct.dtype)
    return lax.conv_general_dilated(
        lhs, ct, window_strides=rhs_dilation, padding=pads, lhs_dilation=lhs_dilation,
        rhs_dilation=window_strides, dimension_numbers=dims,
        feature_group_count=feature_group_count, batch_group_count=batch_group_count,
        precision=precision, preferred_element_type=preferred_element_type,
        out_sharding=out_sharding)


@defvjp("conv_general_dilated")
def _conv_general_dilated(ct, lhs, rhs, *, out, window_strides, padding, lhs_dilation,
                          rhs_dilation, dimension_numbers, feature_group_count=1,
                          batch_group_count=1, precision=None, preferred_element_type=None,
                          **_):
    if not isinstance(dimension_numbers, lax.ConvDimensionNumbers):  # pragma: no cover
        raise TypeError("conv_general_dilated: expected ConvDimensionNumbers in the jaxpr, "
                        f"got {dimension_numbers!r}")
    params = dict(window_strides=tuple(window_strides),
                  padding=[tuple(p) for p in padding], lhs_dilation=tuple(lhs_dilation),
                  rhs_dilation=tuple(rhs_dilation), dimension_numbers=dimension_numbers,
                  feature_group_count=feature_group_count,
                  batch_group_count=batch_group_count, precision=precision,
                  preferred_element_type=preferred_element_type)
    lhs, rhs = jnp.asarray(lhs), jnp.asarray(rhs)
    ct_lhs = ct_rhs = None
    if is_float(lhs):
        ct_lhs = like(transpose_lhs(ct, lhs.shape, rhs, **params,
                                    out_sharding=sj.sharding_of(lhs)), lhs)
    if is_float(rhs):
        if ct.size == 0:  # a kernel of spatial size 0 would follow; the cotangent is zero
            ct_rhs = sj.zeros_like(rhs)
        else:
            ct_rhs = like(transpose_rhs(ct, lhs, rhs.shape, **params,
                                        out_sharding=sj.sharding_of(rhs)), rhs)
    return (ct_lhs, ct_rhs)
