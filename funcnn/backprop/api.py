"""``vjp``, ``grad`` and ``value_and_grad`` with JAX's names and signatures.

    >>> from funcnn import backprop
    >>> backprop.grad(lambda w: (w ** 2).sum())(jnp.arange(3.0))
    Array([0., 2., 4.], dtype=float32)

Each call traces the function to a jaxpr (``jax.make_jaxpr``: tracing, not differentiation),
runs :func:`engine.forward`, and hands back a ``vjp_fn`` that runs :func:`engine.backward`.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax._src.lax import lax as lax_internal
from jax.extend import core as jcore

from funcnn.backprop import engine
from funcnn.backprop import sharding_jax as sj
from funcnn.backprop.registry import is_float


def trace(f: Callable, primals: Sequence, has_aux: bool = False):
    """Trace ``f(*primals)`` to a closed jaxpr over the flat leaves of ``primals``.

    Returns ``(closed_jaxpr, flat_args, in_tree, out_tree, unflatten_aux)``; the jaxpr's
    outputs are the flat leaves of ``f``'s output followed by the array leaves of the aux value;
    ``unflatten_aux(those leaves)`` rebuilds aux, with its non-array leaves (strings, ...) as
    they came, like JAX's ``vjp``.
    """
    flat_args, in_tree = jax.tree_util.tree_flatten(primals)
    trees = {}

    def flat_f(*flat):
        out = f(*jax.tree_util.tree_unflatten(in_tree, flat))
        if has_aux:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError("has_aux=True needs f to return a pair (output, aux); got "
                                f"{type(out).__name__}")
            out, aux = out
        else:
            aux = None
        out_flat, trees["out"] = jax.tree_util.tree_flatten(out)
        aux_flat, aux_tree = jax.tree_util.tree_flatten(aux)
        static = [TRACED if jcore.valid_jaxtype(x) else x for x in aux_flat]
        trees["aux"] = functools.partial(unflatten_aux, aux_tree, static)
        return out_flat + [x for x, s in zip(aux_flat, static, strict=True) if s is TRACED]

    closed = jax.make_jaxpr(flat_f)(*flat_args)
    return closed, flat_args, in_tree, trees["out"], trees["aux"]


TRACED = object()  # marks an aux leaf that went through the trace


def unflatten_aux(aux_tree, static, traced):
    traced = iter(traced)
    return jax.tree_util.tree_unflatten(aux_tree,
                                        [next(traced) if s is TRACED else s for s in static])


def zero_cotangent(x):
    """The cotangent of an input no output depends on: zeros (with the input's sharding on an
    explicit mesh, as JAX's), or float0 for integers."""
    if is_float(x):
        return sj.zeros_like(x)
    return np.zeros(np.shape(x), jax.dtypes.float0)


# JAX's own weak-typed cast (a conversion, not differentiation); skipped if a JAX lacks it.
CONVERT = getattr(lax_internal, "_convert_element_type", None)


def like_primal(ct, aval):
    """The cotangent weakly typed where the primal is (a Python scalar), as JAX's: so that
    ``w - lr * grad`` promotes the same way with either engine's gradient."""
    if getattr(aval, "weak_type", False) and is_float(ct) and CONVERT is not None:
        return CONVERT(ct, jnp.result_type(ct), weak_type=True)
    return ct


def vjp(f: Callable, *primals, has_aux: bool = False):
    """``(out, vjp_fn)`` or ``(out, vjp_fn, aux)``: ``vjp_fn(ct)`` returns a tuple with one
    cotangent per primal, each with the primal's structure, shape and dtype (float0 for
    integer leaves, as JAX's ``vjp``)."""
    closed, flat_args, in_tree, out_tree, rebuild_aux = trace(f, primals, has_aux)
    active_in = [is_float(x) for x in flat_args]
    outs, tape = engine.forward(closed.jaxpr, closed.consts, flat_args, active_in)
    n_out = out_tree.num_leaves
    out = jax.tree_util.tree_unflatten(out_tree, outs[:n_out])

    def vjp_fn(ct):
        ct_flat, ct_tree = jax.tree_util.tree_flatten(ct)
        if ct_tree != out_tree:
            raise TypeError("vjp_fn expected a cotangent with the structure of the output "
                            f"{out_tree}, got {ct_tree}")
        for i, (c, o) in enumerate(zip(ct_flat, outs[:n_out], strict=True)):
            if np.shape(c) != np.shape(o):
                raise ValueError(f"vjp_fn: cotangent leaf {i} has shape {np.shape(c)}, the "
                                 f"output has shape {np.shape(o)}")
        cts = list(ct_flat) + [None] * (len(outs) - n_out)
        cts = [c if is_float(o) else None for c, o in zip(cts, outs, strict=True)]
        ct_in = engine.backward(closed.jaxpr, tape, cts, active_in)
        ct_in = [like_primal(zero_cotangent(x) if c is None else c, v.aval)
                 for c, x, v in zip(ct_in, flat_args, closed.jaxpr.invars, strict=True)]
        return tuple(jax.tree_util.tree_unflatten(in_tree, ct_in))

    if has_aux:
        return out, vjp_fn, rebuild_aux(outs[n_out:])
    return out, vjp_fn


def check_differentiable(args, argnums: Sequence[int]) -> None:
    """Like JAX's ``grad``: differentiated inputs must be floating point (name the leaf)."""
    for i in argnums:
        for path, leaf in jax.tree_util.tree_flatten_with_path(args[i])[0]:
            if not is_float(leaf):
                raise TypeError(
                    f"grad requires floating-point inputs, but argument {i} leaf "
                    f"{jax.tree_util.keystr(path) or '<root>'} has dtype "
                    f"{jnp.result_type(leaf)}. Pass integer inputs (labels, ids) through an "
                    "argument outside argnums.")


def value_and_grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False):
    """Like JAX's ``value_and_grad``: ``f`` must return a real scalar (or ``(scalar, aux)``)."""
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)

    @functools.wraps(f)
    def value_and_grad_f(*args, **kwargs):
        for i in nums:
            if not -len(args) <= i < len(args):
                raise ValueError(f"argnums={argnums} but f was called with {len(args)} "
                                 "positional arguments")
        idx = tuple(i % len(args) for i in nums)
        check_differentiable(args, idx)

        def of_diff(*diff):
            full = list(args)
            for i, d in zip(idx, diff, strict=True):
                full[i] = d
            return f(*full, **kwargs)

        res = vjp(of_diff, *(args[i] for i in idx), has_aux=has_aux)
        out, vjp_fn = res[0], res[1]
        if not (is_float(out) and np.shape(out) == ()):
            raise TypeError("grad requires a real scalar output, got shape "
                            f"{np.shape(out)} and dtype {jnp.result_type(out)}")
        grads = vjp_fn(jnp.ones((), jnp.result_type(out)))
        g = grads[0] if single else grads
        return ((out, res[2]), g) if has_aux else (out, g)

    return value_and_grad_f


def grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False):
    """Like JAX's ``grad``: the gradient of a real scalar ``f`` w.r.t. ``args[argnums]``."""
    vg = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def grad_f(*args, **kwargs):
        (value, g) = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return grad_f
