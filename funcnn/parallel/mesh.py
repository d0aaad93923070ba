"""Device meshes: named axes over the devices, with Auto axis types.

A mesh lays the devices out in an array with one name per axis: ``{"data": 4, "model": 2}``
is 8 devices in a 4 x 2 grid, the batch split along ``"data"`` and the tensor-parallel
matrices along ``"model"``. The axes are ``AxisType.Auto`` (XLA's partitioner propagates the
shardings we give it), built with ``jax.sharding.Mesh`` directly: ``jax.make_mesh``'s default
axis types are Explicit in the JAX versions this project runs.

    >>> make_mesh()                          # 1-D, axis "data", every device
    >>> make_mesh(4)                         # 1-D, the first 4 devices
    >>> make_mesh({"data": 4, "model": 2})   # 2-D, 8 devices
    >>> make_mesh(parse_mesh("data=4,model=2"))
"""
from collections.abc import Mapping

import jax
import numpy as np
from jax.sharding import AxisType, Mesh

DATA = "data"
MODEL = "model"


def make_mesh(axes=None, devices=None):
    """A mesh over ``devices`` (default ``jax.devices()``, every host's, in their order).

    Args:
        axes: ``None`` (1-D ``"data"`` over every device), an int ``n`` (1-D ``"data"`` over
            the first ``n``), or a mapping ``{name: size}`` in mesh order, whose sizes
            multiply to at most the number of devices (the first that many are used).
        devices: the devices to lay out.

    Returns: a ``jax.sharding.Mesh`` whose axes are all ``AxisType.Auto``.
    """
    devices = list(jax.devices() if devices is None else devices)
    if axes is None:
        axes = {DATA: len(devices)}
    elif isinstance(axes, int) and not isinstance(axes, bool):
        axes = {DATA: axes}
    if not isinstance(axes, Mapping) or not axes:
        raise TypeError(f"make_mesh: expected None, an int or a mapping {{axis name: size}}, "
                        f"got {axes!r}")
    for name, size in axes.items():
        if not isinstance(name, str) or isinstance(size, bool) or not isinstance(size, int) \
                or size < 1:
            raise ValueError(f"make_mesh: expected axis names (str) with sizes >= 1, got "
                             f"{name!r}={size!r} in {dict(axes)}")
    total = int(np.prod(list(axes.values())))
    if total > len(devices):
        raise ValueError(f"make_mesh: expected axis sizes whose product is at most the "
                         f"{len(devices)} devices available, got {dict(axes)} (product "
                         f"{total}); simulate more CPU devices with XLA_FLAGS="
                         f"--xla_force_host_platform_device_count={total}")
    grid = np.array(devices[:total], dtype=object).reshape(tuple(axes.values()))
    return Mesh(grid, tuple(axes), axis_types=(AxisType.Auto,) * len(axes))


def parse_mesh(text):
    """``"data=4,model=2"`` -> ``{"data": 4, "model": 2}`` (the command line's ``--mesh``)."""
    axes = {}
    for part in str(text).split(","):
        name, sep, size = part.strip().partition("=")
        if not sep or not name.strip() or not size.strip().isdigit() or int(size) < 1:
            raise ValueError(f"--mesh: expected NAME=SIZE[,NAME=SIZE...] with sizes >= 1, "
                             f"e.g. data=4,model=2; got {text!r} (the part {part!r})")
        if name.strip() in axes:
            raise ValueError(f"--mesh: axis {name.strip()!r} is given twice in {text!r}")
        axes[name.strip()] = int(size)
    return axes


def axis_size(axis_sizes, name, where):
    """The size of mesh axis ``name``; ``ValueError`` naming the axes there are if absent.

    ``axis_sizes``: a mesh or its ``mesh.shape`` mapping ``{name: size}``.
    """
    sizes = dict(axis_sizes.shape if isinstance(axis_sizes, Mesh) else axis_sizes)
    if name not in sizes:
        raise ValueError(f"{where}: expected a mesh axis named {name!r}, but the mesh has axes "
                         f"{tuple(sizes)} (sizes {sizes}); build it with e.g. make_mesh("
                         f"{{{name!r}: n, ...}}) or --mesh {name}=n")
    return sizes[name]
