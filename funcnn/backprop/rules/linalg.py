"""VJP rule of dot_general: any contracting and batch dimensions.

For out = dot_general(x, y) (ct laid out as [batch, x's free dims, y's free dims]), each
operand's cotangent contracts ct with the other operand over the other's free dims, batch
dims matched. Written once (``operand_cotangent``) for both. Of the two orders of that
product, the one that lands in the operand's own layout is taken, so no transpose follows:
for ``x @ w`` the kernel's cotangent is ``dot_general(x, ct)``, [in, out] as it comes, where
JAX's ``dot_general(ct, x)`` and a transpose make XLA:CPU copy ct into a transposed layout
first (twice the time of a dense layer's backward pass); for attention's ``q k^T`` the key's
cotangent is ``dot_general(ct, q)`` for the same reason.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn.backprop.registry import defvjp, is_float


def remaining(n, *taken):
    gone = set().union(*map(set, taken))
    return [i for i in range(n) if i not in gone]


def operand_cotangent(ct, other, ndim, contract, other_contract, batch, other_batch, ct_own,
                      ct_other, precision, other_first):
    """The cotangent of one operand of out = dot_general(x, y), of rank ``ndim``.

    It contracts ct with the other operand over the other's free dims (``ct_other`` are their
    positions in ct; ``ct_own`` the positions of this operand's free dims), batch dims matched.
    The product can be taken as ``dot_general(ct, other)``, laid out [batch, own free, own
    contracting], or ``dot_general(other, ct)``, laid out [batch, own contracting, own free]:
    the order whose layout is already the operand's is taken (no transpose after it); else
    ``other_first`` decides and the result is transposed into place.
    """
    kept = remaining(ndim, contract, batch)
    other_kept = remaining(np.ndim(other), other_contract, other_batch)
    mapped = [contract[list(other_contract).index(d)] for d in sorted(other_contract)]
    layouts = {False: [*batch, *kept, *mapped], True: [*batch, *mapped, *kept]}
    for first in (other_first, not other_first):
        if layouts[first] == list(range(ndim)):
            other_first = first
            break
    dtype = jnp.promote_types(ct.dtype, jnp.result_type(other))
    ct, other = ct.astype(dtype), jnp.asarray(other).astype(dtype)
    ct_dims = (tuple(ct_other), tuple(range(len(batch))))
    other_dims = (tuple(other_kept), tuple(other_batch))
    if other_first:
        prod = lax.dot_general(other, ct, ((other_dims[0], ct_dims[0]),
                                           (other_dims[1], ct_dims[1])), precision=precision)
    else:
        prod = lax.dot_general(ct, other, ((ct_dims[0], other_dims[0]),
                                           (ct_dims[1], other_dims[1])), precision=precision)
    order = tuple(int(a) for a in np.argsort(layouts[other_first]))
    return prod if order == tuple(range(ndim)) else lax.transpose(prod, order)


@defvjp("dot_general")
def _dot_general(ct, x, y, *, out, dimension_numbers, precision=None, **_):
    (x_contract, y_contract), (x_batch, y_batch) = dimension_numbers
    nb = len(x_batch)
    x_free = range(nb, nb + np.ndim(x) - len(x_contract) - nb)  # ct: batch, x free, y free
    y_free = range(x_free.stop, np.ndim(ct))
    ct_x = ct_y = None
    if is_float(x):  # JAX's order by default: dot_general(ct, y)
        ct_x = operand_cotangent(ct, y, np.ndim(x), x_contract, y_contract, x_batch, y_batch,
                                 x_free, y_free, precision, other_first=False)
        ct_x = ct_x.astype(jnp.result_type(x))
    if is_float(y):  # dot_general(x, ct) by default: y's layout for x @ w
        ct_y = operand_cotangent(ct, x, np.ndim(y), y_contract, x_contract, y_batch, x_batch,
                                 y_free, x_free, precision, other_first=True)
        ct_y = ct_y.astype(jnp.result_type(y))
    return (ct_x, ct_y)
