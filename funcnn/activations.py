"""Activation functions in plain jax.numpy.

The four activations of the notes (sigmoid, relu, step, sign) are written out here rather than
taken from ``jax.nn``, so that the derivative at their kinks is defined by this code:

- ``relu'(0) = 0`` (``jnp.where(z > 0, z, 0)`` sends the gradient to the constant branch),
- ``step'(z) = 0`` and ``sign'(z) = 0`` everywhere (comparisons have no gradient),
- ``leaky_relu'(0) = 1`` (``z >= 0`` picks the identity branch, as ``jax.nn.leaky_relu`` does).

All functions are elementwise on arrays of any shape ``z: [...]`` except ``softmax`` and
``log_softmax``, which normalise along ``axis``.

Example:
    >>> import jax.numpy as jnp
    >>> from funcnn.activations import ACTIVATIONS
    >>> ACTIVATIONS["relu"](jnp.array([-1.0, 0.0, 2.0]))  # [0., 0., 2.]
"""
import math

import jax.numpy as jnp
from jax import lax


def sigmoid(z):
    """Logistic function 1 / (1 + exp(-z)), stable for any z.

    Each branch sees only the half of the real line where its ``exp`` cannot overflow:
    ``1 / (1 + exp(-z))`` for z >= 0 and ``exp(z) / (1 + exp(z))`` for z < 0; the other half
    of the input is replaced by 0 before the ``exp`` (the "double where"), so neither the value
    nor the gradient meets an ``inf`` (sigmoid(+-1000) is exactly 1 and 0, no warnings).

    Example: ``sigmoid(jnp.array(0.0))`` is 0.5.
    """
    z_pos = jnp.where(z >= 0, z, 0)
    z_neg = jnp.where(z < 0, z, 0)
    e_neg = jnp.exp(z_neg)
    return jnp.where(z >= 0, 1 / (1 + jnp.exp(-z_pos)), e_neg / (1 + e_neg))


def relu(z):
    """max(z, 0), with relu'(0) = 0. Example: ``relu(jnp.array([-1.0, 2.0]))`` is [0, 2]."""
    return jnp.where(z > 0, z, 0)


def step(z):
    """Heaviside step: 1 where z > 0, else 0 (step(0) = 0), in z's dtype; gradient 0.

    Example: ``step(jnp.array([-1.0, 0.0, 3.0]))`` is [0, 0, 1].
    """
    return (z > 0).astype(z.dtype)


def sign(z):
    """-1, 0 or +1 in z's dtype (sign(0) = 0); gradient 0.

    Example: ``sign(jnp.array([-2.0, 0.0, 3.0]))`` is [-1, 0, 1].
    """
    return (z > 0).astype(z.dtype) - (z < 0).astype(z.dtype)


def tanh(z):
    """Hyperbolic tangent. Example: ``tanh(jnp.array(0.0))`` is 0."""
    return jnp.tanh(z)


def softplus(z):
    """log(1 + exp(z)) computed as ``logaddexp(z, 0)``: no overflow for large z.

    Example: ``softplus(jnp.array(0.0))`` is log 2.
    """
    return jnp.logaddexp(z, 0)


def gelu(z, approximate=True):
    """Gaussian error linear unit z * Phi(z).

    ``approximate=True`` uses the tanh form
    ``0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))``; ``False`` the exact
    ``0.5 z (1 + erf(z / sqrt(2)))``. Example: ``gelu(jnp.array(0.0))`` is 0.
    """
    if approximate:
        inner = math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)
        return 0.5 * z * (1 + jnp.tanh(inner))
    return 0.5 * z * (1 + lax.erf(z / math.sqrt(2)))


def leaky_relu(z, negative_slope=0.01):
    """z for z >= 0, negative_slope * z below (derivative 1 at 0, like jax.nn).

    Example: ``leaky_relu(jnp.array(-2.0), 0.1)`` is -0.2.
    """
    return jnp.where(z >= 0, z, negative_slope * z)


def softmax(z, axis=-1):
    """exp(z) / sum(exp(z)) along ``axis``, after subtracting the (stop-gradient) max.

    Example: ``softmax(jnp.zeros(4))`` is [0.25, 0.25, 0.25, 0.25].
    """
    shifted = z - lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    unnormalized = jnp.exp(shifted)
    return unnormalized / jnp.sum(unnormalized, axis=axis, keepdims=True)


def log_softmax(z, axis=-1):
    """z - logsumexp(z) along ``axis``, stable for large |z| (max subtracted, stop-gradient).

    Example: ``log_softmax(jnp.zeros(2))`` is [-log 2, -log 2].
    """
    shifted = z - lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))


ACTIVATIONS = {
    "sigmoid": sigmoid,
    "relu": relu,
    "step": step,
    "sign": sign,
    "tanh": tanh,
    "softplus": softplus,
    "gelu": gelu,
    "leaky_relu": leaky_relu,
    "softmax": softmax,
    "log_softmax": log_softmax,
}
