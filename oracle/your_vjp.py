"""The gradient you wrote, in ``check_grads(..., vjp=my_vjp)``: calling it and reading its
cotangents leaf by leaf (every shape or structure it gets wrong is a message in the report,
not a crash), and the error for a function JAX cannot trace."""
from __future__ import annotations

import jax
import numpy as np


class NotAJaxFunction(TypeError):
    """``check_grads`` was given a function that cannot be traced by JAX."""


NOT_JAX = ("check_grads needs f to be a JAX function (jax.numpy / lax), because funcnn's "
           "engine, jax.vjp and the finite differences all trace it; calling {name} on traced "
           "arrays raised {error}. To check a NumPy, PyTorch or other implementation: pass "
           "its backward pass as vjp=my_vjp (called with NumPy arrays: my_vjp(*args, "
           "cotangent) -> cotangents) and give a JAX version of the forward as f; or wrap "
           "your forward (and backward) with jax.pure_callback inside a jax.custom_vjp, so "
           "that JAX can call them. To check results files instead, see `python -m oracle "
           "verify` (docs/oracle-format.md).")


def trace_shapes(f, args):
    """``jax.eval_shape`` of f on args; a function that is not JAX-traceable (it calls
    ``np.asarray`` or a torch op on its input) raises ``NotAJaxFunction`` saying what to do."""
    try:
        return jax.eval_shape(lambda *a: f(*a), *args)
    except Exception as err:
        text = f"{type(err).__name__}: {err}"
        if "Tracer" not in text and not isinstance(err, jax.errors.ConcretizationTypeError):
            raise
        first = text.splitlines()[0][:300]
        raise NotAJaxFunction(NOT_JAX.format(name=getattr(f, "__name__", "f"), error=first)) \
            from err


def yours(vjp, args, argnums, nums, ct, paths, values, diff_mask):
    """([your gradient leaf or None per differentiated leaf], [error messages])."""
    n_diff = sum(diff_mask)
    ct_np = jax.tree_util.tree_map(np.asarray, ct)
    try:
        out = vjp(*args, ct_np)
    except Exception as err:  # the report names it; it is not a crash of the oracle
        return [None] * n_diff, [f"yours: vjp raised {type(err).__name__}: {err}"]
    if isinstance(argnums, int):
        per_arg = {argnums: out}
    elif isinstance(out, tuple | list) and len(out) == len(nums):
        per_arg = dict(zip(nums, out, strict=True))
    else:
        got = f"a {type(out).__name__} of length {len(out)}" if isinstance(
            out, tuple | list) else f"a {type(out).__name__}"
        return [None] * n_diff, [f"yours: vjp returned {got}; expected a tuple of {len(nums)} "
                                 f"cotangents, one per entry of argnums={tuple(nums)}"]
    leaves, errors, k = [], [], 0
    for j, arg in enumerate(args):
        treedef = jax.tree_util.tree_structure(arg)
        mine = None
        if j in per_arg:
            try:
                mine = treedef.flatten_up_to(per_arg[j])
            except Exception as err:
                errors.append(f"yours: the cotangent of argument {j} does not have its "
                              f"structure ({err})")
        for leaf_i in range(treedef.num_leaves):
            if diff_mask[k]:
                g = None if mine is None else mine[leaf_i]
                x = np.asarray(values[k])
                if mine is not None and g is None:
                    errors.append(f"yours: no cotangent for {paths[k]}")
                elif g is not None:
                    try:
                        g = np.asarray(g, np.float64)
                    except Exception as err:
                        errors.append(f"yours: {paths[k]}: not an array "
                                      f"({type(err).__name__}: {err})")
                        g = None
                    if g is not None and g.shape != x.shape:
                        errors.append(f"yours: {paths[k]}: cotangent of shape {g.shape}, the "
                                      f"argument has shape {x.shape}")
                        g = None
                leaves.append(g)
            k += 1
    return leaves, errors
