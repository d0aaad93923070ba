"""Fully sharded data parallel (FSDP, ZeRO-3): each parameter split over the ``"data"`` axis.

With D devices along ``"data"``, each holds 1/D of every large parameter (and of its
gradient and optimizer state); XLA all-gathers a weight where the forward or backward pass
needs it whole and reduce-scatters its gradient, as in Rajbhandari et al., "ZeRO" (2020).

**The rule, per leaf** (big_vision's ``shardings.fsdp`` rule, ``big_vision/sharding.py``;
here the size threshold counts elements, not megabytes, and a tie goes to the earlier
dimension):

1. a leaf with fewer than ``min_elements`` elements (biases, norms, scalars) stays
   replicated: sharding it saves little and costs a collective;
2. otherwise it is split along its **largest dimension that D divides** (at equal sizes, the
   earlier dimension), among the dimensions no other mesh axis uses already (the 2-D layout
   first gives some to ``"model"``);
3. a leaf with no such dimension stays replicated.

    >>> fsdp_spec((64, 32), 8)                      # P('data')        rows: the larger one
    >>> fsdp_spec((10, 12), 4, min_elements=0)      # P(None, 'data')  12 is the one 4 divides
    >>> fsdp_spec((32, 128), 4, base=P(None, "model"))   # P('data', 'model')
"""
import math

import jax
from jax.sharding import PartitionSpec

from funcnn.parallel.mesh import DATA

MIN_SHARD_ELEMENTS = 2 ** 10


def canonical_spec(entries):
    """``PartitionSpec(*entries)`` without trailing ``None`` (``P('x', None)`` is ``P('x')``,
    the form JAX reports back)."""
    entries = list(entries)
    while entries and entries[-1] is None:
        entries.pop()
    return PartitionSpec(*entries)


def fsdp_spec(shape, size, axis=DATA, base=None, min_elements=MIN_SHARD_ELEMENTS):
    """The FSDP spec of one leaf of ``shape`` over mesh axis ``axis`` of ``size`` devices.

    ``base``: the spec the leaf has already (tensor parallel), whose dimensions are kept.
    Returns a canonical ``PartitionSpec`` (see the module's rule).
    """
    shape = tuple(shape)
    entries = list(base or ()) + [None] * (len(shape) - len(base or ()))
    if size == 1 or math.prod(shape) < max(min_elements, 1):
        return canonical_spec(entries)
    free = [d for d in range(len(shape))
            if entries[d] is None and shape[d] >= size and shape[d] % size == 0]
    if free:
        entries[max(free, key=lambda d: (shape[d], -d))] = axis
    return canonical_spec(entries)


def fsdp_specs(params, size, axis=DATA, base=None, min_elements=MIN_SHARD_ELEMENTS):
    """:func:`fsdp_spec` for every leaf of ``params`` (arrays or ``ShapeDtypeStruct``s);
    ``base``: a tree of specs like ``params`` (or None)."""
    if base is None:
        return jax.tree.map(lambda p: fsdp_spec(p.shape, size, axis, None, min_elements),
                            params)
    return jax.tree.map(lambda p, b: fsdp_spec(p.shape, size, axis, b, min_elements),
                        params, base)
