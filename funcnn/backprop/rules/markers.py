"""VJP rules of the primitives that only mark what they compute: ``name``
(``checkpoint_name`` from JAX's remat module, which names a value for a remat policy: the identity)
and ``composite`` (``lax.composite``, a sub-program named for a compiler, computed here by its
body). JAX refuses to differentiate a composite (a backend may run its own kernel for it);
the engine differentiates the body, which is what XLA runs where no kernel replaces it."""
from __future__ import annotations

from jax.extend import core as jcore

from funcnn.backprop.engine import backward, forward
from funcnn.backprop.registry import defhigher, defvjp


@defvjp("name")
def _name(ct, x, *, out, **_):
    return (ct,)


def composite_body(eqn):
    """The body of a composite: ``jaxpr`` (JAX < 0.12) or ``call_jaxpr``, a ClosedJaxpr."""
    body = eqn.params.get("call_jaxpr", eqn.params.get("jaxpr"))
    if isinstance(body, jcore.ClosedJaxpr):
        return body.jaxpr, body.consts
    return body, []


def composite_forward(eqn, invals, active):
    jaxpr, consts = composite_body(eqn)
    return forward(jaxpr, consts, invals, active)


def composite_backward(eqn, tape, invals, cts, active):
    jaxpr, _ = composite_body(eqn)
    return backward(jaxpr, tape, cts, active)


defhigher("composite", forward=composite_forward, backward=composite_backward)
