"""Several processes (hosts): joining the run, and placing values on a mesh that spans them.

Start the same program on every host and call :func:`initialize_distributed` first
(``jax.distributed.initialize``: coordinator address, number of processes, this process's
id; on TPU pods and SLURM clusters all three are detected). ``jax.devices()`` then lists every
device of every process, :func:`funcnn.parallel.make_mesh` spans them all, and each process
holds only the shards its own devices hold:

- :func:`place` builds global arrays from a value every process has (initial parameters);
- :func:`global_batch` from each process's own slice of the batch (:func:`local_rows` says
  which rows that is);
- :func:`to_host` brings a sharded result back whole to every process.

On one process all of them work the same, so one program serves both.
"""
import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Sharding

from funcnn.parallel.data_parallel import batch_sharded


def initialize_distributed(coordinator_address=None, num_processes=None, process_id=None,
                           **kwargs):
    """Join a multi-host run: ``jax.distributed.initialize`` with the same arguments.

    Call once per process, before any other JAX call. On a single host it is not needed.
    """
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id, **kwargs)


def place(tree, shardings):
    """Global arrays with ``shardings`` (one ``Sharding`` or a tree like ``tree``) from host
    values that every process holds whole: each process fills only its own devices' shards
    (``jax.make_array_from_callback``), so it works across processes, where
    ``jax.device_put`` onto another process's devices would not."""
    if isinstance(shardings, Sharding):
        shardings = jax.tree.map(lambda _: shardings, tree)

    def one(x, sharding):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(one, tree, shardings)


def local_rows(batch_size, sharding):
    """The ``slice`` of a global batch of ``batch_size`` rows that this process's devices
    hold under ``sharding`` (batch along the first axis): the rows it must feed."""
    bounds = sorted({(i[0].start or 0, batch_size if i[0].stop is None else i[0].stop)
                     for i in sharding.addressable_devices_indices_map((batch_size,)).values()})
    start, end = bounds[0]
    for lo, hi in bounds[1:]:
        if lo > end:
            raise ValueError(f"local_rows: this process's rows of the batch are not contiguous "
                             f"under {sharding} (row ranges {bounds}); lay the mesh out with "
                             f"each process's devices together along the data axis")
        end = max(end, hi)
    return slice(start, end)


def global_batch(local_batch, mesh, sharding=None):
    """Multi-host: the global batch from this process's slice of it (``local_rows``).

    ``sharding``: the batch's (default split over the mesh's ``"data"`` axis).
    """
    sharding = batch_sharded(mesh) if sharding is None else sharding
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, a),
                        local_batch)


def to_host(tree):
    """Every leaf whole as a NumPy array on every process (gathered across processes)."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, jax.device_get(tree))
    return multihost_utils.process_allgather(tree, tiled=True)
