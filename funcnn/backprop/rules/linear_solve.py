"""The VJP of custom_linear_solve (``lax.custom_linear_solve``): what ``jnp.linalg.solve``,
``jnp.linalg.inv``, ``jax.scipy.linalg.expm`` and ``jax.scipy.sparse.linalg.cg`` trace to.

The primitive holds four sub-programs (``jaxprs``: matvec, vecmat, solve, transpose_solve, the
last two may be absent) and their constants, then the right-hand side b; it returns x with
matvec(x) = b (then any auxiliary outputs of ``solve``). Implicit differentiation of
A(theta) x = b (Giles 2008, sec. 2.2.3; the rule JAX's own ``_custom_linear_solve_jvp``
states):

    lambda = A^{-T} ct_x              the transposed system: vecmat and transpose_solve
    ct_b = lambda
    ct_theta = -<lambda, d(matvec(theta, x))/d theta>   the engine's own VJP of matvec

``solve`` is trusted to invert matvec: its constants (an LU factorization, a preconditioner)
get no cotangent, as in JAX. Auxiliary outputs carry none either. A symmetric solve
(``symmetric=True``) has vecmat = matvec and transpose_solve = solve.
"""
from __future__ import annotations

import jax.numpy as jnp

from funcnn.backprop.engine import backward, forward, where
from funcnn.backprop.registry import defhigher


def transposed(t):
    """A (matvec, vecmat, solve, transpose_solve) tuple for the transposed system."""
    return type(t)(t.vecmat, t.matvec, t.transpose_solve, t.solve)


def split(invals, lengths):
    """The four groups of constants, then b, from the equation's inputs."""
    groups, start = [], 0
    for n in lengths:
        groups.append(list(invals[start:start + n]))
        start += n
    return type(lengths)(*groups), list(invals[start:])


def linear_solve_forward(eqn, invals, active):
    outs = eqn.primitive.bind(*invals, **eqn.params)
    n_b = len(invals) - sum(eqn.params["const_lengths"])
    return list(outs), list(outs[:n_b])  # residual: the solution x (its b-shaped leaves)


def linear_solve_backward(eqn, x, invals, cts, active):
    lengths, jaxprs = eqn.params["const_lengths"], eqn.params["jaxprs"]
    if jaxprs.transpose_solve is None:
        raise TypeError(
            "custom_linear_solve without transpose_solve has no reverse-mode derivative (JAX "
            f"refuses it too), at {where(eqn)}: pass transpose_solve=..., or symmetric=True "
            "for a symmetric matvec.")
    consts, b = split(invals, lengths)
    ct_x = [jnp.zeros(v.aval.shape, v.aval.dtype) if c is None else c
            for c, v in zip(cts[:len(b)], eqn.outvars[:len(b)], strict=True)]
    flipped = transposed(consts)
    lam = eqn.primitive.bind(*flipped.matvec, *flipped.vecmat, *flipped.solve,
                             *flipped.transpose_solve, *ct_x,
                             const_lengths=transposed(lengths), jaxprs=transposed(jaxprs))
    lam = list(lam[:len(b)])
    n_mv = lengths.matvec
    mv_active = [bool(a) for a in active[:n_mv]] + [False] * len(x)
    ct_matvec = [None] * n_mv
    if any(mv_active):
        matvec = jaxprs.matvec
        _, tape = forward(matvec.jaxpr, matvec.consts, [*consts.matvec, *x], mv_active)
        ct_in = backward(matvec.jaxpr, tape, lam, mv_active)
        ct_matvec = [None if c is None else -c for c in ct_in[:n_mv]]
    n_rest = lengths.vecmat + lengths.solve + lengths.transpose_solve
    return [*ct_matvec, *([None] * n_rest), *lam]


defhigher("custom_linear_solve", forward=linear_solve_forward, backward=linear_solve_backward)
