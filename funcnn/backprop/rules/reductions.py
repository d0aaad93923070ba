"""VJP rules of reductions and cumulative ops: reduce_sum/max/min/prod, cumsum, and the
cumulative max/min/prod/logsumexp. A reduced cotangent is broadcast back with the operand's
sharding on an explicit-sharding mesh (``sharding_jax.sharding_of``).

reduce_max and reduce_min split the cotangent evenly among the tied maxima (JAX's rule).
cummax, cummin, cumprod and cumlogsumexp are derived, not written: JAX defines them as an
associative scan of max/min/mul/logaddexp, and their rule is the engine's own VJP of that
scan, so ties and zeros behave as the primitives they are made of.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn.backprop import sharding_jax as sj
from funcnn.backprop.registry import defvjp


def expand(ct, x_shape, axes, sharding=None):
    """Broadcast a reduced cotangent back over the reduced ``axes`` of ``x_shape`` (placed
    by ``sharding``: the operand's on an explicit mesh, as in JAX's transpose)."""
    kept = tuple(i for i in range(len(x_shape)) if i not in axes)
    return lax.broadcast_in_dim(ct, tuple(x_shape), kept, out_sharding=sharding)


@defvjp("reduce_sum")
def _reduce_sum(ct, x, *, out, axes, **_):
    return (expand(ct, np.shape(x), axes, sj.sharding_of(x)),)


@defvjp("reduce_max", "reduce_min")
def _reduce_chooser(ct, x, *, out, axes, **_):
    shape = np.shape(x)
    sharding = sj.sharding_of(x)
    hits = (x == expand(out, shape, axes, sharding)).astype(ct.dtype)
    counts = hits.sum(axis=axes)
    return (expand(ct / counts, shape, axes, sharding) * hits,)


@defvjp("reduce_prod")
def _reduce_prod(ct, x, *, out, axes, **_):
    # The product of all the other elements, without dividing (exact at zeros):
    # move the reduced axes last, flatten them, take exclusive cumulative products both ways.
    shape = np.shape(x)
    if 0 in shape:  # no element, no cotangent (an empty product is 1, a constant)
        return (jnp.zeros(shape, ct.dtype, out_sharding=sj.sharding_of(x)),)
    kept = [i for i in range(len(shape)) if i not in axes]
    moved = jnp.transpose(x, kept + list(axes))
    flat = moved.reshape(moved.shape[:len(kept)] + (-1,))
    ones = jnp.ones_like(flat[..., :1])  # with flat's sharding on an explicit mesh
    left = jnp.concatenate([ones, lax.cumprod(flat, axis=flat.ndim - 1)[..., :-1]], axis=-1)
    right = jnp.concatenate([lax.cumprod(flat, axis=flat.ndim - 1, reverse=True)[..., 1:], ones],
                            axis=-1)
    others = (left * right).reshape(moved.shape)
    inverse = np.argsort(kept + list(axes))
    return (expand(ct, shape, axes, sj.sharding_of(x)) * jnp.transpose(others, inverse),)


@defvjp("cumsum")
def _cumsum(ct, x, *, out, axis, reverse):
    return (lax.cumsum(ct, axis=axis, reverse=not reverse),)


def _derived(combine):
    def rule(ct, x, *, out, axis, reverse):
        from funcnn.backprop.api import vjp  # the engine differentiates the scan it is

        def scan(v):
            return lax.associative_scan(combine, v, reverse=reverse, axis=axis)

        return vjp(scan, x)[1](ct)

    return rule


defvjp("cummax")(_derived(lax.max))
defvjp("cummin")(_derived(lax.min))
defvjp("cumprod")(_derived(lax.mul))
defvjp("cumlogsumexp")(_derived(jnp.logaddexp))


@defvjp("sort")
def _sort(cts, *operands, out, dimension, is_stable, num_keys):
    # The permutation the sort applied, then each cotangent un-permuted.
    iota = lax.broadcasted_iota(np.int32, np.shape(operands[0]), dimension,
                                out_sharding=sj.sharding_of(operands[0]))
    perm = lax.sort((*operands[:num_keys], iota), dimension=dimension, is_stable=is_stable,
                    num_keys=num_keys)[-1]
    inverse = jnp.argsort(perm, axis=dimension)
    return [None if c is None else jnp.take_along_axis(c, inverse, axis=dimension)
            for c in cts]
