"""Tensor parallel in Megatron style (Shoeybi et al., "Megatron-LM", 2019, section 3).

Over a mesh axis ``"model"`` of M devices:

- **an MLP** ``y = f(x W1 + b1) W2 + b2``: ``W1`` split by columns (``P(None, "model")``,
  each device computes its slice of the hidden units, ``b1`` split alike), ``W2`` by rows
  (``P("model")``: each device's partial product is summed by one all-reduce), ``b2``
  replicated;
- **self-attention**: ``wq, wk, wv`` split by columns, i.e. by heads (``bq, bk, bv`` alike),
  so each device attends with its own heads; ``wo`` split by rows, ``bo`` replicated.

Which parameters those are, in funcnn's parameter trees (``funcnn.models``):

- an *attention* is a dict with ``wq, wk, wv, wo`` (``multi_head_self_attention``);
- an *MLP* is a dict (a ``serial``'s parameters) whose sublayers with parameters are only
  dense layers (``{"w": [in, out], "b": [out]}``), at least two, and layer norms; its dense
  layers are paired in the order of their names' index (``dense_0`` with ``dense_1``,
  ``dense_2`` with ``dense_3``, ...), the first of a pair split by columns, the second by
  rows; an unpaired last one (an odd count: ``mlp(hidden=(h1, h2))``'s head) stays
  replicated. So ``models.mlp(64, hidden=(64,))`` splits ``dense_0`` by columns and the head
  ``dense_1`` by rows, and a transformer block's ``mlp`` (``dense_0`` then ``dense_1``) alike;
- everything else (embeddings, layer norms, a transformer's input projection and head)
  stays replicated.

A split that does not divide (columns of ``W1``, or ``num_heads`` when given) is a
``ValueError`` naming the parameter, its shape and the axis size.
"""
import re

import jax
from jax.sharding import PartitionSpec

from funcnn.parallel.fsdp import canonical_spec
from funcnn.parallel.mesh import MODEL

ATTENTION_KEYS = frozenset({"wq", "wk", "wv", "wo"})


def tp_specs(params, size, axis=MODEL, num_heads=None):
    """The tensor-parallel ``PartitionSpec`` of every leaf of ``params`` (a nested dict of
    arrays or ``ShapeDtypeStruct``s), over mesh axis ``axis`` of ``size`` devices.

    ``num_heads``: the attention's head count, checked to divide by ``size`` (whole heads on
    each device); None skips that check (the split is still by columns).

    Raises ``ValueError`` for a split that does not divide, or for parameters with neither
    an MLP nor an attention (nothing to split).
    """
    found = []
    specs = _walk(params, (), size, axis, num_heads, found)
    if not found:
        keys = list(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"tensor parallel: expected parameters with an MLP (two or more dense "
                         f"layers in one serial) or a self-attention (wq, wk, wv, wo) to "
                         f"split over mesh axis {axis!r}, found neither (top-level {keys}); "
                         f"use the 'dp' or 'fsdp' layout for this model")
    return specs


def _replicated(tree):
    return jax.tree.map(lambda _: PartitionSpec(), tree)


def _walk(node, path, size, axis, num_heads, found):
    if not isinstance(node, dict):
        return _replicated(node)
    if ATTENTION_KEYS <= set(node):
        found.append(path)
        return _attention(node, path, size, axis, num_heads)
    if _is_mlp(node):
        found.append(path)
        return _mlp(node, path, size, axis)
    return {k: _walk(v, path + (k,), size, axis, num_heads, found) for k, v in node.items()}


def _is_dense(node):
    return (isinstance(node, dict) and set(node) == {"w", "b"} and len(node["w"].shape) == 2
            and len(node["b"].shape) == 1)


def _is_norm(node):
    return isinstance(node, dict) and set(node) == {"scale", "bias"}


def _is_mlp(node):
    with_params = [v for v in node.values() if jax.tree.leaves(v)]
    dense = [v for v in with_params if _is_dense(v)]
    return len(dense) >= 2 and all(_is_dense(v) or _is_norm(v) for v in with_params)


def _index(name):
    """``"dense_10"`` -> ``("dense", 10)``: names in numeric order, not string order."""
    match = re.fullmatch(r"(.*?)_?(\d+)", name)
    return (match.group(1), int(match.group(2))) if match else (name, -1)


def _mlp(node, path, size, axis):
    specs = _replicated(node)
    dense = sorted((k for k, v in node.items() if _is_dense(v)), key=_index)
    pairs = zip(dense[0::2], dense[1::2], strict=False)  # an unpaired last one: replicated
    for first, second in pairs:
        w1, w2 = node[first]["w"].shape, node[second]["w"].shape
        _check(w1[1], size, axis, path + (first, "w"), w1, "columns")
        _check(w2[0], size, axis, path + (second, "w"), w2, "rows")
        specs[first] = {"w": canonical_spec((None, axis)), "b": canonical_spec((axis,))}
        specs[second] = {"w": canonical_spec((axis, None)), "b": PartitionSpec()}
    return specs


def _attention(node, path, size, axis, num_heads):
    specs = _replicated(node)
    for name in "qkv":
        shape = node["w" + name].shape
        _check(shape[1], size, axis, path + ("w" + name,), shape, "columns (heads)")
        specs["w" + name] = canonical_spec((None, axis))
        if "b" + name in node:
            specs["b" + name] = canonical_spec((axis,))
    shape = node["wo"].shape
    _check(shape[0], size, axis, path + ("wo",), shape, "rows")
    specs["wo"] = canonical_spec((axis, None))
    if num_heads is not None and num_heads % size:
        raise ValueError(f"tensor parallel: expected num_heads divisible by the {size} "
                         f"devices of mesh axis {axis!r} (whole heads on each device) at "
                         f"{'/'.join(path)}, got num_heads={num_heads}; use a head count that "
                         f"is a multiple of {size} or a smaller {axis!r} axis")
    return specs


def _check(width, size, axis, path, shape, what):
    if width % size:
        raise ValueError(f"tensor parallel: expected the {what} of {'/'.join(path)} (shape "
                         f"{tuple(shape)}) to divide over the {size} devices of mesh axis "
                         f"{axis!r}, got {width} {what.split()[0]}; use a width that is a "
                         f"multiple of {size} or a smaller {axis!r} axis")
