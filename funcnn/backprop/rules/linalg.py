"""VJP rule of dot_general: any contracting and batch dimensions.

For out = dot_general(x, y), the cotangent of x contracts ct with y over y's free dims (and
matches the batch dims), then transposes the result into x's layout; y's is the same with the
roles swapped. Written once for x (``transpose_lhs``) and reused for y.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn.backprop.registry import defvjp, is_float


def remaining(n, *taken):
    gone = set().union(*map(set, taken))
    return [i for i in range(n) if i not in gone]


def transpose_lhs(ct, x_ndim, y, dimension_numbers, precision, swap_ans=False):
    """d<ct, dot_general(x, y)>/dx for x of rank ``x_ndim``."""
    (x_contract, y_contract), (x_batch, y_batch) = dimension_numbers
    y_ndim = np.ndim(y)
    x_kept = remaining(x_ndim, x_contract, x_batch)
    y_kept = remaining(y_ndim, y_contract, y_batch)
    nb = len(x_batch)
    if swap_ans:  # ct's layout is (batch, y kept, x kept) when x is the right operand
        ans_y = range(nb, nb + len(y_kept))
    else:
        ans_y = range(nb + len(x_kept), nb + len(x_kept) + len(y_kept))
    dims = ((tuple(ans_y), tuple(y_kept)), (tuple(range(nb)), tuple(y_batch)))
    dtype = jnp.promote_types(ct.dtype, jnp.result_type(y))
    prod = lax.dot_general(ct.astype(dtype), jnp.asarray(y).astype(dtype), dims,
                           precision=precision)
    x_contract_sorted_by_y = [x_contract[i] for i in np.argsort(y_contract)]
    out_axes = np.argsort(list(x_batch) + x_kept + x_contract_sorted_by_y)
    return lax.transpose(prod, tuple(int(a) for a in out_axes))


@defvjp("dot_general")
def _dot_general(ct, x, y, *, out, dimension_numbers, precision=None, **_):
    (x_contract, y_contract), (x_batch, y_batch) = dimension_numbers
    ct_x = ct_y = None
    if is_float(x):
        ct_x = transpose_lhs(ct, np.ndim(x), y, dimension_numbers, precision)
        ct_x = ct_x.astype(jnp.result_type(x))
    if is_float(y):
        swapped = ((y_contract, x_contract), (y_batch, x_batch))
        ct_y = transpose_lhs(ct, np.ndim(y), x, swapped, precision, swap_ans=True)
        ct_y = ct_y.astype(jnp.result_type(y))
    return (ct_x, ct_y)
