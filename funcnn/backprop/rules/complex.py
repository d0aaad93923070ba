"""VJP rules of the primitives that build and take apart complex numbers: complex, imag and
conj (``real`` is in ``elementwise``: its rule is the identity, the engine casts the real
cotangent to the complex input's dtype, i.e. ct + 0i).

JAX's convention for the cotangent of a complex input (what JAX's reverse mode returns) is the
transpose under the bilinear pairing <a, b> = Re sum(a * b), without conjugation. For a real
loss L of z = x + iy that is dL/dx - i dL/dy, the conjugate of the gradient a step of descent
follows. So for each op:

    complex(x, y) = x + iy    Re(ct (x + iy)) = Re(ct) x - Im(ct) y  =>  ct_x = Re ct, ct_y = -Im ct
    imag(z)                   ct Im(z) = Re((-i ct) z)                =>  ct_z = -i ct
    conj(z)                   Re(ct conj(z)) = Re(conj(ct) z)         =>  ct_z = conj(ct)

and conj of a real input (a complex output) gives ct_x = Re ct.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from funcnn.backprop.registry import defvjp, is_float, like, unbroadcast


@defvjp("complex")
def _complex(ct, x, y, *, out, **_):
    ct_x = unbroadcast(like(jnp.real(ct), x), jnp.shape(x)) if is_float(x) else None
    ct_y = unbroadcast(like(-jnp.imag(ct), y), jnp.shape(y)) if is_float(y) else None
    return (ct_x, ct_y)


@defvjp("imag")
def _imag(ct, z, *, out, **_):
    return (lax.complex(jnp.zeros_like(ct), -ct),)


@defvjp("conj")
def _conj(ct, z, *, out, **_):
    if jnp.issubdtype(jnp.result_type(z), jnp.complexfloating):
        return (jnp.conj(ct),)
    return (like(jnp.real(ct), z),)
