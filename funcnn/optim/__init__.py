"""funcnn.optim: gradient descent and SGD by hand, in Optax's shape; the same through Optax.

    >>> from funcnn import optim
    >>> opt = optim.sgd(0.1, momentum=0.9)            # or optim.make_optimizer("optax", 0.1, 0.9)
    >>> state = opt.init(params)
    >>> updates, state = opt.update(grads, state, params)
    >>> params = optim.apply_updates(params, updates)
"""
from funcnn.optim.base import EmptyState, GradientTransformation, apply_updates
from funcnn.optim.select import OPTIMIZERS, is_transformation, make_optimizer, optax_sgd
from funcnn.optim.sgd import SGDState, gradient_descent, sgd

__all__ = ["GradientTransformation", "EmptyState", "SGDState", "apply_updates",
           "gradient_descent", "sgd", "optax_sgd", "make_optimizer", "is_transformation",
           "OPTIMIZERS"]
