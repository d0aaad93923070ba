"""Data parallel: parameters and optimizer state replicated, the batch split over ``"data"``.

With D devices along the mesh's ``"data"`` axis each holds ``batch_size / D`` examples and a
full copy of the parameters. The loss is a mean over the batch, so its gradient is a sum over
the devices' shards; XLA's SPMD partitioner inserts that all-reduce itself. Results equal
one-device training up to the order of floating-point sums.

    >>> mesh = make_mesh()                              # all devices, axis "data"
    >>> step = jit_data_parallel(step_fn, mesh)         # step_fn(params, opt_state, batch)
    >>> params, opt_state = replicate((params, opt_state), mesh)
    >>> params, opt_state, loss = step(params, opt_state, (x, y))

A mesh with more axes (``{"data": 4, "model": 2}``) splits the batch over ``"data"`` only.
"""
import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from funcnn.parallel.mesh import DATA, axis_size

AXIS = DATA


def replicated(mesh):
    """The sharding of a value every device holds whole (parameters, optimizer state)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh, axis=AXIS):
    """The sharding of a value split along its first axis over mesh axis ``axis`` (a batch)."""
    axis_size(mesh, axis, "batch_sharded")
    return NamedSharding(mesh, PartitionSpec(axis))


def replicate(tree, mesh):
    """Place every leaf of ``tree`` on every device of ``mesh`` (one process)."""
    return jax.device_put(tree, replicated(mesh))


def check_divisible(batch_size, mesh, where="data parallel", axis=AXIS):
    """Raise ``ValueError`` unless ``batch_size`` splits evenly over mesh axis ``axis``.

    ``mesh``: a mesh or its ``{name: size}`` mapping.
    """
    d = axis_size(mesh, axis, where)
    if batch_size % d:
        raise ValueError(f"{where}: expected a batch size divisible by the {d} devices of the "
                         f"mesh axis {axis!r}, got batch_size={batch_size}; use a multiple of "
                         f"{d}")


def shard_batch(batch, mesh):
    """Split every leaf of ``batch`` (``x: [batch, ...]``, ``y: [batch]``) over the mesh."""
    for leaf in jax.tree.leaves(batch):
        check_divisible(np.shape(leaf)[0], mesh, "shard_batch")
    return jax.device_put(batch, batch_sharded(mesh))


def jit_data_parallel(step, mesh):
    """``jax.jit(step)`` for ``step(params, opt_state, batch) -> (params, opt_state, loss)``
    with parameters and state replicated and the batch sharded over ``mesh``."""
    rep, shard = replicated(mesh), batch_sharded(mesh)
    return jax.jit(step, in_shardings=(rep, rep, shard), out_shardings=(rep, rep, rep))
