"""The engine applied to its own output: every elementwise rule must itself be differentiable
by the engine, to the right value. Hessian-vector products (``backprop.grad`` of a
``backprop.grad``) against JAX's (``jax.grad`` of ``jax.grad``), float64.

A rule that masks a singular point with ``where`` loses the derivative of what it masked, so
its second derivative is wrong where the first is right: the mixed derivative of ``x ** y`` at
y = 0 (d/dy d/dx x^y = x^(y-1) (1 + y log x) = 1/x there) was 0 that way. The unary rules are
enumerated from the registry, as in test_rule_inputs.py.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from funcnn import backprop
from funcnn.backprop.registry import VJP_RULES
from tests.backprop.sampling import rng_for, run_jitted
from tests.backprop.test_rule_inputs import BINARY, DOMAIN, OTHER_UNARY, unary_names
from tests.helpers import assert_trees_close


def hvp(grad, f, args, vs):
    """d/dargs <grad f(args), vs>, with ``grad`` the engine's or JAX's."""
    n = tuple(range(len(args)))

    def inner(*a):
        g = grad(f, argnums=n)(*a)
        return sum((gi * vi).sum() for gi, vi in zip(g, vs, strict=True))

    return grad(inner, argnums=n)(*args)


def check(f, args, rng, rtol=1e-10, atol=1e-12):
    vs = tuple(rng.standard_normal(np.shape(a)) for a in args)
    got, want = run_jitted(lambda a, v: (hvp(backprop.grad, f, a, v), hvp(jax.grad, f, a, v)),
                           tuple(args), vs)
    assert_trees_close(got, want, rtol=rtol, atol=atol)


NEEDS = {"digamma": "polygamma"}  # a derivative computed with a primitive of another family
UNARY = ([(n, (lambda name: lambda x: getattr(lax, name)(x))(n), DOMAIN.get(n, (0.2, 0.8)))
          for n in unary_names()]
         + [(n, f, d) for n, (f, d) in OTHER_UNARY.items() if n not in ("real", "sign")])


@pytest.mark.parametrize("name, op, domain", UNARY, ids=[u[0] for u in UNARY])
def test_unary_second_derivative(name, op, domain):
    if name in NEEDS and NEEDS[name] not in VJP_RULES:
        pytest.skip(f"the derivative of {name} uses {NEEDS[name]}, which has no rule yet")
    rng = rng_for(f"second-{name}")
    x = rng.uniform(*domain, (3,))
    check(lambda x: op(x).sum(), (x,), rng)


BINARY_POINTS = {  # name -> (x, y): y = 0 in pow, where the mixed derivative was wrong
    "pow": ([0.5, 2.0, 1.3, 0.7], [0.0, 0.0, 1.5, -2.0]),
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_second_derivatives(name):
    """The full Hessian of <ct, op(x, y)> in (x, y): both pure and both mixed blocks."""
    op, dx, dy = BINARY[name]
    rng = rng_for(f"second-{name}")
    x, y = BINARY_POINTS.get(name, (rng.uniform(*dx, (4,)), rng.uniform(*dy, (4,))))
    ct = rng.standard_normal(4)
    check(lambda x, y: (op(x, y) * ct).sum(), (np.asarray(x), np.asarray(y)), rng)


@pytest.mark.parametrize("x", [0.5, 2.0, 3.0])
def test_pow_mixed_derivative_at_exponent_zero(x):
    """d/dy d/dx x^y at y = 0 is 1/x (closed form), from the engine on its own output."""
    got = backprop.grad(backprop.grad(lax.pow, argnums=0), argnums=1)(x, 0.0)
    assert_trees_close(got, 1.0 / x)
    assert_trees_close(got, jax.grad(jax.grad(lax.pow, argnums=0), argnums=1)(x, 0.0))
    hessian = jax.hessian(lax.pow, argnums=(0, 1))(x, 0.0)
    engine = [[backprop.grad(backprop.grad(lax.pow, argnums=i), argnums=j)(x, 0.0)
               for j in (0, 1)] for i in (0, 1)]
    assert_trees_close(engine, [[hessian[0][0], hessian[0][1]], [hessian[1][0], hessian[1][1]]])


def test_pow_integer_exponent_second_derivative():
    """lax.pow(x, n) with an integer array n (0 included): d^2/dx^2 = n (n - 1) x^(n-2)."""
    x = jnp.asarray([0.5, 2.0, -1.5, 0.7])
    n = jnp.asarray([0, 1, 2, -3])
    got = backprop.grad(lambda x: backprop.grad(lambda x: lax.pow(x, n).sum())(x).sum())(x)
    nf = n.astype(x.dtype)
    assert_trees_close(got, nf * (nf - 1) * x ** (nf - 2))
