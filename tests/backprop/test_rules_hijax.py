"""Hijax primitives (rules/hijax.py): the library functions JAX stages as ``call_hi_primitive``
(``lax.custom_root`` from JAX 0.11, ``jnp.ldexp`` / ``jnp.frexp`` from 0.12; on older JAX the
same functions are ordinary programs, and the same tests hold), and HiPrim classes written
here, one per declared form (a VJP pair, a transpose, a JVP rule), each deliberately not the
derivative of its expansion, so the numbers say which rule the engine honoured. Against
jax.vjp in float64 and finite differences (where the declared rule is the derivative); second
order through custom_root against jax.hessian.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from funcnn import backprop
from tests.backprop.sampling import check_hvp, check_vjp, primitive_names, rng_for
from tests.helpers import assert_trees_close

HAS_HIJAX = jax.__version_info__ >= (0, 11)


# --- lax.custom_root: implicit differentiation ----------------------------------------------
def newton(f, x0, steps=30):
    """A Newton solve of scalar f(x) = 0 in a while loop (no derivative through the loop:
    the gradient can only come from custom_root's rule)."""
    def body(c):
        i, x = c
        fx, dfx = jax.jvp(f, (x,), (jnp.ones_like(x),))
        return i + 1, x - fx / dfx
    return lax.while_loop(lambda c: c[0] < steps, body, (0, x0))[1]


def scalar_tangent_solve(g, y):
    return y / g(1.0)


def dense_tangent_solve(g, y):
    return jnp.linalg.solve(jax.jacobian(g)(y), y)


def sqrt_root(a):
    """sqrt(a) for a scalar a > 0 as the root of x^2 - a."""
    return lax.custom_root(lambda x: x * x - a, 1.0,
                           lambda f, x0: newton(f, x0), scalar_tangent_solve)


def linear_system_root(a, b):
    """x with (A^T A + I) x - b = 0 for A: [3, 3], b: [3], by a fixed-point-free solver and a
    dense tangent solve with the Jacobian of g (jax.jacobian of the linear map)."""
    m = a.T @ a + jnp.eye(3)
    f = lambda x: m @ x - b
    return lax.custom_root(f, jnp.zeros(3), lambda f, x0: jnp.linalg.solve(m, b),
                           dense_tangent_solve)


def pytree_root(params):
    """A root over a dict of parameters and a tuple unknown: (u, v) with u^3 + u = w1 * s,
    v = w2 * u; the aux output (the solver's residual) has no cotangent. (An integer aux, as
    an iteration count, fails inside JAX 0.10's own custom_root rule.)"""
    w1, w2 = params["w1"], params["w2"]

    def f(x):
        u, v = x
        return u ** 3 + u - w1 * 2.0, v - w2 * u

    def solve(f, x0):
        u = newton(lambda u: u ** 3 + u - w1 * 2.0, x0[0])
        return (u, w2 * u), jnp.abs(u ** 3 + u - w1 * 2.0)  # aux: the residual

    def tangent_solve(g, y):
        return tuple(jnp.linalg.solve(jax.jacobian(lambda z: jnp.stack(g((z[0], z[1]))))(
            jnp.zeros(2)), jnp.stack(y)))

    (u, v), _residual = lax.custom_root(f, (1.0, 0.0), solve, tangent_solve, has_aux=True)
    return u * v + u


ROOTS = {
    "sqrt_newton_while": (sqrt_root, (2.3,)),
    "linear_system_jacobian_solve": (linear_system_root,
                                     (np.eye(3) + 0.3 * rng_for("lsr").standard_normal((3, 3)),
                                      rng_for("lsr_b").standard_normal(3))),
    "pytree_params_has_aux": (pytree_root, ({"w1": 0.7, "w2": -1.3},)),
}


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name", sorted(ROOTS))
def test_custom_root(name, jit):
    f, args = ROOTS[name]
    args = jax.tree_util.tree_map(jnp.asarray, args)
    check_vjp(f, args, rng_for(name), rtol=1e-11, atol=1e-12, fd_eps=1e-5, jit=jit)


def test_custom_root_is_hijax_where_expected():
    names = primitive_names(sqrt_root, 2.0)
    assert ("call_hi_primitive" in names) == HAS_HIJAX, names


def test_custom_root_second_order():
    check_hvp(lambda a: jnp.sum(linear_system_root(a, jnp.arange(1.0, 4.0)) ** 2),
              np.eye(3) + 0.2 * rng_for("hvp").standard_normal((3, 3)), rng_for("hvp_v"))


# --- jnp.ldexp and jnp.frexp (hijax from JAX 0.12) ------------------------------------------
BITS = {
    "ldexp": (lambda x, e: jnp.ldexp(x, e), (np.array([0.3, -1.7, 2.5, 1e-3]),
                                             np.array([2, -3, 0, 7], np.int32))),
    "frexp_mantissa": (lambda x: jnp.frexp(x)[0] * 3.0, (np.array([0.3, -1.7, 2.5, 40.0]),)),
    "frexp_ldexp_roundtrip": (lambda x: jnp.ldexp(*jnp.frexp(jnp.sin(x))) ** 2,
                              (np.array([0.3, -1.7, 2.5, 4.0]),)),
}


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name", sorted(BITS))
def test_ldexp_frexp(name, jit):
    f, args = BITS[name]
    check_vjp(f, tuple(jnp.asarray(a) for a in args), rng_for(name), rtol=0, atol=0,
              fd=name != "frexp_mantissa", jit=jit)


# --- HiPrim classes of our own, one per declared form ---------------------------------------
def declared_classes():
    """HiPrims whose declared rule differs from the derivative of their expansion."""
    from jax.experimental.hijax import HiPrim, linearize_from_jvp, vjp_from_jvp

    class TwiceSlopedSoftsign(HiPrim):  # JVP form: declares 2 / (1 + |x|)^2
        def __init__(self, aval):
            self.in_avals, self.out_aval, self.params = (aval,), aval, {}
            super().__init__()

        def expand(self, x):
            return x / (1 + jnp.abs(x))

        def jvp(self, primals, tangents):
            (x,), (t,) = primals, tangents
            return self(x), 2.0 * t / (1 + jnp.abs(x)) ** 2

        lin, linearized = linearize_from_jvp
        vjp_fwd, vjp_bwd_retval = vjp_from_jvp

    class ScaleBy3TransposedBy5(HiPrim):  # transpose form: linear in x, transpose says 5
        def __init__(self, aval):
            self.in_avals, self.out_aval, self.params = (aval,), aval, {}
            super().__init__()

        def expand(self, x):
            return 3.0 * x

        def jvp(self, primals, tangents):
            return self(*primals), self(*tangents)

        def transpose(self, out_ct, x_accum):
            x_accum.accum(5.0 * out_ct)

        lin, linearized = linearize_from_jvp
        vjp_fwd, vjp_bwd_retval = vjp_from_jvp

    class ClippedGradientSquare(HiPrim):  # VJP form: x^2 with its cotangent clipped to +-1
        def __init__(self, aval):
            self.in_avals, self.out_aval, self.params = (aval,), aval, {}
            super().__init__()

        def expand(self, x):
            return x * x

        def vjp_fwd(self, nzs_in, x):
            return self(x), x

        def vjp_bwd_retval(self, x, out_ct):
            return (jnp.clip(2 * x * out_ct, -1.0, 1.0),)

    return {"jvp": TwiceSlopedSoftsign, "transpose": ScaleBy3TransposedBy5,
            "vjp": ClippedGradientSquare}


@pytest.mark.skipif(not HAS_HIJAX, reason="no hijax primitives before JAX 0.11")
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("form", ["jvp", "transpose", "vjp"])
def test_declared_form_is_honoured(form, jit):
    from funcnn.backprop import hijax_jax

    cls = declared_classes()[form]

    def f(x):
        y = cls(jax.typeof(x))(jnp.sin(x))
        return jnp.sum(y * jnp.arange(1.0, 5.0))

    x = jnp.array([0.4, -1.3, 2.2, 0.05])
    assert form in hijax_jax.declared_forms(cls(jax.typeof(x)))
    want = jax.jit(jax.grad(f))(x)
    got = jax.jit(backprop.grad(f))(x) if jit else backprop.grad(f)(x)
    assert_trees_close(got, want, rtol=1e-14, atol=0, what=f"{form}: ")
    # the rule decided: not the derivative of the expansion
    plain = jax.grad(lambda x: jnp.sum(cls(jax.typeof(x)).expand(jnp.sin(x))
                                       * jnp.arange(1.0, 5.0)))(x)
    assert not np.allclose(got, plain)
