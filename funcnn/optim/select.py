"""One argument chooses the optimizer: the hand-written SGD or the same update through Optax.

    >>> opt = make_optimizer("manual", 0.1, momentum=0.9)   # funcnn.optim.sgd
    >>> opt = make_optimizer("optax", 0.1, momentum=0.9)    # optax.sgd
    >>> opt = make_optimizer(optax.adam(1e-3), None)        # any GradientTransformation

Both implement ``init(params) -> state`` and ``update(grads, state, params) -> (updates,
state)``, and :func:`funcnn.optim.apply_updates` applies either's updates.
"""
import optax

from funcnn.optim.base import check_learning_rate
from funcnn.optim.sgd import sgd

OPTIMIZERS = ("manual", "optax")


def optax_sgd(learning_rate, momentum=None, nesterov=False):
    """``optax.sgd`` with the same argument checks as the hand-written :func:`sgd`.

    ``momentum=0`` or ``None`` both mean none (Optax's ``None``).
    """
    alpha = check_learning_rate(learning_rate, "optax_sgd")
    if momentum is not None and not 0.0 <= float(momentum) < 1.0:
        raise ValueError(f"optax_sgd: expected momentum in [0, 1), got momentum={momentum!r}")
    if nesterov and not momentum:
        raise ValueError("optax_sgd: nesterov=True needs a momentum in (0, 1), got "
                         f"momentum={momentum!r}")
    return optax.sgd(alpha, momentum=momentum or None, nesterov=nesterov)


def is_transformation(obj):
    """True for an object with callable ``init`` and ``update`` (ours or Optax's)."""
    return callable(getattr(obj, "init", None)) and callable(getattr(obj, "update", None))


def make_optimizer(optimizer, learning_rate, momentum=0.0, nesterov=False):
    """The optimizer named by ``optimizer``.

    Args:
        optimizer: ``"manual"`` (hand-written :func:`sgd`), ``"optax"`` (``optax.sgd``), or a
            ready ``GradientTransformation`` (returned as is; the other arguments unused).
        learning_rate: ``alpha > 0``.
        momentum: ``mu`` in ``[0, 1)``; ``0`` means plain SGD.
        nesterov: Nesterov momentum.
    """
    if is_transformation(optimizer):
        return optimizer
    if optimizer == "manual":
        check_learning_rate(learning_rate, "make_optimizer")
        return sgd(learning_rate, momentum=momentum or None, nesterov=nesterov)
    if optimizer == "optax":
        return optax_sgd(learning_rate, momentum=momentum, nesterov=nesterov)
    raise ValueError(f"expected optimizer in {OPTIMIZERS} or a GradientTransformation (an "
                     f"object with init and update), got {optimizer!r}")
