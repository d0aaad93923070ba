"""VJP rules of top_k and approx_top_k (``lax.top_k``, ``lax.approx_max_k`` /
``approx_min_k``): values ``[..., k]`` chosen along one axis, with their indices. Each chosen
value is a copy of one input entry, so its cotangent goes back to where it came from (a
scatter-add at the indices, the transpose of JAX's gather); the indices get none."""
from __future__ import annotations

import jax.numpy as jnp

from funcnn.backprop.registry import defvjp


def scatter_along(ct, indices, shape, axis):
    """zeros(shape) with ct[..., j, ...] added at indices[..., j, ...] along ``axis``
    (ct, indices: ``shape`` with ``axis`` cut to k)."""
    ct_last = jnp.moveaxis(ct, axis, -1)
    idx_last = jnp.moveaxis(indices, axis, -1)
    n, k = shape[axis], ct_last.shape[-1]
    flat_ct, flat_idx = ct_last.reshape(-1, k), idx_last.reshape(-1, k)
    rows = jnp.arange(flat_ct.shape[0])[:, None]
    flat = jnp.zeros((flat_ct.shape[0], n), ct.dtype).at[rows, flat_idx].add(flat_ct)
    return jnp.moveaxis(flat.reshape(ct_last.shape[:-1] + (n,)), -1, axis)


@defvjp("top_k")
def _top_k(cts, x, *, out, k, axis=-1, **_):
    """x: [..., n, ...]; values, indices: x's shape with ``axis`` cut to k."""
    if cts[0] is None:
        return (None,)
    return (scatter_along(cts[0], out[1], jnp.shape(x), axis % jnp.ndim(x)),)


@defvjp("approx_top_k")
def _approx_top_k(cts, x, *, out, reduction_dimension, **_):
    if cts[0] is None:
        return (None,)
    return (scatter_along(cts[0], out[1], jnp.shape(x), reduction_dimension % jnp.ndim(x)),)
