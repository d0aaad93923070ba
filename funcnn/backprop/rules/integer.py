"""Ops whose outputs carry no derivative, beyond ``elementwise``'s list: bit-level
reinterpretation (bitcast_convert_type), the high half of an integer product (mulhi, used by
the random bit generators), and the comparisons of dimension sizes under shape polymorphism
(eq_to, le_to, lt_to). JAX defines each derivative as zero (``ad.defjvp_zero``)."""
from __future__ import annotations

from funcnn.backprop.registry import defnograd

defnograd("bitcast_convert_type", "mulhi", "eq_to", "le_to", "lt_to")
