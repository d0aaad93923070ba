"""Combinators that build layers from layers: ``serial``, ``parallel``, ``fan_out``,
``fan_in_sum``, ``residual``, plus ``intermediates`` to read every sublayer's output.

Example:
    >>> import jax
    >>> from funcnn.layers import dense, relu_layer, serial
    >>> net = serial(dense(8), relu_layer, dense(3))      # names dense_0, relu_0, dense_1
    >>> out_shape, params = net.init(jax.random.key(0), (-1, 5))     # (-1, 3)
    >>> x = jax.numpy.ones((4, 5))
    >>> y = net.apply(params, x, taps={"dense_1": jax.numpy.zeros((4, 3))})
    >>> hidden = intermediates(net, params, x)["relu_0"]             # [4, 8]
"""
import jax
import jax.numpy as jnp

from funcnn.layers.base import Layer, LayerError, located
from funcnn.layers.dense import dense


def sublayer_names(layers, names=None, where="serial"):
    """The names ``serial(*layers, names=names)`` gives its sublayers (its parameter keys).

    Given names are checked (one per layer, distinct); by default ``f"{kind}_{i}"`` with i
    counting the layers of that kind. Example: ``sublayer_names([dense(4), relu_layer,
    dense(2)])`` is ``("dense_0", "relu_0", "dense_1")``.
    """
    if names is None:
        counts = {}
        names = []
        for layer in layers:
            names.append(f"{layer.name}_{counts.get(layer.name, 0)}")
            counts[layer.name] = counts.get(layer.name, 0) + 1
    names = tuple(names)
    if len(names) != len(layers) or len(set(names)) != len(names):
        raise ValueError(f"{where}: expected {len(layers)} distinct names, got {names}")
    return names


def serial(*layers, names=None, name="serial"):
    """Compose layers one after another; params are ``{sublayer_name: sublayer_params}``.

    Args:
        layers: the sublayers, applied in order.
        names: optional sublayer names (the parameter keys and tap names); default
            ``f"{kind}_{i}"`` where i counts the layers of that kind: dense_0, relu_0, dense_1.
        name: this layer's own kind, used when it is nested in another ``serial``.

    ``apply(params, x, taps=None, with_intermediates=False, **kwargs)``: other keyword
    arguments go to every sublayer. ``taps={name: array}`` adds ``taps[name]`` to that
    sublayer's output before it goes on (same shape as the output), so the gradient with
    respect to a zero tap is the adjoint dL/d(output). ``with_intermediates=True`` returns
    ``(y, {name: output after its tap})``.

    Example: ``serial(dense(8), relu_layer, dense(3))``.
    """
    names = sublayer_names(layers, names, name)

    def init(key, in_shape):
        shape = tuple(in_shape)
        params = {}
        for sub_name, layer, sub_key in zip(names, layers, jax.random.split(key, len(layers)),
                                            strict=True):
            with located(sub_name):
                shape, params[sub_name] = layer.init(sub_key, shape)
        return shape, params

    def apply(params, x, taps=None, with_intermediates=False, **kwargs):
        taps = {} if taps is None else taps
        unknown = sorted(set(taps) - set(names))
        if unknown:
            raise LayerError(name, f"expected taps among {list(names)}, got {unknown}")
        outputs = {}
        for sub_name, layer in zip(names, layers, strict=True):
            with located(sub_name):
                x = layer.apply(params[sub_name], x, **kwargs)
            if sub_name in taps:
                if jnp.shape(taps[sub_name]) != jnp.shape(x):
                    raise LayerError(name, f"tap {sub_name!r}: expected shape {jnp.shape(x)}, "
                                           f"got shape {jnp.shape(taps[sub_name])}")
                x = x + taps[sub_name]
            outputs[sub_name] = x
        return (x, outputs) if with_intermediates else x

    return Layer(init, apply, name)


def intermediates(layer_or_model, params, x, **kwargs):
    """Every top-level sublayer's output of a ``serial`` layer or a model, by name.

    Example: ``intermediates(net, params, x)["relu_0"]`` is the hidden activation.
    """
    return layer_or_model.apply(params, x, with_intermediates=True, **kwargs)[1]


def parallel(*layers, names=None):
    """Apply layer i to input i: ``xs`` is a tuple with one array per layer (stax.parallel).

    Params are ``{name_i: params_i}`` named as in ``serial``; output is a tuple. Pair it with
    ``fan_out(n)`` before and ``fan_in_sum()`` after.

    Example: ``serial(fan_out(2), parallel(dense(4), dense(4)), fan_in_sum())``.
    """
    names = sublayer_names(layers, names, "parallel")

    def check(xs, what):
        if not isinstance(xs, tuple | list) or len(xs) != len(layers):
            raise LayerError("parallel", f"expected a tuple of {len(layers)} {what}, got {xs!r}")

    def init(key, in_shapes):
        check(in_shapes, "input shapes")
        out_shapes, params = [], {}
        for sub_name, layer, sub_key, shape in zip(
                names, layers, jax.random.split(key, len(layers)), in_shapes, strict=True):
            with located(sub_name):
                out_shape, params[sub_name] = layer.init(sub_key, shape)
            out_shapes.append(out_shape)
        return tuple(out_shapes), params

    def apply(params, xs, **kwargs):
        check(xs, "inputs")
        outputs = []
        for sub_name, layer, x in zip(names, layers, xs, strict=True):
            with located(sub_name):
                outputs.append(layer.apply(params[sub_name], x, **kwargs))
        return tuple(outputs)

    return Layer(init, apply, "parallel")


def fan_out(n):
    """Copy the input into a tuple of ``n`` (no params). Example: ``fan_out(2)``."""

    def init(key, in_shape):
        return (tuple(in_shape),) * n, {}

    def apply(params, x, **kwargs):
        return (x,) * n

    return Layer(init, apply, "fan_out")


def fan_in_sum():
    """Sum a tuple of same-shape inputs (no params). Example: ``fan_in_sum()``."""

    def init(key, in_shapes):
        shapes = {tuple(s) for s in in_shapes}
        if len(shapes) != 1:
            raise LayerError("fan_in_sum", f"expected inputs of one shape, got {in_shapes}")
        return shapes.pop(), {}

    def apply(params, xs, **kwargs):
        return sum(xs[1:], start=xs[0])

    return Layer(init, apply, "fan_in_sum")


def residual(f, projection=None):
    """y = P(x) + f(x): a skip connection around the layer ``f``.

    P is the identity when f keeps the feature size, else ``projection`` (a layer) or, if that
    is None, a ``dense`` layer to f's output size (created at init). Params are f's own params
    (the wrapper adds no level), plus ``"projection"`` when P is not the identity.

    Args:
        f: the residual branch; its output must have x's shape except maybe the last axis.
        projection: optional layer mapping x to f's output shape.

    Example: ``residual(serial(layer_norm(), dense(16)))`` on x: [batch, 16].
    """

    def init(key, in_shape):
        in_shape = tuple(in_shape)
        f_key, p_key = jax.random.split(key)
        out_shape, params = f.init(f_key, in_shape)
        if "projection" in params:
            raise ValueError("residual: the branch's params already have a 'projection' key")
        skip_shape = in_shape
        if projection is not None or out_shape[-1] != in_shape[-1]:
            layer = projection if projection is not None else dense(out_shape[-1])
            skip_shape, params["projection"] = layer.init(p_key, in_shape)
        if tuple(skip_shape) != tuple(out_shape):
            raise LayerError("residual", f"expected the skip path's shape {tuple(skip_shape)} "
                                         f"to equal the branch's output shape {out_shape}")
        return out_shape, params

    def apply(params, x, **kwargs):
        f_params = {k: v for k, v in params.items() if k != "projection"}
        y = f.apply(f_params, x, **kwargs)
        if "projection" in params:
            layer = projection if projection is not None else dense(y.shape[-1])
            x = layer.apply(params["projection"], x)
        if x.shape != y.shape:
            raise LayerError("residual", f"expected the branch output's shape {y.shape} to "
                                         f"equal the skip path's shape {x.shape}")
        return x + y

    return Layer(init, apply, "residual")
