"""A parameter-free layer that applies an elementwise activation."""
from funcnn.activations import ACTIVATIONS, gelu, relu, sigmoid, tanh
from funcnn.layers.base import Layer


def activation(fn, **fn_kwargs):
    """Layer applying ``fn(x, **fn_kwargs)``; ``fn`` is a function or a name in ACTIVATIONS.

    The layer's kind (its name in ``serial``) is the function's name: ``relu``, ``gelu``, ...
    Shapes: ``x: [...] -> y: [...]``; params ``{}``.

    Example: ``activation("leaky_relu", negative_slope=0.1)`` or ``activation(jnp.abs)``.
    """
    if isinstance(fn, str):
        if fn not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {fn!r}")
        fn = ACTIVATIONS[fn]
    kind = getattr(fn, "__name__", "activation")
    kind = kind if kind.isidentifier() else "activation"

    def init(key, in_shape):
        return tuple(in_shape), {}

    def apply(params, x, **kwargs):
        return fn(x, **fn_kwargs)

    return Layer(init, apply, kind)


relu_layer = activation(relu)
sigmoid_layer = activation(sigmoid)
tanh_layer = activation(tanh)
gelu_layer = activation(gelu)
