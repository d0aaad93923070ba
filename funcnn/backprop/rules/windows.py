"""VJP rules of windowed reductions: reduce_window_sum (average pooling),
reduce_window_max / reduce_window_min (max/min pooling), and the generic reduce_window when
its reducer is a plain add, max or min.

- sum: linear; the transpose spreads each output's cotangent back over its window: pad the
  cotangent (strides become holes), then a window sum with base dilation as the stride
  (JAX's ``_reduce_window_sum_transpose_rule``).
- max/min: the cotangent goes to the one position each window selected, the first extremum
  in the window's row-major order, as JAX's select_and_scatter_add gives it (ties included).
  Written with slices and pads over the window offsets (one strided view per offset; windows
  are small), so window dilation works too, where JAX raises.
- generic ``reduce_window(x, c, op)``: XLA computes ``c op (reduction of the window's
  in-bounds elements)``; padding and base-dilation holes contribute nothing. With op = add,
  x's cotangent is the sum rule's and c's is sum(ct); with max/min, x's position wins when it
  is at least as extreme as c, and c gets the rest. (JAX itself cannot differentiate this
  primitive.) Any other reducer raises.
"""
from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn.backprop import sharding_jax as sj
from funcnn.backprop.registry import defvjp, is_float, like
from funcnn.backprop.rules.conv import lhs_vjp_padding


def _sum_transpose(ct, x_shape, *, window_dimensions, window_strides, padding, base_dilation,
                   window_dilation):
    """d<ct, reduce_window_sum(x)>/dx."""
    pads = lhs_vjp_padding(x_shape, window_dimensions, window_strides, ct.shape, padding,
                           base_dilation, window_dilation)
    config = [(lo, hi, s - 1) for (lo, hi), s in zip(pads, window_strides, strict=True)]
    padded = lax.pad(ct, jnp.zeros((), ct.dtype), config)
    result = lax.reduce_window(padded, np.zeros((), ct.dtype), lax.add, window_dimensions,
                               base_dilation, [(0, 0)] * len(x_shape),
                               base_dilation=(1,) * len(x_shape),
                               window_dilation=window_dilation)
    assert result.shape == tuple(x_shape), (result.shape, x_shape)
    return result


def _chosen(ct, x, select, *, window_dimensions, window_strides, padding, base_dilation,
            window_dilation, init=None):
    """d<ct, reduce_window_{select}(x)>/dx: each output's ct goes to the first position of its
    window holding the extremum. With ``init`` (generic reduce_window), only where that
    extremum is at least as extreme as ``init``; also returns the mask of those outputs."""
    return _chosen_jit(ct, jnp.asarray(x), init, select, tuple(window_dimensions),
                       tuple(window_strides), tuple(tuple(p) for p in padding),
                       tuple(base_dilation), tuple(window_dilation))


# One compiled unit: run eagerly, the 2K slices and pads below would each dispatch on its own.
@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6, 7, 8))
def _chosen_jit(ct, x, init, select, window_dimensions, window_strides, padding, base_dilation,
                window_dilation):
    dtype = ct.dtype
    fill = -jnp.inf if select == "max" else jnp.inf
    # x padded and base-dilated; holes hold the identity, so they never win over x.
    config = [(lo, hi, b - 1) for (lo, hi), b in zip(padding, base_dilation, strict=True)]
    xp = lax.pad(x, jnp.asarray(fill, x.dtype), config)
    out_shape = ct.shape
    if any(n == 0 for n in out_shape):
        return sj.zeros_like(x, dtype), sj.zeros_like(ct, bool)
    # One strided view of xp per window offset: views[k][o] = the k-th element of window o.
    starts, views = [], []
    for offset in itertools.product(*(range(w) for w in window_dimensions)):
        start = tuple(k * d for k, d in zip(offset, window_dilation, strict=True))
        limit = tuple(s + (n - 1) * t + 1
                      for s, n, t in zip(start, out_shape, window_strides, strict=True))
        starts.append((start, limit))
        views.append(lax.slice(xp, start, limit, window_strides))
    stacked = jnp.stack(views)  # [K, *out]
    first = (jnp.argmax if select == "max" else jnp.argmin)(stacked, axis=0)  # [*out]
    to_x = sj.full_like(ct, True, bool)
    if init is not None:
        best = (jnp.max if select == "max" else jnp.min)(stacked, axis=0)
        init = jnp.asarray(init, x.dtype)
        to_x = best >= init if select == "max" else best <= init
    zero = sj.zeros_like(ct)  # placed as ct and xp (explicit sharding: select and add need it)
    ct_xp = sj.zeros_like(xp, dtype)
    for k, (start, limit) in enumerate(starts):
        ct_k = jnp.where((first == k) & to_x, ct, zero)
        back = [(s, n - e, t - 1)
                for s, e, n, t in zip(start, limit, xp.shape, window_strides, strict=True)]
        ct_xp = ct_xp + lax.pad(ct_k, jnp.zeros((), dtype), back)
    # Transpose of the padding and dilation: drop the pads, keep every b-th element.
    unpadded = lax.pad(ct_xp, jnp.zeros((), dtype), [(-lo, -hi, 0) for lo, hi in padding])
    ct_x = lax.slice(unpadded, (0,) * x.ndim, unpadded.shape, tuple(base_dilation))
    return ct_x, to_x


@defvjp("reduce_window_sum")
def _reduce_window_sum(ct, x, *, out, window_dimensions, window_strides, padding,
                       base_dilation, window_dilation, **_):
    return (like(_sum_transpose(ct, np.shape(x), window_dimensions=window_dimensions,
                                window_strides=window_strides, padding=padding,
                                base_dilation=base_dilation,
                                window_dilation=window_dilation), x),)


def _chooser(select):
    def rule(ct, x, *, out, window_dimensions, window_strides, padding, base_dilation,
             window_dilation, **_):
        ct_x, _ = _chosen(ct, x, select, window_dimensions=window_dimensions,
                          window_strides=window_strides, padding=padding,
                          base_dilation=base_dilation, window_dilation=window_dilation)
        return (like(ct_x, x),)

    rule.__name__ = f"vjp_reduce_window_{select}"
    return rule


defvjp("reduce_window_max")(_chooser("max"))
defvjp("reduce_window_min")(_chooser("min"))


def reducer_name(jaxpr, consts) -> str | None:
    """'add', 'max' or 'min' when ``jaxpr`` is exactly ``lambda a, b: op(a, b)``, else None."""
    if hasattr(jaxpr, "consts"):  # a ClosedJaxpr
        jaxpr, consts = jaxpr.jaxpr, tuple(consts) + tuple(jaxpr.consts)
    if consts or len(jaxpr.invars) != 2 or len(jaxpr.outvars) != 1 or len(jaxpr.eqns) != 1:
        return None
    (eqn,) = jaxpr.eqns
    name = eqn.primitive.name
    if name not in ("add", "max", "min"):
        return None
    if set(eqn.invars) != set(jaxpr.invars) or list(eqn.outvars) != list(jaxpr.outvars):
        return None
    return name


@defvjp("reduce_window")
def _reduce_window(cts, *operands_and_inits, out, jaxpr, consts=(), window_dimensions,
                   window_strides, padding, base_dilation, window_dilation, **_):
    n = len(operands_and_inits) // 2
    name = reducer_name(jaxpr, consts) if n == 1 else None
    if name is None:
        raise NotImplementedError(
            "funcnn.backprop: reduce_window has a VJP only for one operand reduced with a "
            f"plain add, max or min; got {n} operand(s) and the reducer {jaxpr}. Use "
            "lax.reduce_window with lax.add/lax.max/lax.min (and init 0/-inf/+inf to get "
            "reduce_window_sum/max/min).")
    (x, init), (ct,) = operands_and_inits, cts
    window = dict(window_dimensions=window_dimensions, window_strides=window_strides,
                  padding=padding, base_dilation=base_dilation, window_dilation=window_dilation)
    if ct is None:
        return (None, None)
    if name == "add":
        ct_x = _sum_transpose(ct, np.shape(x), **window)
        ct_init = ct.sum()
    else:
        ct_x, to_x = _chosen(ct, x, name, init=init, **window)
        ct_init = jnp.where(to_x, jnp.zeros_like(ct), ct).sum()
    return (like(ct_x, x) if is_float(x) else None,
            like(ct_init, init) if is_float(init) else None)
