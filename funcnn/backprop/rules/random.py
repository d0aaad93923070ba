"""VJP rules of the random-number primitives that JAX's tables hold beyond the bit generators
(those are in ``elementwise``'s no-derivative list): random_gamma, differentiable in its shape
parameter ``a`` by implicit reparameterization, and the key operations random_fold_in and
random_split, which carry no derivative.

For a sample x = F^{-1}(u; a) with u fixed (Figurnov, Mohamed & Mnih 2018, "Implicit
reparameterization gradients"), dx/da = -(dF/da)(x; a) / p(x; a), which
``lax.random_gamma_grad(a, x)`` computes; in log space (log_space=True, the output log x)
d log x / da = (dx/da) / x, with x = exp(log x) floored at the smallest normal float as JAX
does.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from funcnn.backprop.registry import defnograd, defvjp

defnograd("random_fold_in", "random_split")


@defvjp("random_gamma")
def _random_gamma(ct, key, a, *, out, log_space=False, **_):
    """key: a PRNG key array; a, out: [...] (one sample per entry of a)."""
    if log_space:
        x = jnp.exp(out)
        x = jnp.where(x == 0, jnp.finfo(x.dtype).tiny, x)
        d = lax.random_gamma_grad(a, x) / x
    else:
        d = lax.random_gamma_grad(a, out)
    return (None, ct * d)
