"""Losses: cross-entropy (integer labels or soft targets), squared error, L2 penalty.

Every loss returns a scalar. Shapes are checked eagerly; integer labels are also checked to lie
in ``[0, classes)`` when they are concrete arrays (outside ``jit``/``vmap``). Under a trace the
range cannot be checked: an out-of-range label then gathers NaN (``take_along_axis``'s "fill"
mode), so the loss is NaN rather than a silently wrong number.

Example:
    >>> import jax.numpy as jnp
    >>> from funcnn.losses import cross_entropy
    >>> cross_entropy(jnp.zeros((2, 4)), jnp.array([0, 3]))  # log 4
"""
import jax
import jax.numpy as jnp
import numpy as np

from funcnn.activations import log_softmax


def _check_logits(name, logits, labels_shape):
    if logits.ndim != 2 or logits.shape[0] != labels_shape[0]:
        raise ValueError(f"{name}: expected logits [batch, classes] and labels with the same "
                         f"batch, got logits shape {logits.shape} and labels shape "
                         f"{labels_shape}")


def cross_entropy(logits, labels):
    """Mean over the batch of -log softmax(logits)[label].

    Args:
        logits: [batch, classes] unnormalised scores.
        labels: [batch] integer class ids in [0, classes).

    Example: ``cross_entropy(jnp.zeros((2, 4)), jnp.array([0, 3]))`` is log 4.
    """
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"cross_entropy: expected integer labels [batch], got dtype "
                        f"{labels.dtype}; for one-hot or soft targets use cross_entropy_soft")
    if labels.ndim != 1:
        raise ValueError(f"cross_entropy: expected labels [batch], got labels shape "
                         f"{labels.shape} (logits shape {logits.shape})")
    _check_logits("cross_entropy", logits, labels.shape)
    if not isinstance(labels, jax.core.Tracer):
        host = np.asarray(labels)
        bad = (host < 0) | (host >= logits.shape[1])
        if bad.any():
            index = int(np.argmax(bad))
            raise ValueError(f"cross_entropy: labels must lie in [0, {logits.shape[1]}) for "
                             f"logits shape {logits.shape}, got label {host[index]} at "
                             f"index {index}")
    log_p = log_softmax(logits, axis=-1)  # [batch, classes]
    picked = jnp.take_along_axis(log_p, labels[:, None], axis=1)  # [batch, 1]
    return -jnp.mean(picked[:, 0])


def cross_entropy_soft(logits, targets):
    """Mean over the batch of -sum_c targets[c] * log softmax(logits)[c].

    Args:
        logits: [batch, classes].
        targets: [batch, classes] one-hot or soft (each row a distribution).

    Example: ``cross_entropy_soft(jnp.zeros((1, 2)), jnp.array([[0.0, 1.0]]))`` is log 2.
    """
    if logits.shape != targets.shape or logits.ndim != 2:
        raise ValueError(f"cross_entropy_soft: expected logits and targets of the same shape "
                         f"[batch, classes], got logits shape {logits.shape} and targets "
                         f"shape {targets.shape}")
    return -jnp.mean(jnp.sum(targets * log_softmax(logits, axis=-1), axis=-1))


def mean_squared_error(pred, target):
    """Mean over all elements of (pred - target)^2; shapes must match exactly.

    Args:
        pred: [...] predictions.
        target: [...] targets, same shape (no broadcasting: a [batch] vs [batch, 1] mix-up is
            an error, not a [batch, batch] matrix).

    Example: ``mean_squared_error(jnp.array([1.0, 2.0]), jnp.array([1.0, 4.0]))`` is 2.
    """
    if pred.shape != target.shape:
        raise ValueError(f"mean_squared_error: expected pred and target of the same shape, "
                         f"got pred shape {pred.shape} and target shape {target.shape}")
    return jnp.mean(jnp.square(pred - target))


def l2_penalty(params):
    """Sum of squares of every leaf of a pytree (0.0 for an empty tree).

    Example: ``l2_penalty({"w": jnp.array([1.0, 2.0]), "b": jnp.array(3.0)})`` is 14.
    """
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        return jnp.zeros(())
    return sum(jnp.sum(jnp.square(leaf)) for leaf in leaves)
