"""Training beyond one device on JAX's own sharding: a mesh, a layout, a jitted step.

No home-made collectives: a ``jax.sharding.Mesh`` (:mod:`.mesh`), a ``PartitionSpec`` per
parameter chosen by a layout (:mod:`.layouts`: ``dp``, ``fsdp`` (:mod:`.fsdp`), ``tp``
(Megatron, :mod:`.megatron`), ``2d``), and the ordinary training step jitted with those
shardings (:mod:`.step`); XLA's SPMD partitioner inserts every all-reduce, all-gather and
reduce-scatter. The batch is split over ``"data"``, the Megatron splits over ``"model"``.

    >>> from funcnn import models, optim, parallel
    >>> from funcnn.train import make_step
    >>> mesh = parallel.make_mesh({"data": 4, "model": 2})
    >>> plan = parallel.make_plan("2d", mesh, jax.eval_shape(model.init, key))
    >>> step = parallel.jit_step(make_step(parallel.sharded_loss(model.loss, plan), opt,
    ...                                    "hand"), plan,
    ...                         jax.eval_shape(opt.init, plan.param_shapes))
    >>> params = parallel.init_sharded(model.init, key, plan)
    >>> opt_state = parallel.init_state(opt, params, plan)
    >>> params, opt_state, loss = step(params, opt_state, (x, y))

Plain data parallel keeps its short path (:mod:`.data_parallel`: :func:`jit_data_parallel`,
:func:`replicate`, used by ``funcnn.train.train(data_parallel=True)``). Several hosts:
:mod:`.multihost`. Simulate D devices on a CPU with
``XLA_FLAGS=--xla_force_host_platform_device_count=D``, set before JAX is imported (the tests
do this in a subprocess).
"""
from funcnn.parallel.data_parallel import (
    AXIS,
    batch_sharded,
    check_divisible,
    jit_data_parallel,
    replicate,
    replicated,
    shard_batch,
)
from funcnn.parallel.fsdp import MIN_SHARD_ELEMENTS, canonical_spec, fsdp_spec, fsdp_specs
from funcnn.parallel.layouts import (
    LAYOUTS,
    ShardingPlan,
    batch_sharding,
    check_batch,
    layout_name,
    layout_specs,
    make_plan,
    param_shardings,
    replicated_sharding,
    state_shardings,
    state_specs,
)
from funcnn.parallel.megatron import tp_specs
from funcnn.parallel.mesh import DATA, MODEL, axis_size, make_mesh, parse_mesh
from funcnn.parallel.multihost import (
    global_batch,
    initialize_distributed,
    local_rows,
    place,
    to_host,
)
from funcnn.parallel.step import init_sharded, init_state, jit_step, sharded_loss, sharded_model

__all__ = [
    "AXIS", "DATA", "MODEL", "LAYOUTS", "MIN_SHARD_ELEMENTS", "ShardingPlan",
    "make_mesh", "parse_mesh", "axis_size",
    "replicated", "batch_sharded", "replicate", "check_divisible", "shard_batch",
    "jit_data_parallel",
    "fsdp_spec", "fsdp_specs", "canonical_spec", "tp_specs",
    "layout_name", "layout_specs", "make_plan", "param_shardings", "batch_sharding",
    "replicated_sharding", "state_specs", "state_shardings", "check_batch",
    "sharded_loss", "sharded_model", "jit_step", "init_sharded", "init_state",
    "initialize_distributed", "place", "local_rows", "global_batch", "to_host",
]
