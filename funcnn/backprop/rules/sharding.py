"""VJP rules of sharding annotations and of the collectives a ``shard_map`` body uses.

Each is linear, so its VJP is its transpose:

- ``sharding_constraint``: the cotangent gets the same constraint;
- ``device_put``: the cotangent goes back to where the input lived; ``reshard`` (explicit
  sharding): the cotangent takes the input's sharding;
- ``pvary`` (invariant -> varying over ``axes``) and ``psum_invariant`` (varying -> invariant
  sum) are each other's transposes: the cotangent of a value copied to every device is the sum
  of the copies' cotangents, and a sum's cotangent reaches every summand;
- ``psum`` without replication checking (every value taken as varying) transposes to ``psum``;
- ``all_gather`` <-> ``psum_scatter`` (``reduce_scatter``) along the same dimension;
  ``all_gather_invariant``'s cotangent is this device's slice of the gathered cotangent;
- ``ppermute``: the inverse permutation; ``all_to_all``: split and concat axes swapped.

Derivations: the collectives' adjoints as stated in JAX's ``lax/parallel.py`` (the same
identities; each written here from the collective's definition as a linear map).
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from funcnn.backprop import sharding_jax as sj
from funcnn.backprop.registry import defnograd, defvjp


@defvjp("sharding_constraint")
def _sharding_constraint(ct, x, *, out, **params):
    return (sj.SHARDING_CONSTRAINT.bind(ct, **params),)


@defvjp("reshard")
def _reshard(ct, x, *, out, dst_sharding, concrete_mesh):
    return (sj.reshard_back(ct, x, concrete_mesh=concrete_mesh),)


@defvjp("device_put")
def _device_put(cts, *xs, out, devices, srcs, copy_semantics):
    live = [i for i, c in enumerate(cts) if c is not None]
    back = sj.device_put_back([cts[i] for i in live], devices=[devices[i] for i in live],
                              srcs=[srcs[i] for i in live],
                              copy_semantics=[copy_semantics[i] for i in live]) if live else []
    result = [None] * len(xs)
    for i, c in zip(live, back, strict=True):
        result[i] = c
    return result


@defvjp("pvary")
def _pvary(ct, x, *, out, axes):
    return (sj.PSUM_INVARIANT.bind(ct, axes=tuple(axes)),)


@defvjp("psum_invariant")
def _psum_invariant(ct, x, *, out, axes):
    return (sj.PVARY.bind(ct, axes=tuple(axes)),)


@defvjp("psum")
def _psum(ct, x, *, out, axes, axis_index_groups):
    """Positional axes are a reduce_sum (its cotangent broadcasts back); named axes are a
    psum followed by a broadcast to every device, whose transpose sums again."""
    positional = tuple(a for a in axes if isinstance(a, int))
    named = tuple(a for a in axes if not isinstance(a, int))
    if positional:
        kept = [d for d in range(jnp.ndim(x)) if d not in positional]
        ct = lax.broadcast_in_dim(ct, jnp.shape(x), kept)
    if named:
        ct = sj.PSUM.bind(ct, axes=named, axis_index_groups=axis_index_groups)
    return (ct,)


@defvjp("all_gather")
def _all_gather(ct, x, *, out, all_gather_dimension, axis_name, axis_index_groups, axis_size,
                tiled):
    return (lax.psum_scatter(ct, axis_name, scatter_dimension=all_gather_dimension,
                             axis_index_groups=axis_index_groups, tiled=tiled),)


@defvjp("all_gather_invariant")
def _all_gather_invariant(ct, x, *, out, all_gather_dimension, axis_name, axis_size, tiled):
    size = ct.shape[all_gather_dimension] // axis_size
    mine = lax.dynamic_slice_in_dim(ct, lax.axis_index(axis_name) * size, size,
                                    axis=all_gather_dimension)
    return (mine if tiled else lax.squeeze(mine, (all_gather_dimension,)),)


@defvjp("reduce_scatter")
def _reduce_scatter(ct, x, *, out, axis_name, scatter_dimension, axis_index_groups, axis_size,
                    tiled):
    return (lax.all_gather(ct, axis_name, axis=scatter_dimension,
                           axis_index_groups=axis_index_groups, tiled=tiled),)


@defvjp("ppermute")
def _ppermute(ct, x, *, out, axis_name, perm):
    return (lax.ppermute(ct, axis_name, perm=[(dst, src) for src, dst in perm]),)


@defvjp("all_to_all")
def _all_to_all(ct, x, *, out, axis_name, split_axis, concat_axis, axis_index_groups, tiled):
    return (lax.all_to_all(ct, axis_name, concat_axis, split_axis,
                           axis_index_groups=axis_index_groups, tiled=tiled),)


defnograd("axis_index")
