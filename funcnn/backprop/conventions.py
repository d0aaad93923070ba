"""Where a function has no derivative, the engine gives JAX's value. Written down once here;
the rules that implement each are named beside it, and the oracle publishes this table in
every golden manifest (``conventions``).

| point                               | value given                  | rule                      |
|-------------------------------------|------------------------------|---------------------------|
| relu at 0, as where(z > 0, z, 0)    | 0                            | select_n                  |
| relu at 0, as max(z, 0)             | 0.5 (a max tie, see below)   | max                       |
| step 1[z > 0], sign                 | 0 everywhere                 | comparisons, sign         |
| abs at 0                            | +1 (JAX >= 0.10: x >= 0)     | abs                       |
| max/min of two operands at a tie    | split evenly: 0.5 each       | max, min                  |
| reduce_max/min with k tied maxima   | split evenly: 1/k each       | reduce_max, reduce_min    |
| clamp at lo or hi                   | 0 to the operand             | clamp                     |
| floor, ceil, round                  | 0                            | floor, ceil, round        |
| x ** y at x = 0                     | d/dy taken as 0              | pow                       |
| where(mask, logits, -inf) masked    | 0 to the masked logits       | select_n                  |
| max pooling at a tie                | JAX's select_and_scatter     | reduce_window_max         |

One difference from JAX's ``grad`` is by design: ``jax.custom_jvp`` and ``jax.custom_vjp``
functions are differentiated through their primal body by the engine's own rules, not through
the user's custom rule (the engine uses no JAX differentiation and no custom_vjp internals).
Where the rule is the body's derivative the two agree. Where it is not, the engine gives the
body's true derivative (finite differences agree with it) and JAX's ``grad`` gives the rule:

- ``jax.nn.relu`` (a custom_jvp around ``max(z, 0)``) at exactly 0: 0.5 (max's tie rule),
  JAX's ``grad`` 0; ``funcnn.activations.relu`` is written with ``where`` and gives 0 like JAX;
- a custom_vjp that changes the gradient on purpose (gradient clipping, straight-through
  estimators): the engine gives the unmodified gradient of the body;
- a custom rule written for numerical safety (``jnp.sinc`` at 0, safe norms at 0): at that
  point the body's derivative may be NaN where the rule is finite.
"""

CONVENTIONS = {
    "relu_grad_at_0": 0.0,
    "step_grad": 0.0,
    "sign_grad": 0.0,
    "abs_grad_at_0": 1.0,
    "max_tie": "split evenly",
}
