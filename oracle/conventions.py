"""The declared conventions at points where a function has no derivative.

The table is ``funcnn.backprop.conventions.CONVENTIONS`` (written down once, there), plus
``leaky_relu_grad_at_0``, which ``funcnn.activations`` decides. It is written into every
manifest (its ``conventions`` block), and the ``*.kink`` reference cases sample exactly these
points, so another implementation that picks a different convention fails ``verify`` on those
cases and only there. ``check`` and ``export`` also hold the table to the truth: a kink case
whose engine or ``jax.grad`` derivative differs from the declared value fails the check, and
export refuses to write it (a manifest must not contradict its own golden values).

=====================  ============================================================
key                    meaning
=====================  ============================================================
relu_grad_at_0         d/dz relu(z) at z = 0 (relu = where(z > 0, z, 0))
step_grad              derivative of step(z) = [z > 0], everywhere (also at the jump)
sign_grad              derivative of sign(z), everywhere
abs_grad_at_0          d/dz |z| at z = 0
leaky_relu_grad_at_0   d/dz leaky_relu(z) at 0 (funcnn: the identity branch, 1)
max_tie                how max over tied maxima (``jnp.max``) splits the cotangent
=====================  ============================================================

``check_grads`` never judges these points by finite differences (there is no derivative to
approximate there): it reports them as "no derivative here" and only requires that the engine
and ``jax.grad`` agree on them. Pooling with ``lax.reduce_window`` max is not covered by
``max_tie`` (``jax.grad`` routes a tie's cotangent to one window entry); the pooling cases
therefore sample inputs without ties.
"""

from funcnn.backprop.conventions import CONVENTIONS as DECLARED

# funcnn.backprop.conventions is the one place the engine's conventions are written down; the
# oracle adds the one that belongs to funcnn.activations rather than to a primitive.
CONVENTIONS = {**DECLARED, "leaky_relu_grad_at_0": 1.0}

# Which convention each kink case pins: the derivative at its kink points.
KINK_CONVENTION = {
    "relu": "relu_grad_at_0",
    "step": "step_grad",
    "sign": "sign_grad",
    "abs": "abs_grad_at_0",
    "leaky_relu": "leaky_relu_grad_at_0",
}
# Points where each elementwise function of the reference cases has no derivative. A case's
# inputs are sampled at least KINK_MARGIN away from these unless the case name says "kink".
KINKS = {
    "relu": (0.0,),
    "step": (0.0,),
    "sign": (0.0,),
    "abs": (0.0,),
    "leaky_relu": (0.0,),
}

KINK_MARGIN = 0.05

# What the common frameworks do at each point where the golden files follow CONVENTIONS
# (each case's spec.kinks repeats the entries that apply to it; docs/oracle-format.md has the
# table). "numpy" is the usual hand-written NumPy backward.
FRAMEWORK_DEFAULTS = {
    "relu_grad_at_0": {"torch": "0 (relu, threshold): the same",
                       "numpy": "(z > 0) gives 0, the same; (z >= 0) gives 1: wrong here"},
    "step_grad": {"torch": "heaviside has no gradient: treat as 0",
                  "numpy": "0, the same"},
    "sign_grad": {"torch": "0, the same", "numpy": "0, the same"},
    "abs_grad_at_0": {"torch": "0 (abs backward is sign(z)): differs, write it yourself",
                      "numpy": "np.sign(z) gives 0: differs; use where(z >= 0, 1, -1)"},
    "leaky_relu_grad_at_0": {"torch": "negative_slope (backward tests z > 0): differs",
                             "numpy": "where(z >= 0, 1, a) gives 1, the same; z > 0 gives a"},
    "max_tie": {"torch": "amax splits evenly; max(dim) and max_pool2d route to one index",
                "numpy": "usually to the first index"},
}
