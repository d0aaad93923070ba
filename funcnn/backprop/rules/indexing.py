"""VJP rules of gather and the scatters: what ``x[idx]``, ``x[:, idx]``, ``jnp.take``,
``jnp.take_along_axis``, ``table[ids]`` and ``x.at[idx].add/subtract/set/multiply/min/max``
trace to. Indices never get a cotangent.

A gather and a scatter with matching dimension numbers read and write the same windows, so
each is (up to masking) the other's transpose:

    gather(x)       ->  ct_x = scatter-add of ct into zeros of x's shape
    scatter-add     ->  ct_operand = ct, ct_updates = gather of ct at the indices

with the same out-of-bounds ``mode`` on both sides (a dropped window gets a zero cotangent,
a clipped one the cotangent of where it was clipped to).

``scatter`` (overwrite) follows JAX: with ``unique_indices=True`` the overwritten positions of
ct are zeroed and ct_updates is the gather of ct; otherwise each update gets an id, the ids
are scattered like the updates, and only the update whose id landed (the winner among
duplicates, as the backend decides) gets a cotangent; a dropped update gets none. (The ids
are read back with the scatter's own mode, JAX's with PROMISE_IN_BOUNDS; the two agree: a
dropped update's id lands nowhere, so no read-back can match it.)

``scatter-mul``: ct_operand = scatter-mul of ct by the updates; ct_updates is exact for
duplicate indices too (JAX raises unless ``unique_indices=True``): for update u_k landing on
position p, d out[p] / d u_k = x[p] * (product of the other updates at p), computed without
dividing by a zero update.

``scatter-min``/``scatter-max`` transpose JAX's tangent rule: among the values contending for
a position (the operand's and the updates'), the cotangent is split evenly over those equal to
the result. The contenders are counted where the scatter put them (its mode; JAX counts with
the default mode, and gives inf for an update whose index ``mode="clip"`` clipped).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn.backprop import sharding_jax as sj
from funcnn.backprop.registry import defvjp, is_float, like


# --- the gather that reads back a scatter's windows, and the scatter that undoes a gather ----
def as_scatter_dnums(g: lax.GatherDimensionNumbers) -> lax.ScatterDimensionNumbers:
    return lax.ScatterDimensionNumbers(
        update_window_dims=g.offset_dims,
        inserted_window_dims=g.collapsed_slice_dims,
        scatter_dims_to_operand_dims=g.start_index_map,
        operand_batching_dims=g.operand_batching_dims,
        scatter_indices_batching_dims=g.start_indices_batching_dims)


def as_gather_dnums(s: lax.ScatterDimensionNumbers) -> lax.GatherDimensionNumbers:
    return lax.GatherDimensionNumbers(
        offset_dims=s.update_window_dims,
        collapsed_slice_dims=s.inserted_window_dims,
        start_index_map=s.scatter_dims_to_operand_dims,
        operand_batching_dims=s.operand_batching_dims,
        start_indices_batching_dims=s.scatter_indices_batching_dims)


def window_sizes(operand_ndim, updates_shape, dnums: lax.ScatterDimensionNumbers):
    """The slice sizes of the gather that reads back each update window: 1 for inserted and
    batching dims, the update window's extent for the others."""
    sizes, pos = [], 0
    for i in range(operand_ndim):
        if i in dnums.inserted_window_dims or i in dnums.operand_batching_dims:
            sizes.append(1)
        else:
            sizes.append(updates_shape[dnums.update_window_dims[pos]])
            pos += 1
    return tuple(sizes)


def read_back(x, indices, updates_shape, dnums, mode, fill_value=0):
    """The values of ``x`` (operand-shaped) at each update's position: updates-shaped."""
    return lax.gather(x, indices, as_gather_dnums(dnums),
                      window_sizes(np.ndim(x), updates_shape, dnums), mode=mode,
                      fill_value=fill_value)


# --- gather ---------------------------------------------------------------------------------
@defvjp("gather")
def _gather(ct, operand, indices, *, out, dimension_numbers, mode, unique_indices=False,
            indices_are_sorted=False, **_):
    zeros = sj.zeros_like(operand, ct.dtype)  # with its sharding, as JAX's transpose
    ct_operand = lax.scatter_add(zeros, indices, ct, as_scatter_dnums(dimension_numbers),
                                 indices_are_sorted=indices_are_sorted,
                                 unique_indices=unique_indices, mode=mode)
    return (like(ct_operand, operand), None)


# --- scatter-add, scatter-sub ---------------------------------------------------------------
def _scatter_addsub(sign):
    def rule(ct, operand, indices, updates, *, out, dimension_numbers, mode, **_):
        ct_operand = ct if is_float(operand) else None
        ct_updates = None
        if is_float(updates):
            ct_updates = read_back(ct, indices, np.shape(updates), dimension_numbers, mode)
            ct_updates = like(-ct_updates if sign < 0 else ct_updates, updates)
        return (ct_operand, None, ct_updates)

    return rule


defvjp("scatter-add", "scatter_add")(_scatter_addsub(+1))
defvjp("scatter-sub", "scatter_sub")(_scatter_addsub(-1))


# --- scatter-mul ----------------------------------------------------------------------------
@defvjp("scatter-mul", "scatter_mul")
def _scatter_mul(ct, operand, indices, updates, *, out, dimension_numbers, mode,
                 unique_indices=False, indices_are_sorted=False, **_):
    dn = dimension_numbers
    flags = dict(indices_are_sorted=indices_are_sorted, unique_indices=unique_indices,
                 mode=mode)
    u = jnp.asarray(updates, ct.dtype)
    ct_operand = ct_updates = None
    if is_float(operand):
        ct_operand = like(lax.scatter_mul(ct, indices, u, dn, **flags), operand)
    if is_float(updates):
        u_shape = np.shape(updates)
        is_zero = u == 0
        safe_u = jnp.where(is_zero, jnp.ones_like(u), u)
        ones = sj.full_like(operand, 1, ct.dtype)
        # Per operand position: product of its non-zero updates, and how many are zero.
        nonzero_prod = lax.scatter_mul(ones, indices, safe_u, dn, **flags)
        zero_count = lax.scatter_add(jnp.zeros_like(ones), indices, is_zero.astype(ct.dtype),
                                     dn, **flags)
        weighted = read_back(ct * jnp.asarray(operand, ct.dtype) * nonzero_prod, indices,
                             u_shape, dn, mode)  # ct[p] x[p] prod_nonzero[p]
        zeros_at = read_back(zero_count, indices, u_shape, dn, mode)
        # u_k != 0: the others' product is prod_nonzero / u_k, times 0 if any other is zero.
        # u_k == 0: the others' product is prod_nonzero if u_k is the only zero, else 0.
        ct_nonzero = jnp.where(zeros_at == 0, weighted / safe_u, jnp.zeros_like(u))
        ct_zero = jnp.where(zeros_at == 1, weighted, jnp.zeros_like(u))
        ct_updates = like(jnp.where(is_zero, ct_zero, ct_nonzero), updates)
    return (ct_operand, None, ct_updates)


# --- scatter (overwrite) --------------------------------------------------------------------
@defvjp("scatter")
def _scatter(ct, operand, indices, updates, *, out, dimension_numbers, mode,
             unique_indices=False, indices_are_sorted=False, update_jaxpr=None, **_):
    if update_jaxpr is not None:
        raise NotImplementedError(
            "funcnn.backprop: no VJP for a scatter with an update function "
            "(`x.at[idx].apply(f)`); express the update with .set/.add/.multiply instead.")
    dn = dimension_numbers
    u_shape = np.shape(updates)
    flags = dict(indices_are_sorted=indices_are_sorted, mode=mode)
    if unique_indices:
        ct_operand = lax.scatter(ct, indices, sj.zeros_like(updates, ct.dtype), dn,
                                 unique_indices=True, **flags)
        ct_updates = read_back(ct, indices, u_shape, dn, mode)
    else:
        # Give each update window an id (1, 2, ...), scatter the ids like the updates, and
        # read them back: an update gets a cotangent only where its own id landed.
        ids_shape = tuple(1 if d in dn.update_window_dims else n for d, n in enumerate(u_shape))
        n_ids = int(np.prod(ids_shape))
        id_dtype = np.int32 if n_ids < np.iinfo(np.int32).max else np.int64
        ids = lax.broadcast_in_dim(
            (lax.iota(id_dtype, n_ids) + id_dtype(1)).reshape(ids_shape), u_shape,
            tuple(range(len(u_shape))), out_sharding=sj.sharding_of(updates))
        landed = lax.scatter(sj.zeros_like(operand, id_dtype), indices, ids, dn,
                             unique_indices=False, **flags)
        landed_back = read_back(landed, indices, u_shape, dn, mode)
        ct_operand = jnp.where(landed == 0, ct, jnp.zeros_like(ct))
        ct_updates = jnp.where(ids == landed_back, read_back(ct, indices, u_shape, dn, mode),
                               sj.zeros_like(updates, ct.dtype))
    return (like(ct_operand, operand) if is_float(operand) else None, None,
            like(ct_updates, updates) if is_float(updates) else None)


# --- scatter-min, scatter-max ---------------------------------------------------------------
@defvjp("scatter-min", "scatter-max", "scatter_min", "scatter_max")
def _scatter_extremal(ct, operand, indices, updates, *, out, dimension_numbers, mode,
                      unique_indices=False, indices_are_sorted=False, **_):
    # JAX's tangent: t_out = scatter_add(t_x, idx, gather(t_x) * c_x + t_u * c_u), where each
    # of the n contenders equal to the result (x[p] among them or not) gets 1/n. The gathers
    # and counts read where the scatter wrote (its own mode: JAX's read with the default
    # FILL_OR_DROP, which, for a clipped index, counts no contender and gives inf), and an
    # update that lands nowhere contends for nothing.
    dn = dimension_numbers
    u_shape = np.shape(updates)
    dtype = ct.dtype
    x = jnp.asarray(operand, dtype)
    u = jnp.asarray(updates, dtype)

    def gather(v):
        return read_back(v, indices, u_shape, dn, mode)

    def count(v):
        return lax.scatter_add(jnp.zeros_like(x), indices, v, dn, mode=mode)

    def share(n):  # 1/n, and 0 where nothing landed
        return jnp.where(n > 0, 1 / jnp.where(n > 0, n, 1), 0)

    initial, target = gather(x), gather(jnp.asarray(out, dtype))
    one, zero = jnp.ones_like(u), jnp.zeros_like(u)
    landed = gather(count(one))  # updates landing where this one did; 0 if it landed nowhere
    won = (u == target) & (landed > 0)
    kept = initial == target
    n_won = gather(count(jnp.where(won, one, zero)))
    c_u = jnp.where(won, share(jnp.where(kept, n_won + 1, n_won)), zero)
    c_x = (jnp.where(kept, share(n_won + 1), zero) - 1) * share(landed)

    ct_at = read_back(ct, indices, u_shape, dn, mode, fill_value=0)  # transpose of the add
    ct_operand = ct_updates = None
    if is_float(operand):
        back = lax.scatter_add(jnp.zeros_like(ct), indices, ct_at * c_x, dn, mode=mode)
        ct_operand = like(ct + back, operand)
    if is_float(updates):
        ct_updates = like(ct_at * c_u, updates)
    return (ct_operand, None, ct_updates)
