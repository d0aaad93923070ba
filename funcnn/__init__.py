"""funcnn: a functional reference implementation of neural networks in JAX.

Every function is pure and every model is an explicit pytree of arrays. Import what you need
from the submodules, e.g. ``from funcnn import activations, layers, losses, models``.
"""

__version__ = "0.1.0"
