"""ragged_dot_general's rule (rules/linalg.py) in its three modes, against a dense reference.

JAX differentiates only the ragged non-contracting mode (``lax.ragged_dot``); its transpose
raises for the other two. So every case is checked against ``jax.vjp`` of ``dense``, the same
product written from its definition (a 0/1 group mask per group, one ``dot_general`` each),
whose forward value is first checked against the primitive's; the non-contracting cases also
against ``jax.vjp`` of the primitive itself; all by float64 finite differences. The engine runs
eagerly and under ``jax.jit``. Last, ``jax.lax.ragged_dot`` in a small mixture-of-experts layer
against ``jax.grad``.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from funcnn import backprop
from tests.backprop.sampling import check_vjp, random_like, rng_for, run_jitted, vdot
from tests.helpers import assert_trees_close

TOL = dict(rtol=1e-12, atol=1e-12)


class R(NamedTuple):
    name: str
    x_shape: tuple
    y_shape: tuple
    group_sizes: np.ndarray
    contract: tuple  # (x's, y's)
    batch: tuple     # (x's, y's)
    ragged: int      # x's ragged dim
    group: tuple = ()  # y's group dim (non-contracting mode only)

    @property
    def dims(self):
        return lax.RaggedDotDimensionNumbers(dot_dimension_numbers=(self.contract, self.batch),
                                             lhs_ragged_dimensions=[self.ragged],
                                             rhs_group_dimensions=list(self.group))

    @property
    def mode(self):
        (xc, _), (xb, _) = self.contract, self.batch
        return "contracting" if self.ragged in xc else "batch" if self.ragged in xb else "free"


def gs(*rows):
    return np.array(rows if len(rows) > 1 else rows[0], np.int32)


CASES = [
    # ragged non-contracting: x [m, k], y [g, k, n] -> [m, n] (lax.ragged_dot)
    R("free_basic", (6, 3), (3, 3, 4), gs([2, 1, 3]), ((1,), (1,)), ((), ()), 0, (0,)),
    R("free_empty_groups", (6, 3), (4, 3, 2), gs([0, 4, 0, 2]), ((1,), (1,)), ((), ()), 0, (0,)),
    R("free_sum_below_m", (7, 3), (3, 3, 2), gs([1, 0, 3]), ((1,), (1,)), ((), ()), 0, (0,)),
    R("free_group_dim_inside_y", (5, 3), (3, 2, 4), gs([3, 2]), ((1,), (0,)), ((), ()), 0, (1,)),
    R("free_batch_per_batch_sizes", (2, 5, 3), (3, 2, 3, 4), gs([2, 0, 3], [1, 3, 0]),
      ((2,), (2,)), ((0,), (1,)), 1, (0,)),
    R("free_ragged_second_free_dim", (3, 5, 2, 2), (2, 2, 2, 3), gs([2, 3], [0, 5], [4, 0]),
      ((3, 2), (1, 2)), ((), ()), 1, (0,)),
    # ragged contracting: x [m, k], y [k, n] -> [g, m, n]
    R("contracting_basic", (4, 6), (6, 3), gs([2, 0, 3]), ((1,), (0,)), ((), ()), 1),
    R("contracting_batch", (2, 4, 5), (2, 5, 3), gs([2, 3], [5, 0]), ((2,), (1,)), ((0,), (0,)),
      2),
    R("contracting_dims_listed_out_of_order", (4, 3, 5), (5, 3, 2), gs([1, 2]),
      ((2, 1), (0, 1)), ((), ()), 1),
    R("contracting_prefix_of_listed_dims", (4, 3, 5), (5, 3, 2),
      gs([1, 2], [0, 3], [3, 0], [2, 0], [1, 1]), ((2, 1), (0, 1)), ((), ()), 1),
    # ragged batch: x [b, m, k], y [b, k, n] -> [b, m, n]
    R("batch_basic", (5, 2, 3), (5, 3, 4), gs([2, 3]), ((2,), (1,)), ((0,), (0,)), 0),
    R("batch_sum_below_b", (5, 2, 3), (5, 3, 2), gs([1, 0, 2]), ((2,), (1,)), ((0,), (0,)), 0),
    R("batch_second_batch_dim", (2, 3, 4, 2), (3, 2, 2, 3), gs([1, 2], [3, 0]),
      ((3,), (2,)), ((0, 1), (1, 0)), 1),
]


def prefix_dims(case: R) -> list[int]:
    """The x dims group_sizes' leading dims index (JAX's ragged_dot_general docstring)."""
    (xc, _), (xb, _) = case.contract, case.batch
    free = [d for d in range(len(case.x_shape)) if d not in xc and d not in xb]
    if case.mode == "free":
        return [*xb, *free[:free.index(case.ragged)]]
    if case.mode == "contracting":
        return [*xb, *xc[:xc.index(case.ragged)]]
    return list(xb[:xb.index(case.ragged)])


def group_masks(case: R) -> np.ndarray:
    """[g, *x_shape]: 1 where x's element lies in group i along the ragged dim."""
    prefix = prefix_dims(case)
    g = case.group_sizes.shape[-1]
    sizes = np.broadcast_to(case.group_sizes,
                            tuple(case.x_shape[d] for d in prefix) + (g,))
    ends = np.cumsum(sizes, -1)
    starts = ends - sizes
    idx = np.indices(case.x_shape)
    at = tuple(idx[d] for d in prefix)
    pos = idx[case.ragged]
    return np.stack([(starts[at + (i,)] <= pos) & (pos < ends[at + (i,)]) for i in range(g)])


def dense(case: R):
    """The ragged product from its definition, for x and y (float64)."""
    masks = group_masks(case).astype(np.float64)
    dn = (case.contract, case.batch)

    def f(x, y):
        if case.mode == "free":
            return sum(lax.dot_general(masks[i] * x, jnp.take(y, i, axis=case.group[0]),
                                       shifted(dn, case.group[0]))
                       for i in range(len(masks)))
        if case.mode == "contracting":
            return jnp.stack([lax.dot_general(masks[i] * x, y, dn) for i in range(len(masks))])
        return lax.dot_general(x, y, dn)

    return f


def shifted(dn, removed):
    """y's dims in ``dn`` renumbered after deleting y's dim ``removed``."""
    (xc, yc), (xb, yb) = dn
    drop = lambda dims: tuple(d - (d > removed) for d in dims)  # noqa: E731
    return (xc, drop(yc)), (xb, drop(yb))


def primitive(case: R):
    return lambda x, y: lax.ragged_dot_general(x, y, jnp.asarray(case.group_sizes), case.dims)


def draw(case: R):
    rng = rng_for(f"ragged-{case.name}")
    return rng, (rng.standard_normal(case.x_shape), rng.standard_normal(case.y_shape))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_ragged_dot_general_against_dense_reference(case):
    rng, args = draw(case)
    f, ref = primitive(case), dense(case)
    out = f(*args)
    assert_trees_close(out, ref(*args), **TOL, what="the dense reference's forward: ")
    ct, direction = random_like(rng, out), random_like(rng, args)
    want = run_jitted(lambda a, c: jax.vjp(ref, *a)[1](c), args, ct)
    eager = backprop.vjp(f, *args)[1](ct)
    jitted = run_jitted(lambda a, c: backprop.vjp(f, *a)[1](c), args, ct)
    assert_trees_close(eager, want, **TOL, what="eager vs jax.vjp(dense): ")
    assert_trees_close(jitted, want, **TOL, what="jit vs jax.vjp(dense): ")
    eps = 1e-6
    ends = [vdot(ct, f(*(a + s * eps * d for a, d in zip(args, direction, strict=True))))
            for s in (1, -1)]
    assert_trees_close(vdot(eager, direction), (ends[0] - ends[1]) / (2 * eps), rtol=1e-7,
                       atol=1e-9, what="<vjp(ct), d> vs finite differences: ")


@pytest.mark.parametrize("case", [c for c in CASES if c.mode == "free"],
                         ids=[c.name for c in CASES if c.mode == "free"])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_non_contracting_mode_against_jax(case, jit):
    """The one mode JAX differentiates: the primitive itself against jax.vjp."""
    rng, args = draw(case)
    check_vjp(primitive(case), args, rng, rtol=1e-12, atol=1e-12, jit=jit)


def test_group_sizes_get_no_cotangent():
    case = CASES[0]
    _, (x, y) = draw(case)
    sizes = jnp.asarray(case.group_sizes)
    f = lambda x, y, s: lax.ragged_dot_general(x, y, s, case.dims)  # noqa: E731
    out, vjp_fn = backprop.vjp(f, x, y, sizes)
    cts = vjp_fn(jnp.ones_like(out))
    assert cts[2].dtype == jax.dtypes.float0 and cts[2].shape == sizes.shape


def test_group_offset_raises_clearly():
    from funcnn.backprop.registry import VJP_RULES

    case = CASES[0]
    _, (x, y) = draw(case)
    with pytest.raises(NotImplementedError, match="group_offset"):
        VJP_RULES["ragged_dot_general"](
            jnp.zeros((6, 4)), x, y, case.group_sizes, out=None,
            ragged_dot_dimension_numbers=case.dims, group_offset=jnp.zeros((1,), jnp.int32))


# --- jax.lax.ragged_dot in a mixture-of-experts layer ----------------------------------------
def moe_loss(router, w_in, w_out, x):
    """Top-1 routing: tokens sorted by expert, two grouped matmuls, gated, unsorted."""
    logits = x @ router                                   # [t, e]
    expert = jnp.argmax(logits, axis=-1)
    gate = jnp.take_along_axis(jax.nn.softmax(logits), expert[:, None], axis=-1)
    order = jnp.argsort(expert)
    sizes = jnp.bincount(expert, length=router.shape[1]).astype(jnp.int32)
    h = jax.nn.gelu(lax.ragged_dot(x[order], w_in, sizes))  # [t, hidden]
    y = lax.ragged_dot(h, w_out, sizes)                       # [t, d]
    out = jnp.zeros_like(y).at[order].set(y) * gate
    return jnp.sum(jnp.tanh(out + x) ** 2)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_mixture_of_experts_layer_against_jax_grad(jit):
    rng = rng_for("ragged-moe")
    t, d, hidden, e = 12, 4, 6, 4
    args = (rng.standard_normal((d, e)), rng.standard_normal((e, d, hidden)) / 2,
            rng.standard_normal((e, hidden, d)) / 2, rng.standard_normal((t, d)))
    nums = tuple(range(4))
    want = jax.jit(jax.grad(moe_loss, argnums=nums))(*args)
    grad = backprop.grad(moe_loss, argnums=nums)
    got = jax.jit(grad)(*args) if jit else grad(*args)
    assert_trees_close(got, want, **TOL, what="MoE layer vs jax.grad: ")
