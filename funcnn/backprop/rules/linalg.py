"""VJP rule of dot_general: any contracting and batch dimensions.

For out = dot_general(x, y) (ct laid out as [batch, x's free dims, y's free dims]), each
operand's cotangent contracts ct with the other operand over the other's free dims, batch
dims matched. Written once (``operand_cotangent``) for both. The product has two orders,
``dot_general(ct, other)`` (JAX's) and ``dot_general(other, ct)``, each followed by a transpose
where its layout is not the operand's. A GEMM library takes [m, k] @ [k, n] (the right operand
also as [n, k]); XLA:CPU copies whatever operand is laid out otherwise, and when that operand
is an elementwise expression the copy recomputes it in transposed order. So the order that
copies fewer elements is taken: for a dense layer's kernel, x @ w with x: [b, in], the
cotangent is either x^T @ ct (copies x) or (ct^T @ x)^T (copies ct and transposes [out, in]).
Measured on the benchmark transformer (CPU): 78 ms a step against JAX's autodiff's 99 ms, where
JAX's order everywhere gives 99 and the no-transpose order everywhere 101 (its gelu layer's
[2048, 1024] activation copied in transposed order: 24 ms).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn.backprop import sharding_jax as sj
from funcnn.backprop.registry import defvjp, is_float


def remaining(n, *taken):
    gone = set().union(*map(set, taken))
    return [i for i in range(n) if i not in gone]


def gemm_copy_size(shape, contract, batch, lhs):
    """Elements a canonical GEMM ([batch, m, k] @ [batch, k, n]; XLA:CPU's dot libraries) must
    copy to take this operand as it is laid out: none if its batch dims lead and its contracting
    dims sit together at the end (lhs) or at either end of the rest (rhs, which the libraries
    also take transposed); else the whole operand."""
    ndim, nb, nc = len(shape), len(batch), len(contract)
    ok = list(batch) == list(range(nb)) and (
        sorted(contract) == list(range(ndim - nc, ndim))
        or (not lhs and sorted(contract) == list(range(nb, nb + nc))))
    return 0 if ok else int(np.prod(shape))


def operand_cotangent(ct, other, own, contract, other_contract, batch, other_batch, ct_other,
                      precision, preferred_element_type):
    """The cotangent of the operand ``own`` of out = dot_general(x, y).

    It contracts ct with the other operand over the other's free dims (``ct_other`` are their
    positions in ct), batch dims matched. The product can be taken as
    ``dot_general(ct, other)``, laid out [batch, own free, own contracting], or
    ``dot_general(other, ct)``, laid out [batch, own contracting, own free], each then
    transposed into the operand's layout where it differs. The order that moves fewer elements
    is taken (``gemm_copy_size`` of its two operands plus the closing transpose); JAX's order,
    ``dot_general(ct, other)``, on a tie. For the kernel of ``tanh(x @ w)``,
    x: [2048, 256], w: [256, 1024], that is ``dot_general(x, ct)``: XLA:CPU copies x, not the
    four times larger ct fused with tanh's derivative (8 ms against JAX's autodiff's 22 ms).
    On an explicit-sharding mesh the product is given ``own``'s sharding in its own layout
    (as JAX's transpose does): a contraction over a sharded dim has no sharding to infer.
    """
    ndim, own_shape = np.ndim(own), np.shape(own)
    kept = remaining(ndim, contract, batch)
    other_kept = remaining(np.ndim(other), other_contract, other_batch)
    mapped = [contract[list(other_contract).index(d)] for d in sorted(other_contract)]
    layouts = {False: [*batch, *kept, *mapped], True: [*batch, *mapped, *kept]}
    nb = len(batch)

    def cost(other_first):
        ct_cost = gemm_copy_size(ct.shape, ct_other, range(nb), lhs=not other_first)
        other_cost = gemm_copy_size(np.shape(other), other_kept, other_batch, lhs=other_first)
        closing = 0 if layouts[other_first] == list(range(ndim)) else int(np.prod(own_shape))
        return ct_cost + other_cost + closing

    other_first = cost(True) < cost(False)
    dtype = jnp.promote_types(ct.dtype, jnp.result_type(other))
    ct, other = ct.astype(dtype), jnp.asarray(other).astype(dtype)
    ct_dims = (tuple(ct_other), tuple(range(nb)))
    other_dims = (tuple(other_kept), tuple(other_batch))
    placed = dict(precision=precision, preferred_element_type=preferred_element_type,
                  out_sharding=sj.sharding_of(own, layouts[other_first]))
    if other_first:
        prod = lax.dot_general(other, ct, ((other_dims[0], ct_dims[0]),
                                           (other_dims[1], ct_dims[1])), **placed)
    else:
        prod = lax.dot_general(ct, other, ((ct_dims[0], other_dims[0]),
                                           (ct_dims[1], other_dims[1])), **placed)
    order = tuple(int(a) for a in np.argsort(layouts[other_first]))
    return prod if order == tuple(range(ndim)) else lax.transpose(prod, order)


@defvjp("dot_general")
def _dot_general(ct, x, y, *, out, dimension_numbers, precision=None,
                 preferred_element_type=None, **_):
    # precision and preferred_element_type go to both products, as in JAX's transpose; the
    # result is cast to the operand's dtype. out_sharding places the output only (each
    # cotangent takes its operand's sharding).
    (x_contract, y_contract), (x_batch, y_batch) = dimension_numbers
    nb = len(x_batch)
    x_free = range(nb, nb + np.ndim(x) - len(x_contract) - nb)  # ct: batch, x free, y free
    y_free = range(x_free.stop, np.ndim(ct))
    ct_x = ct_y = None
    if is_float(x):
        ct_x = operand_cotangent(ct, y, x, x_contract, y_contract, x_batch, y_batch, y_free,
                                 precision, preferred_element_type)
        ct_x = ct_x.astype(jnp.result_type(x))
    if is_float(y):
        ct_y = operand_cotangent(ct, x, y, y_contract, x_contract, y_batch, x_batch, x_free,
                                 precision, preferred_element_type)
        ct_y = ct_y.astype(jnp.result_type(y))
    return (ct_x, ct_y)


# --- ragged_dot_general (lax.ragged_dot: grouped matmul, mixture-of-experts) ------------------
def ragged_mode(x_ndim, dims) -> str:
    """Which kind of dim of the lhs is ragged: its ``lhs_ragged_dimensions[0]`` among the
    lhs's free ("non-contracting"), contracting or batch dims."""
    (x_contract, _), (x_batch, _) = dims.dot_dimension_numbers
    (r,) = dims.lhs_ragged_dimensions
    return ("contracting" if r in x_contract else "batch" if r in x_batch
            else "non-contracting")


def ragged_product(a, b, group_sizes, contract, batch, ragged_dim, group, layout, like, params):
    """``ragged_dot_general(a, b, group_sizes)`` contracting ``contract``, batch dims matched,
    ``a``'s dim ``ragged_dim`` ragged and ``b``'s ``group`` dims (none or one) its groups;
    transposed into ``like``'s layout (dim i of the product is dim ``layout[i]`` of ``like``)
    and cast to its dtype."""
    dtype = jnp.promote_types(jnp.result_type(a), jnp.result_type(b))
    a, b = jnp.asarray(a).astype(dtype), jnp.asarray(b).astype(dtype)
    dims = lax.RaggedDotDimensionNumbers(dot_dimension_numbers=(contract, batch),
                                         lhs_ragged_dimensions=[ragged_dim],
                                         rhs_group_dimensions=list(group))
    prod = lax.ragged_dot_general(a, b, group_sizes, dims, **params,
                                  out_sharding=sj.sharding_of(like, layout))
    order = tuple(int(i) for i in np.argsort(layout))
    prod = prod if order == tuple(range(prod.ndim)) else lax.transpose(prod, order)
    return prod.astype(jnp.result_type(like))


@defvjp("ragged_dot_general")
def _ragged_dot_general(ct, x, y, group_sizes, *, out, ragged_dot_dimension_numbers,
                        precision=None, preferred_element_type=None, group_offset=None, **_):
    """Each operand's cotangent is a ragged dot itself, with the same ``group_sizes``.

    Write R for x's ragged dim, g(p, r) for the group of position r along it (p: the prefix
    dims group_sizes is indexed by; no group past the sizes' sum), and take the layouts of
    JAX's ``ragged_dot_general`` docstring (b batch, m x's free, k contracting, n y's free):

    - ragged non-contracting, out[b,m,n] = sum_k x[b,m,k] y[g(m),b,k,n]:
      dx[b,m,k] = sum_n ct[b,m,n] y[g(m),b,k,n], the same mode on (ct, y), ct's m ragged;
      dy[i,b,k,n] = sum_{m in group i} x[b,m,k] ct[b,m,n], ragged contracting on (x, ct).
    - ragged contracting, out[i,b,m,n] = sum_{k in group i} x[b,m,k] y[b,k,n]:
      dx[b,m,k] = sum_n y[b,k,n] ct[g(k),b,m,n], ragged non-contracting on (y, ct) with ct's
      leading dim as the group dim; dy likewise on (x, ct). The operand is first laid out
      [batch, contracting in the dims' listed order, free], so that its dims before R are the
      prefix of group_sizes' shape in the same order.
    - ragged batch (the groups split a batch dim; no operand has a group dim): JAX's
      implementation is dot_general(x, y), and both cotangents are ragged batch dots with
      dot_general's layouts, so they follow whatever a backend does with the groups.

    JAX's transpose (``lax.py``, ``_ragged_dot_general_transpose_rule``) does the first mode
    the same way and raises for the other two; their formulas here are derived from the
    definitions above and checked against the dense expansion (test_rules_ragged.py).
    """
    if group_offset is not None:
        raise NotImplementedError("ragged_dot_general with group_offset: JAX does not "
                                  "evaluate it either (its implementation raises)")
    dims = ragged_dot_dimension_numbers
    (xc, yc), (xb, yb) = (tuple(map(list, d)) for d in dims.dot_dimension_numbers)
    (r,) = dims.lhs_ragged_dimensions
    group = list(dims.rhs_group_dimensions)
    xk, yk = remaining(np.ndim(x), xc, xb), remaining(np.ndim(y), yc, yb, group)
    nb, nc = len(xb), len(xc)
    params = dict(precision=precision, preferred_element_type=preferred_element_type)
    mode = ragged_mode(np.ndim(x), dims)
    ct_x = ct_y = None
    x_contract_by_y = [xc[yc.index(d)] for d in sorted(yc)]
    y_contract_by_x = [yc[xc.index(d)] for d in sorted(xc)]
    if mode == "contracting":  # ct: [g, batch, x free, y free]
        lead = list(range(1, nb + 1))
        ct_xk = list(range(1 + nb, 1 + nb + len(xk)))
        ct_yk = list(range(1 + nb + len(xk), np.ndim(ct)))
        j = xc.index(r)
        if is_float(x):
            y_c = lax.transpose(y, (*yb, *yc, *yk))
            ct_x = ragged_product(y_c, ct, group_sizes, (list(range(nb + nc, np.ndim(y))), ct_yk),
                                  (list(range(nb)), lead), nb + j, [0], [*xb, *xc, *xk], x,
                                  params)
        if is_float(y):
            x_c = lax.transpose(x, (*xb, *xc, *xk))
            ct_y = ragged_product(x_c, ct, group_sizes, (list(range(nb + nc, np.ndim(x))), ct_xk),
                                  (list(range(nb)), lead), nb + j, [0], [*yb, *yc, *yk], y,
                                  params)
        return ct_x, ct_y, None
    # ct: [batch, x free, y free]
    ct_b, ct_xk = list(range(nb)), list(range(nb, nb + len(xk)))
    ct_yk = list(range(nb + len(xk), np.ndim(ct)))
    if mode == "non-contracting":
        if is_float(x):
            ct_x = ragged_product(ct, y, group_sizes, (ct_yk, yk), (ct_b, yb),
                                  nb + xk.index(r), group, [*xb, *xk, *x_contract_by_y], x,
                                  params)
        if is_float(y):
            ct_y = ragged_product(x, ct, group_sizes, (xk, ct_xk), (xb, ct_b), r, [],
                                  [*group, *yb, *y_contract_by_x, *yk], y, params)
    else:  # batch
        if is_float(x):
            ct_x = ragged_product(ct, y, group_sizes, (ct_yk, yk), (ct_b, yb), xb.index(r), [],
                                  [*xb, *xk, *x_contract_by_y], x, params)
        if is_float(y):
            ct_y = ragged_product(x, ct, group_sizes, (xk, ct_xk), (xb, ct_b), r, [],
                                  [*yb, *y_contract_by_x, *yk], y, params)
    return ct_x, ct_y, None
