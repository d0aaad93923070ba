"""Training layouts: where each parameter, optimizer-state leaf and batch lives on a mesh.

==========  =====================================  ====================================
layout      parameters and optimizer state         batch
==========  =====================================  ====================================
``dp``      replicated                             split over ``"data"``
``fsdp``    split over ``"data"`` (:mod:`.fsdp`)    split over ``"data"``
``tp``      Megatron splits over ``"model"``       split over ``"data"`` if the mesh has
            (:mod:`.megatron`)                     it, else replicated
``2d``      Megatron over ``"model"``, then FSDP   split over ``"data"``
            over ``"data"`` on the free dimensions
==========  =====================================  ====================================

(``fsdp_tp`` is another name for ``2d``.) A :class:`ShardingPlan` holds the mesh and the
specs; the optimizer state follows the parameters: a state leaf whose path ends with a
parameter's path and that has its shape (``SGDState.momentum['dense_0']['w']``, Optax's
``mu``/``nu``/``trace``) gets that parameter's spec, any other leaf (a step count) is
replicated.

    >>> mesh = make_mesh({"data": 4, "model": 2})
    >>> plan = make_plan("2d", mesh, jax.eval_shape(model.init, key))
    >>> plan.param_specs["dense_0"]["w"]            # P('data', 'model')
"""
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from funcnn.parallel.data_parallel import check_divisible
from funcnn.parallel.fsdp import MIN_SHARD_ELEMENTS, fsdp_specs
from funcnn.parallel.megatron import tp_specs
from funcnn.parallel.mesh import DATA, MODEL, axis_size

LAYOUTS = ("dp", "fsdp", "tp", "2d")
ALIASES = {"fsdp_tp": "2d"}


class ShardingPlan(NamedTuple):
    """``mesh``; ``layout`` (a name in ``LAYOUTS``); ``param_specs``: a tree of
    ``PartitionSpec`` like the parameters; ``param_shapes``: their ``ShapeDtypeStruct``s;
    ``batch_spec``: the spec of every batch leaf (its first axis is the batch);
    ``data_axis``: the mesh axis the batch is split over (None: replicated)."""

    mesh: Mesh
    layout: str
    param_specs: Any
    param_shapes: Any
    batch_spec: PartitionSpec
    data_axis: Any


def layout_name(layout):
    """``layout`` checked and with its alias resolved (``"fsdp_tp"`` -> ``"2d"``)."""
    name = ALIASES.get(layout, layout)
    if name not in LAYOUTS:
        raise ValueError(f"expected a layout in {LAYOUTS + tuple(ALIASES)}, got {layout!r}")
    return name


def layout_specs(layout, params, axis_sizes, *, num_heads=None,
                 min_shard_elements=MIN_SHARD_ELEMENTS, data_axis=DATA, model_axis=MODEL):
    """The ``PartitionSpec`` tree of ``params`` (arrays or shapes) under ``layout``.

    ``axis_sizes``: the mesh's ``{name: size}`` (``mesh.shape``). ``num_heads``: checked to
    divide over ``model_axis`` (tp, 2d). ``min_shard_elements``: FSDP leaves smaller than
    this stay replicated. A mesh without an axis the layout needs is a ``ValueError``.
    """
    layout = layout_name(layout)
    where = f"layout {layout!r}"
    if layout == "dp":
        axis_size(axis_sizes, data_axis, where)
        return jax.tree.map(lambda _: PartitionSpec(), params)
    if layout == "fsdp":
        return fsdp_specs(params, axis_size(axis_sizes, data_axis, where), data_axis,
                          min_elements=min_shard_elements)
    if layout == "tp":
        return tp_specs(params, axis_size(axis_sizes, model_axis, where), model_axis,
                        num_heads)
    data = axis_size(axis_sizes, data_axis, where)
    base = tp_specs(params, axis_size(axis_sizes, model_axis, where), model_axis, num_heads)
    return fsdp_specs(params, data, data_axis, base=base, min_elements=min_shard_elements)


def make_plan(layout, mesh, params, *, num_heads=None, min_shard_elements=MIN_SHARD_ELEMENTS,
              data_axis=DATA, model_axis=MODEL):
    """The :class:`ShardingPlan` of ``params`` (arrays or ``jax.eval_shape`` shapes) under
    ``layout`` on ``mesh``; the keyword arguments as in :func:`layout_specs`."""
    layout = layout_name(layout)
    specs = layout_specs(layout, params, mesh.shape, num_heads=num_heads,
                         min_shard_elements=min_shard_elements, data_axis=data_axis,
                         model_axis=model_axis)
    shapes = jax.tree.map(lambda p: jax.ShapeDtypeStruct(np.shape(p), p.dtype), params)
    batch_axis = data_axis if data_axis in mesh.shape else None
    batch_spec = PartitionSpec(batch_axis) if batch_axis else PartitionSpec()
    return ShardingPlan(mesh, layout, specs, shapes, batch_spec, batch_axis)


def param_shardings(plan):
    """The parameters' ``NamedSharding`` tree."""
    return jax.tree.map(lambda s: NamedSharding(plan.mesh, s), plan.param_specs)


def batch_sharding(plan):
    """The ``NamedSharding`` of every batch leaf."""
    return NamedSharding(plan.mesh, plan.batch_spec)


def replicated_sharding(plan):
    """The sharding of a value every device holds whole (the loss)."""
    return NamedSharding(plan.mesh, PartitionSpec())


def state_specs(plan, opt_state):
    """The spec tree of ``opt_state`` (arrays or shapes): see the module's rule."""
    by_path = {}
    for path, spec in jax.tree_util.tree_flatten_with_path(plan.param_specs)[0]:
        by_path[_keys(path)] = spec
    shapes = {_keys(path): np.shape(leaf)
              for path, leaf in jax.tree_util.tree_flatten_with_path(plan.param_shapes)[0]}

    def spec_of(path, leaf):
        keys = _keys(path)
        for start in range(len(keys)):
            tail = keys[start:]
            if tail in by_path and shapes[tail] == np.shape(leaf):
                return by_path[tail]
        return PartitionSpec()

    return jax.tree_util.tree_map_with_path(spec_of, opt_state)


def state_shardings(plan, opt_state):
    """The ``NamedSharding`` tree of ``opt_state``."""
    return jax.tree.map(lambda s: NamedSharding(plan.mesh, s), state_specs(plan, opt_state))


def check_batch(batch, plan, where="sharded step"):
    """``ValueError`` unless every leaf's first axis splits over the plan's data axis."""
    if plan.data_axis is None:
        return
    for path, leaf in jax.tree_util.tree_flatten_with_path(batch)[0]:
        shape = np.shape(leaf)
        if not shape:
            raise ValueError(f"{where}: expected batch leaves with a first (batch) axis, got "
                             f"a scalar at batch{jax.tree_util.keystr(path)}")
        check_divisible(shape[0], plan.mesh, f"{where} (batch{jax.tree_util.keystr(path)}, "
                        f"shape {shape})", axis=plan.data_axis)


def _keys(path):
    return tuple(str(k) for k in path)

