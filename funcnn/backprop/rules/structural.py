"""VJP rules of primitives that move, copy or cut data without arithmetic: broadcast,
reshape, transpose, squeeze, concatenate, stack, split, tile, pad, slice, rev,
dynamic_slice, dynamic_update_slice. Each cotangent is the transpose of a linear map.

On an explicit-sharding mesh the values a rule builds (sums back to a broadcast operand,
reshapes, zeros in an operand's shape) get the operand's sharding, as in JAX's transposes
(``sharding_jax.sharding_of``; ``None``, the plain path, elsewhere)."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn.backprop import sharding_jax as sj
from funcnn.backprop.registry import deflinear, defvjp, is_float


def zeros_of(x, dtype):
    """Zeros in the shape (and, on an explicit mesh, the sharding) of the primal ``x``."""
    return jnp.zeros(np.shape(x), dtype, out_sharding=sj.sharding_of(x))


def reshape_to(ct, x):
    """``ct`` reshaped to the primal ``x``'s shape, with its sharding on an explicit mesh."""
    return lax.reshape(ct, np.shape(x), out_sharding=sj.sharding_of(x))


@defvjp("broadcast_in_dim")
def _broadcast_in_dim(ct, x, *dyn, out, shape, broadcast_dimensions, **_):
    x_shape = np.shape(x)
    new_axes = tuple(i for i in range(len(shape)) if i not in broadcast_dimensions)
    stretched = tuple(d for d, n in zip(broadcast_dimensions, x_shape, strict=True)
                      if n == 1 and shape[d] != 1)
    if not new_axes and not stretched:
        return (ct,) + (None,) * len(dyn)
    unit = [i for i, d in enumerate(broadcast_dimensions) if d in stretched]
    summed = lax.reduce_sum(ct, new_axes + stretched,
                            out_sharding=sj.drop_dims(sj.sharding_of(x), unit))
    return (reshape_to(summed, x),) + (None,) * len(dyn)


@defvjp("reshape")
def _reshape(ct, x, *dyn, out, dimensions=None, **_):
    # lax.reshape(x, sizes, dimensions) reshapes transpose(x, dimensions) (jnp.reshape's
    # order="F" binds it): undo the reshape, then the transpose.
    if dimensions is None:
        return (reshape_to(ct, x),) + (None,) * len(dyn)
    permuted = tuple(np.shape(x)[d] for d in dimensions)
    back = tuple(int(i) for i in np.argsort(dimensions))
    ct = lax.reshape(ct, permuted, out_sharding=sj.sharding_of(x, dimensions))
    return (lax.transpose(ct, back),) + (None,) * len(dyn)


@defvjp("squeeze", "expand_dims")
def _squeeze(ct, x, *, out, **_):
    return (reshape_to(ct, x),)


deflinear("transpose", lambda ct, permutation: lax.transpose(ct, tuple(np.argsort(permutation))))
deflinear("rev", lambda ct, dimensions: lax.rev(ct, dimensions))


@defvjp("concatenate")
def _concatenate(ct, *xs, out, dimension):
    cts, start = [], 0
    for x in xs:
        size = np.shape(x)[dimension]
        cts.append(lax.slice_in_dim(ct, start, start + size, axis=dimension)
                   if is_float(x) else None)
        start += size
    return cts


@defvjp("stack")
def _stack(ct, *xs, out, axis):
    return [lax.index_in_dim(ct, i, axis, keepdims=False) for i in range(len(xs))]


@defvjp("split")
def _split(cts, x, *, out, sizes, axis):
    parts = [jnp.zeros_like(o) if c is None else c for c, o in zip(cts, out, strict=True)]
    return (lax.concatenate(parts, axis),)


@defvjp("tile")
def _tile(ct, x, *, out, reps):
    x_shape = np.shape(x)
    lead = len(reps) - len(x_shape)
    inner = (1,) * lead + tuple(x_shape)
    split = [n for pair in zip(reps, inner, strict=True) for n in pair]
    summed = ct.reshape(split).sum(axis=tuple(range(0, 2 * len(reps), 2)))
    return (summed.reshape(x_shape),)


@defvjp("pad")
def _pad(ct, x, padding_value, *, out, padding_config):
    lo_hi = [(-lo, -hi, 0) for lo, hi, _ in padding_config]
    unpadded = lax.pad(ct, jnp.zeros((), ct.dtype), lo_hi)
    strides = tuple(interior + 1 for _, _, interior in padding_config)
    ct_x = lax.slice(unpadded, (0,) * ct.ndim, unpadded.shape, strides)
    ct_pad = (ct.sum() - ct_x.sum()) if is_float(padding_value) else None
    return (ct_x, ct_pad)


@defvjp("slice")
def _slice(ct, x, *, out, start_indices, limit_indices, strides):
    x_shape = np.shape(x)
    strides = strides or (1,) * len(x_shape)
    if any(n == 0 for n in ct.shape):
        return (zeros_of(x, ct.dtype),)
    config = []
    for n, s, m, t in zip(x_shape, start_indices, ct.shape, strides, strict=True):
        last = s + (m - 1) * t
        config.append((s, n - last - 1, t - 1))
    return (lax.pad(ct, jnp.zeros((), ct.dtype), config),)


def clamped_starts(starts, shape, sizes):
    """The start indices a dynamic_slice / dynamic_update_slice primitive uses: each clamped
    to [0, n - size]. The rules pass them on clamped, so that the ``lax`` wrappers they call
    see no negative index to wrap a second time (the program's wrapper already did)."""
    dtype = jnp.result_type(*starts)  # the primitive's one index dtype (literals are weak)
    return tuple(lax.convert_element_type(jnp.clip(s, 0, n - m), dtype)
                 for s, n, m in zip(starts, shape, sizes, strict=True))


@defvjp("dynamic_slice")
def _dynamic_slice(ct, x, *starts, out, slice_sizes):
    x_shape = np.shape(x)
    zeros = zeros_of(x, ct.dtype)
    starts = clamped_starts(starts, x_shape, slice_sizes)
    return (lax.dynamic_update_slice(zeros, ct, starts),) + (None,) * len(starts)


@defvjp("dynamic_update_slice")
def _dynamic_update_slice(ct, x, update, *starts, out, **_):
    u_shape = np.shape(update)
    starts = clamped_starts(starts, np.shape(x), u_shape)
    ct_update = lax.dynamic_slice(ct, starts, u_shape) if is_float(update) else None
    ct_x = lax.dynamic_update_slice(ct, zeros_of(update, ct.dtype), starts)
    return (ct_x, ct_update) + (None,) * len(starts)


@defvjp("unstack")
def _unstack(cts, x, *, out, axis):
    """``jnp.unstack``: the pieces' cotangents stacked back along ``axis`` (zeros for None)."""
    parts = [jnp.zeros_like(o) if c is None else c for c, o in zip(cts, out, strict=True)]
    return (jnp.stack(parts, axis=axis),)
