"""The two types every layer file shares: ``Layer`` and ``LayerError``.

``LayerError`` carries *where* the bad input arrived. A layer raises it with its own kind
(``"dense"``); each enclosing ``serial`` rewrites that to the sublayer's name and prepends its
own, so that the message names the parameter path, e.g.
``block_0/mlp/dense_0: expected x[..., 32], got shape (4, 7, 30)``.
"""
import contextlib
from collections.abc import Callable


class Layer(tuple):
    """A layer: ``init(key, in_shape) -> (out_shape, params)``, ``apply(params, x, **kw) -> y``.

    A pair, so ``init, apply = layer`` works (as stax); ``layer.init``, ``layer.apply`` too.
    ``name`` is the layer's kind (``"dense"``, ``"conv2d"``, ...), kept beside the pair and
    used by ``serial`` to name its sublayers ``f"{name}_{i}"``.
    """

    def __new__(cls, init: Callable, apply: Callable, name: str):
        layer = super().__new__(cls, (init, apply))
        layer.name = name
        return layer

    @property
    def init(self) -> Callable:
        return self[0]

    @property
    def apply(self) -> Callable:
        return self[1]

    def __repr__(self):
        return f"Layer(name={self.name!r})"


class LayerError(ValueError):
    """Bad input to a layer: where it happened, what was expected, what came.

    Args:
        where: the layer's kind at the raise; ``located`` turns it into a parameter path.
        detail: "expected ..., got ..." text.
    """

    def __init__(self, where, detail):
        super().__init__(where, detail)
        self.where = where
        self.detail = detail
        self.is_path = False

    def __str__(self):
        return f"{self.where}: {self.detail}"


@contextlib.contextmanager
def located(name):
    """Re-raise a ``LayerError`` from the body with ``name`` as (the head of) its path.

    Example:
        >>> with located("dense_0"):
        ...     y = layer.apply(params["dense_0"], x)
    """
    try:
        yield
    except LayerError as err:
        err.where = f"{name}/{err.where}" if err.is_path else name
        err.is_path = True
        raise
