"""Where a function has no derivative, the engine gives JAX's value. Written down once here;
the rules that implement each are named beside it, and the oracle publishes this table in
every golden manifest (``conventions``).

| point                               | value given                  | rule                      |
|-------------------------------------|------------------------------|---------------------------|
| relu at 0, as where(z > 0, z, 0)    | 0                            | select_n                  |
| jax.nn.relu at 0 (its custom JVP)   | 0                            | custom_jvp_call (its rule)|
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

Where a function declares its own derivative (``jax.custom_jvp`` / ``jax.custom_vjp``), the
engine uses that rule, as JAX does (``rules/custom.py``), so the values at its kinks are the
rule's: ``jax.nn.relu``'s rule gives 0 at 0 (its body, ``max(z, 0)``, would give the tie's
0.5); ``jax.nn.relu6`` gives 0 at 0 and at 6; ``jax.nn.softplus`` and ``jax.nn.log_sigmoid``
give 1/2 at 0; ``jnp.sinc`` gives 0 at 0. There is no deliberate difference from JAX: where
JAX's reverse mode gives a number, the engine gives the same one.
"""

CONVENTIONS = {
    "relu_grad_at_0": 0.0,
    "step_grad": 0.0,
    "sign_grad": 0.0,
    "abs_grad_at_0": 1.0,
    "max_tie": "split evenly",
}
