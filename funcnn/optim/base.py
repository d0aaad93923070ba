"""The optimizer contract, in Optax's shape.

An optimizer is a pair of pure functions (a ``GradientTransformation``):

- ``init(params) -> state``: a NamedTuple of arrays (a pytree), nothing else;
- ``update(grads, state, params=None) -> (updates, state)``: ``updates`` has the structure of
  ``grads`` and is already negative (the sign convention of Optax): a descent step is
  ``params + updates``, done by :func:`apply_updates`.

So the hand-written optimizers here and any ``optax.GradientTransformation`` are used the same
way, and can be run side by side:

    >>> opt = sgd(0.1, momentum=0.9)
    >>> state = opt.init(params)
    >>> updates, state = opt.update(grads, state, params)
    >>> params = apply_updates(params, updates)
"""
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


class GradientTransformation(NamedTuple):
    """``init(params) -> state``; ``update(grads, state, params=None) -> (updates, state)``.

    The same two fields as ``optax.GradientTransformation``, so ``init, update = opt`` works
    for both and Optax's own optimizers can be passed wherever this is expected.
    """

    init: Callable
    update: Callable


class EmptyState(NamedTuple):
    """The state of an optimizer that keeps none (plain gradient descent)."""


def apply_updates(params, updates):
    """``params + updates`` leaf by leaf, keeping each parameter's dtype (as ``optax``).

    Args:
        params: a pytree of arrays.
        updates: a pytree of the same structure (already negative for a descent step).
    """
    return jax.tree.map(lambda p, u: jnp.asarray(p + u).astype(jnp.asarray(p).dtype),
                        params, updates)


def check_learning_rate(learning_rate, where):
    """Raise ``ValueError`` unless ``learning_rate`` is a finite number > 0."""
    try:
        value = float(learning_rate)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: expected a learning rate that is a positive number, got "
                        f"{learning_rate!r} of type {type(learning_rate).__name__}") from None
    if not (value > 0 and value != float("inf")):
        raise ValueError(f"{where}: expected a learning rate > 0 (and finite), got "
                         f"learning_rate={learning_rate!r}. Gradient descent steps against "
                         "the gradient by alpha > 0; try e.g. 0.1.")
    return value
