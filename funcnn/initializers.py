"""Parameter initializers: functions ``(key, shape, dtype=None) -> array``.

``dtype=None`` means the default float type (float64 when ``jax_enable_x64`` is on, float32
otherwise). Fans are read from the shape as for a dense ``[in, out]`` or conv ``HWIO``
kernel: ``fan_in = prod(shape[:-1])``, ``fan_out = prod(shape[:-2]) * shape[-1]``.

Example:
    >>> import jax
    >>> from funcnn.initializers import glorot_uniform, normal
    >>> w = glorot_uniform(jax.random.key(0), (3, 4))
    >>> e = normal(0.02)(jax.random.key(1), (10, 8))
"""
import math

import jax
import jax.numpy as jnp


def _float(dtype):
    return jax.dtypes.canonicalize_dtype(jnp.float64 if dtype is None else dtype)


def _fans(shape):
    if len(shape) < 2:
        raise ValueError(f"fan-based initializers need a kernel of rank >= 2 "
                         f"([in, out] or [kh, kw, in, out]), got shape {tuple(shape)}")
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_uniform(key, shape, dtype=None):
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010).

    Example: ``glorot_uniform(jax.random.key(0), (784, 128))``.
    """
    fan_in, fan_out = _fans(shape)
    limit = math.sqrt(6 / (fan_in + fan_out))
    return jax.random.uniform(key, shape, _float(dtype), -limit, limit)


def glorot_normal(key, shape, dtype=None):
    """N(0, 2 / (fan_in + fan_out)) (not truncated).

    Example: ``glorot_normal(jax.random.key(0), (3, 3, 16, 32))``.
    """
    fan_in, fan_out = _fans(shape)
    return math.sqrt(2 / (fan_in + fan_out)) * jax.random.normal(key, shape, _float(dtype))


def he_normal(key, shape, dtype=None):
    """N(0, 2 / fan_in) (He et al. 2015, not truncated): for ReLU layers.

    Example: ``dense(128, w_init=he_normal)``.
    """
    fan_in, _ = _fans(shape)
    return math.sqrt(2 / fan_in) * jax.random.normal(key, shape, _float(dtype))


def he_uniform(key, shape, dtype=None):
    """U(-a, a) with a = sqrt(6 / fan_in) (variance 2 / fan_in, as he_normal).

    Example: ``conv2d(16, 3, w_init=he_uniform)``.
    """
    fan_in, _ = _fans(shape)
    limit = math.sqrt(6 / fan_in)
    return jax.random.uniform(key, shape, _float(dtype), -limit, limit)


def zeros(key, shape, dtype=None):
    """All zeros (the key is unused). Example: ``dense(3, w_init=zeros)``."""
    del key
    return jnp.zeros(shape, _float(dtype))


def ones(key, shape, dtype=None):
    """All ones (the key is unused). Example: ``ones(None, (4,))``."""
    del key
    return jnp.ones(shape, _float(dtype))


def normal(stddev=1.0):
    """Return an initializer drawing from N(0, stddev^2). Example: ``normal(0.02)``."""

    def init(key, shape, dtype=None):
        return stddev * jax.random.normal(key, shape, _float(dtype))

    return init
