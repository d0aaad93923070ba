"""VJP rules of the primitives that only mark what they compute: ``name``
(``checkpoint_name`` from JAX's remat module, which names a value for a remat policy: the identity)
and ``composite`` (``lax.composite``, a sub-program named for a compiler, computed here by its
body). JAX refuses to differentiate a composite (a backend may run its own kernel for it);
the engine differentiates the body, which is what XLA runs where no kernel replaces it."""
from __future__ import annotations

from funcnn.backprop.registry import defhigher, defvjp
from funcnn.backprop.rules.control import call_backward, call_forward


@defvjp("name")
def _name(ct, x, *, out, **_):
    return (ct,)


defhigher("composite", forward=call_forward, backward=call_backward)  # a call: its body
