"""Data-parallel training on JAX's own sharding: a device mesh, the batch split across it.

The recipe (no home-made collectives):

1. a 1-D :func:`make_mesh` over the devices, axis ``"data"``;
2. parameters and optimizer state **replicated** (``PartitionSpec()``): every device holds a
   full copy;
3. each batch **sharded** along its first axis (``PartitionSpec("data")``): with D devices,
   each holds ``batch_size / D`` examples;
4. the ordinary training step jitted with those shardings (:func:`jit_data_parallel`). The
   loss is a mean over the batch, so its gradient is a sum over the devices' shards; XLA's
   SPMD partitioner inserts that all-reduce itself. Results equal one-device training up to
   the order of floating-point sums.

**Several hosts.** Start the same program on every host and call :func:`initialize_distributed`
first (``jax.distributed.initialize``: coordinator address, number of processes, this
process's id; on TPU pods and SLURM clusters all three are detected). ``jax.devices()`` then
lists every device of every host, :func:`make_mesh` spans them all, and each host feeds only
its own slice of the global batch: ``jax.make_array_from_process_local_data(batch_sharding,
local_batch)`` (see :func:`global_batch`). Nothing else changes.

Simulate D devices on a CPU with ``XLA_FLAGS=--xla_force_host_platform_device_count=D``, set
before JAX is imported (the tests do this in a subprocess).

    >>> mesh = make_mesh()                              # all devices
    >>> step = jit_data_parallel(step_fn, mesh)         # step_fn(params, opt_state, batch)
    >>> params, opt_state = replicate((params, opt_state), mesh)
    >>> params, opt_state, loss = step(params, opt_state, (x, y))
"""
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "data"


def initialize_distributed(coordinator_address=None, num_processes=None, process_id=None,
                           **kwargs):
    """Join a multi-host run: ``jax.distributed.initialize`` with the same arguments.

    Call once per process, before any other JAX call. On a single host it is not needed.
    """
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id, **kwargs)


def make_mesh(num_devices=None, devices=None):
    """A 1-D mesh with axis ``"data"`` over the first ``num_devices`` devices (default all)."""
    devices = list(jax.devices() if devices is None else devices)
    if num_devices is not None:
        if not 1 <= num_devices <= len(devices):
            raise ValueError(f"make_mesh: expected 1 <= num_devices <= {len(devices)} (the "
                             f"devices available), got num_devices={num_devices}")
        devices = devices[:num_devices]
    return Mesh(np.array(devices), (AXIS,))


def replicated(mesh):
    """The sharding of a value every device holds whole (parameters, optimizer state)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh):
    """The sharding of a value split along its first axis across the mesh (a batch)."""
    return NamedSharding(mesh, PartitionSpec(AXIS))


def replicate(tree, mesh):
    """Place every leaf of ``tree`` on every device of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))


def check_divisible(batch_size, mesh, where="data parallel"):
    """Raise ``ValueError`` unless ``batch_size`` splits evenly over the mesh's devices."""
    d = mesh.devices.size
    if batch_size % d:
        raise ValueError(f"{where}: expected a batch size divisible by the {d} devices of the "
                         f"mesh, got batch_size={batch_size}; use a multiple of {d}")


def shard_batch(batch, mesh):
    """Split every leaf of ``batch`` (``x: [batch, ...]``, ``y: [batch]``) over the mesh."""
    for leaf in jax.tree.leaves(batch):
        check_divisible(np.shape(leaf)[0], mesh, "shard_batch")
    return jax.device_put(batch, batch_sharded(mesh))


def global_batch(local_batch, mesh):
    """Multi-host: assemble the global batch from this process's slice of it."""
    sharding = batch_sharded(mesh)
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, a),
                        local_batch)


def jit_data_parallel(step, mesh):
    """``jax.jit(step)`` for ``step(params, opt_state, batch) -> (params, opt_state, loss)``
    with parameters and state replicated and the batch sharded over ``mesh``."""
    rep, shard = replicated(mesh), batch_sharded(mesh)
    return jax.jit(step, in_shardings=(rep, rep, shard), out_shardings=(rep, rep, rep))
