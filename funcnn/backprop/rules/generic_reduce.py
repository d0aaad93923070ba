"""The VJP of the variadic ``reduce`` (``lax.reduce`` with a reducer of its own, e.g. an
(value, index) argmax pair, or several operands reduced together).

As in JAX's own rule (``_reduce_jvp``), the reduction is written as a balanced tree of the
reducer applied pairwise: the reduced axes flattened to one axis in front, split in halves
(the second half padded with the initial values when odd) until one entry is left. The
engine's own VJP of that tree is the rule, so the reducer's comparisons and ties behave as the
primitives it is made of, in JAX's order (with ties, a comparing reducer's derivative goes
to the entry the tree picks, which need not be the one XLA's reduce returned). A
differentiated initial value has no derivative (JAX refuses it too): the rule needs to know
which operands are differentiated, so it is a ``registry.defhigher`` pair.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import jaxpr_as_fun

from funcnn.backprop.engine import bind, where
from funcnn.backprop.registry import defhigher, is_float


def reduce_tree(reducer, inits, axes, *xs):
    """The reduction of operands ``xs`` over ``axes`` by pairwise ``reducer`` applications."""
    shape = np.shape(xs[0])
    kept = [i for i in range(len(shape)) if i not in axes]
    n = int(np.prod([shape[i] for i in axes]))
    moved = [jnp.transpose(x, (*axes, *kept)).reshape((n, *(shape[i] for i in kept)))
             for x in xs]
    pairwise = reducer
    for _ in range(len(kept) + 1):
        pairwise = jax.vmap(pairwise)
    if n == 0:
        return [jnp.full(tuple(shape[i] for i in kept), i) for i in inits]
    while moved[0].shape[0] > 1:
        size = moved[0].shape[0]
        half = (size + 1) // 2
        first = [x[:half] for x in moved]
        second = [x[half:] for x in moved]
        if size - half != half:
            second = [jnp.concatenate([x, jnp.full((1, *x.shape[1:]), i, x.dtype)])
                      for x, i in zip(second, inits, strict=True)]
        moved = list(pairwise(*first, *second))
    return [x[0] for x in moved]


def reduce_forward(eqn, invals, active):
    n = len(invals) // 2
    if any(active[n:]):
        raise NotImplementedError(
            f"lax.reduce with a differentiated initial value has no derivative (JAX defines "
            f"none either), at {where(eqn)}; pass the initial values as constants.")
    return bind(eqn, invals), ()


def reduce_backward(eqn, _, invals, cts, active):
    from funcnn.backprop.api import vjp  # the engine differentiates the tree it is

    n = len(invals) // 2
    xs, inits = list(invals[:n]), invals[n:]
    reducer = jaxpr_as_fun(eqn.params["jaxpr"])
    axes = tuple(eqn.params["dimensions"])
    floats = [i for i, x in enumerate(xs) if is_float(x)]

    def tree(*float_xs):
        full = list(xs)
        for i, x in zip(floats, float_xs, strict=True):
            full[i] = x
        return reduce_tree(reducer, inits, axes, *full)

    dense = [jnp.zeros(v.aval.shape, v.aval.dtype) if c is None else c
             for c, v in zip(cts, eqn.outvars, strict=True)]
    dense = [c if is_float(c) else np.zeros(np.shape(c), jax.dtypes.float0) for c in dense]
    ct_floats = vjp(tree, *[xs[i] for i in floats])[1](dense)
    ct_xs = [None] * n
    for i, c in zip(floats, ct_floats, strict=True):
        ct_xs[i] = lax.convert_element_type(c, jnp.result_type(xs[i]))
    return [*ct_xs, *([None] * n)]


defhigher("reduce", forward=reduce_forward, backward=reduce_backward)
