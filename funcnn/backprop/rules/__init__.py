"""The VJP rules, one module per family; importing this package registers them all."""
from funcnn.backprop.rules import (  # noqa: F401
    control,
    conv,
    custom,
    elementwise,
    indexing,
    linalg,
    reductions,
    shard_map,
    sharding,
    structural,
    windows,
)
