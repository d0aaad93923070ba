"""Where the engine touches JAX's sharding internals: the primitives its sharding and
collective rules bind, a value's varying manual axes, and the params of ``shard_map``.

The same on the JAX versions CI runs (0.10, 0.11, 0.12): ``sharding_constraint`` lives in
``jax._src.pjit``, ``device_put`` in ``jax._src.dispatch``, ``pvary`` in ``jax._src.core`` and the
collectives in ``jax._src.lax.parallel``; inside ``shard_map`` an aval's ``mat.varying`` is the
set of manual mesh axes along which the value differs between devices (its "vma"); a
``shard_map`` equation holds ``jaxpr`` (open), ``mesh``, ``in_specs``, ``out_specs``,
``check_vma`` and ``newly_manual_axes``; ``reshard`` (explicit sharding) lives in ``jax._src.pjit``
and binds under its mesh. Everything else the rules need is public ``jax.lax``.

Explicit sharding (a mesh with ``AxisType.Explicit`` axes): a value's type carries its sharding
(``jax.typeof(x).sharding``, a ``NamedSharding`` on the abstract mesh, spec one entry per dim).
Where a rule builds a value whose sharding JAX's own transpose would set (a contraction over
a sharded dim, a sum back to a broadcast operand, zeros in an operand's shape), it passes
``out_sharding=sharding_of(x)`` (or ``sharding=`` for ``lax.full``) to the public ``lax``
function; ``None`` outside explicit meshes, where the rules keep their plain path. Constant
arrays in a primal's shape (the zeros a gather's cotangent is scattered into, a zero
gradient, the zeros a max pool's selects pick from) come from ``full_like``/``zeros_like``,
placed as the primal is. The same on 0.10, 0.11 and 0.12.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jax._src import core, dispatch, pjit
from jax._src import mesh as mesh_lib
from jax._src.lax import parallel
from jax.sharding import AxisType

SHARDING_CONSTRAINT = pjit.sharding_constraint_p
DEVICE_PUT = dispatch.device_put_p
PVARY = core.pvary_p
PSUM_INVARIANT = parallel.psum_invariant_p
PSUM = parallel.psum_p
COPY = dispatch.ArrayCopySemantics
RESHARD = pjit.reshard_p


def varying_axes(aval) -> frozenset:
    """The manual mesh axes along which a value varies (empty outside shard_map, or when the
    shard_map does not check replication)."""
    mat = getattr(aval, "mat", None)
    return frozenset(getattr(mat, "varying", ()) or ())


def explicit(sharding):
    """``sharding`` if it is a ``NamedSharding`` on a mesh with an explicit axis that is also
    the mesh in context (``jax.set_mesh``, or the one a trace runs under), else None. Outside
    that context (a value placed on an explicit mesh by ``device_put``, the program run
    without ``set_mesh``) JAX cannot bind an op with an ``out_sharding`` eagerly, and the
    rules keep their plain path, whose shardings JAX infers."""
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or mesh.empty or AxisType.Explicit not in tuple(mesh.axis_types):
        return None
    if mesh_lib.get_abstract_mesh() != getattr(mesh, "abstract_mesh", mesh):
        return None
    return sharding


def sharding_of(x, layout=None):
    """The sharding ``x``'s type carries on an explicit mesh, else ``None``. With ``layout``
    (dim i of the wanted value is dim ``layout[i]`` of ``x``), the sharding of the value that
    a transpose by ``argsort(layout)`` turns into ``x``'s layout: a product computed in another
    order before its closing transpose. ``layout`` may name fewer dims than ``x`` has."""
    if np.ndim(x) == 0 and not hasattr(x, "aval"):  # a Python or NumPy scalar literal
        return None
    sharding = explicit(getattr(jax.typeof(x), "sharding", None))
    if sharding is None or layout is None:
        return sharding
    parts = tuple(sharding.spec[d] if d < len(sharding.spec) else None for d in layout)
    return sharding.update(spec=sharding.spec.update(partitions=parts))


def drop_dims(sharding, dims):
    """``sharding`` (or ``None``) without the entries of ``dims``: the sharding of a value
    whose size-1 ``dims`` a reshape then restores."""
    if sharding is None:
        return None
    parts = tuple(p for i, p in enumerate(sharding.spec) if i not in set(dims))
    return sharding.update(spec=sharding.spec.update(partitions=parts))


def zeros(aval):
    """Zeros of ``aval``'s shape and dtype, varying along the same manual axes (inside a
    shard_map a zero cotangent must have its primal's replication type)."""
    z = jax.numpy.zeros(aval.shape, aval.dtype,
                        out_sharding=explicit(getattr(aval, "sharding", None)))
    axes = varying_axes(aval)
    return PVARY.bind(z, axes=tuple(sorted(axes))) if axes else z


def full_like(x, value, dtype=None):
    """An array of ``value`` in the shape of ``x`` (an array, tracer or Python scalar), of
    ``dtype`` (x's by default), with the sharding x's type carries on an explicit mesh and
    varying along x's manual axes: what JAX's transposes build with ``lax.full(...,
    sharding=)`` and ``pvary`` (gather's, conv's)."""
    dtype = jax.numpy.result_type(x) if dtype is None else dtype
    z = jax.lax.full(np.shape(x), value, dtype, sharding=sharding_of(x))
    aval = getattr(x, "aval", None)
    axes = varying_axes(aval) if aval is not None else frozenset()
    return PVARY.bind(z, axes=tuple(sorted(axes))) if axes else z


def zeros_like(x, dtype=None):
    """``full_like(x, 0, dtype)``: zeros placed (and varying) as ``x`` is."""
    return full_like(x, 0, dtype)


def device_put_back(cts, *, devices, srcs, copy_semantics):
    """The transpose of ``device_put``: each cotangent goes back where its input came from
    (``srcs``, ``None`` for "where it was"), always as a copy (the forward may have reused or
    donated its input, the backward has nothing to reuse)."""
    for cp in copy_semantics:
        if cp == COPY.DONATE_INPUT:
            raise ValueError("device_put(..., donate=True) inside a differentiated function: "
                             "the backward pass cannot donate; drop donate=True there")
    return DEVICE_PUT.bind(*cts, devices=tuple(srcs), srcs=tuple(devices),
                           copy_semantics=tuple(COPY.ALWAYS_COPY for _ in cts))


def reshard_back(ct, x, *, concrete_mesh):
    """The transpose of ``reshard`` (explicit sharding): the cotangent takes the sharding that
    the input's type carries."""
    sharding = jax.typeof(x).sharding
    with mesh_lib.use_abstract_mesh(sharding.mesh):
        return RESHARD.bind(ct, dst_sharding=sharding, concrete_mesh=concrete_mesh)


class ShardMap(NamedTuple):
    """The parts of a ``shard_map`` equation: ``body`` is an open jaxpr over per-shard
    values; ``manual`` the mesh axes the body sees as manual, in the mesh's order."""

    body: object
    mesh: object
    in_specs: tuple
    out_specs: tuple
    check_vma: bool
    manual: tuple


def shard_map_of(eqn) -> ShardMap:
    p = eqn.params
    mesh = p["mesh"]
    newly = p.get("newly_manual_axes") or frozenset(mesh.axis_names)
    manual = tuple(a for a in mesh.axis_names if a in newly)
    return ShardMap(p["jaxpr"], mesh, tuple(p["in_specs"]), tuple(p["out_specs"]),
                    bool(p["check_vma"]), manual)


def shard_map_call(f, sm: ShardMap, in_specs, out_specs):
    """``f`` under a shard_map on the equation's mesh and manual axes (public ``jax.shard_map``)."""
    return jax.shard_map(f, mesh=sm.mesh, in_specs=in_specs, out_specs=out_specs,
                         check_vma=sm.check_vma, axis_names=frozenset(sm.manual))
