"""How to call the public functions of ``jax.numpy`` (``jnp.linalg`` and ``jnp.fft``:
``numpy_linalg_calls``).

Which functions are tested is NOT listed here: ``library_points.public_functions`` finds them.
The default call passes one float64 array of shape (3, 4) per required positional parameter
(per input, ``nin``, of a ``jnp.ufunc``) and differentiates with respect to all of them, at
``POINTS``. This file only says:

- ``JNP``: how to call a function whose signature is not that (static integers, sequences of
  arrays, index arrays, ``size=`` under jit, callables), its shapes and its domain;
- ``JNP_EXCLUDED``: functions that are not functions of float arrays at all, each with the
  reason, by category.

Functions whose output is integer or boolean (``argmax``, ``isnan``, ``equal``) are called, not
excluded: the loss drops such leaves, so the gradient is zero, and the engine must give
jax.grad's zeros (in its dtype) without choking on the primitives on the way.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from tests.backprop.library_calls import Call
from tests.backprop.sampling import Sampler, normal, uniform

SHAPE = (3, 4)
# Fewer points than the jax.nn/special tests (CI cost: ~400 functions): a random point of the
# domain, 0 (kinks, poles, 0/0) and ties (equal entries along the last axis: max, sort, where).
POINTS = ("random", "zero", "ties")

N = normal(SHAPE)
POS = uniform(0.2, 4.0, SHAPE)
OPEN_UNIT = uniform(-0.9, 0.9, SHAPE)  # arcsin, arccos, arctanh
ABOVE_ONE = uniform(1.1, 4.0, SHAPE)  # arccosh
POS_SCALAR = uniform(0.2, 4.0, ())


def sorted_normal(shape) -> Sampler:
    return lambda rng: np.sort(rng.standard_normal(shape), axis=-1)


def C(apply=None, n_diff=None, shapes=None, domain=None, label="default", points=POINTS,
      rtol=None, atol=None) -> Call:
    """A ``Call`` (library_calls) at ``POINTS``, with one differentiated argument per entry
    of ``shapes`` unless ``n_diff`` says; the Python-float cases do not apply here."""
    n_diff = len(shapes) if n_diff is None and shapes is not None else n_diff
    kw = {} if rtol is None else {"rtol": rtol}
    kw |= {} if atol is None else {"atol": atol}
    return Call(apply, n_diff, shapes, domain, scalar=False, label=label, points=points, **kw)


def on(*domain: Sampler) -> tuple[Call]:
    return (C(domain=domain),)


def one(apply, shapes=(SHAPE,), domain=None, label="default") -> tuple[Call]:
    """``apply(f, *diff_args)`` with one differentiated argument per entry of ``shapes``."""
    return (C(apply, len(shapes), shapes, domain, label),)


def listed(f, *xs):  # functions of one sequence of arrays: stack, concatenate, block, ...
    return f(list(xs))


# --- fixed, non-differentiated arguments ---------------------------------------------------------
MASK = np.array([[True, False, True, True], [False, False, True, False],
                 [True, True, False, True]])
ROW_MASK = np.array([True, False, True, True])  # along the last axis of SHAPE
IDX = np.array([5, 0, 11, 5], np.int32)  # flat indices into SHAPE, one repeated
ALONG = np.array([[0, 3], [2, 2], [1, 0]], np.int32)  # indices along the last axis of SHAPE
BINS = np.array([-1.0, -0.25, 0.0, 0.5, 2.0])
XP = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])  # interp's sample points (increasing)
CHOICE = np.array([[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]], np.int32)
COUNTS = np.array([0, 2, 2, 4, 1, 0], np.int32)  # bincount's integer input
INT_EXPONENTS = np.array([[0, 1, -1, 3], [2, 0, 0, -2], [1, 1, 5, 0]], np.int32)


def frompyfunc(f, x, y):
    return f(lambda a, b: a * jnp.sin(b), 2, 1)(x, y)


def piecewise(f, x):
    return f(x, [x < 0, x >= 0], [lambda v: -v, lambda v: v * v])


def vectorize(f, x):
    return f(lambda v: jnp.sum(v * v * v), signature="(n)->()")(x)


SCALAR = ((),)
SCALARS = ((), ())
V4, V6 = (4,), (6,)

JNP = {
    "acos": on(OPEN_UNIT), "arccos": on(OPEN_UNIT), "asin": on(OPEN_UNIT),
    "arcsin": on(OPEN_UNIT), "atanh": on(OPEN_UNIT), "arctanh": on(OPEN_UNIT),
    "acosh": on(ABOVE_ONE), "arccosh": on(ABOVE_ONE),
    "log": on(POS), "log10": on(POS), "log2": on(POS), "log1p": on(POS), "sqrt": on(POS),
    **{n: (C(domain=(POS, N)),)
       for n in ("pow", "power", "float_power")},
    "apply_along_axis": one(lambda f, x: f(lambda v: jnp.sum(v * jnp.sin(v)), 1, x)),
    "apply_over_axes": one(lambda f, x: f(jnp.sum, x, [0])),
    "argpartition": one(lambda f, x: f(x, 2)),
    "argwhere": one(lambda f, x: f(x, size=5)),
    "array_split": one(lambda f, x: f(x, 2)),
    "astype": (*one(lambda f, x: f(x, jnp.float32), label="float32"),
               *one(lambda f, x: f(x, jnp.complex128), label="complex128")),
    "average": (C(), *one(lambda f, a, w: f(a, axis=1, weights=w), (SHAPE, SHAPE), (N, POS),
                          "weights")),
    "bincount": one(lambda f, w: f(COUNTS, weights=w, length=6), (V6,)),
    "block": (C(listed, 2),),
    "broadcast_arrays": (C(n_diff=2),),
    "broadcast_to": one(lambda f, x: f(x, (2, 3, 4))),
    "atleast_1d": (C(n_diff=1),), "atleast_2d": (C(n_diff=1),), "atleast_3d": (C(n_diff=1),),
    "choose": one(lambda f, x, y: f(CHOICE, [x, y], mode="clip"), (SHAPE, SHAPE)),
    "clip": (*one(lambda f, x: f(x, -0.5, 1.0)),
             *one(lambda f, x, lo, hi: f(x, lo, hi), (SHAPE,) * 3, label="bounds")),
    "column_stack": (C(listed, 2),),
    "compress": one(lambda f, x: f(ROW_MASK, x, axis=1, size=3)),
    "concat": (C(listed, 2),), "concatenate": (C(listed, 2),),
    "convolve": (C(shapes=((5,), (3,))),
                 *one(lambda f, a, v: f(a, v, mode="same"), ((5,), (3,)), label="same")),
    "correlate": (C(shapes=((5,), (3,))),),
    "cross": (C(shapes=((4, 3), (4, 3))),),
    "cumulative_prod": one(lambda f, x: f(x, axis=1)),
    "cumulative_sum": one(lambda f, x: f(x, axis=1, include_initial=True)),
    "delete": one(lambda f, x: f(x, 1, axis=1)),
    "diag": (C(), C(shapes=(V4,), label="vector")),
    "diag_indices_from": (C(shapes=((3, 3),)),),
    "digitize": one(lambda f, x: f(x, BINS)),
    "dot": (C(shapes=(SHAPE, (4, 2))),),
    "dsplit": one(lambda f, x: f(x, 2), ((2, 3, 4),)),
    "dstack": (C(listed, 2),),
    "einsum": one(lambda f, a, b: f("ij,kj->ik", a, b), (SHAPE, SHAPE)),
    "expand_dims": one(lambda f, x: f(x, 1)),
    "extract": one(lambda f, x: f(MASK, x, size=5)),
    "fill_diagonal": one(lambda f, a, v: f(a, v, inplace=False), ((3, 3), ())),
    "flatnonzero": one(lambda f, x: f(x, size=5)),
    "fromfunction": one(lambda f, s: f(lambda i, j: (i + j) * s, (3, 4)), SCALAR),
    "frompyfunc": one(frompyfunc, (SHAPE, SHAPE)),
    "full": one(lambda f, v: f((3, 4), v), SCALAR),
    "full_like": one(lambda f, x, v: f(x, v), (SHAPE, ())),
    "geomspace": one(lambda f, a, b: f(a, b, 5), SCALARS, (POS_SCALAR, POS_SCALAR)),
    "histogram2d": (C(shapes=(V6, V6)),),
    "histogramdd": (C(shapes=((6, 2),)),),
    "hsplit": one(lambda f, x: f(x, 2)),
    "hstack": (C(listed, 2),),
    "insert": one(lambda f, x, v: f(x, 1, v, axis=1), (SHAPE, (3,))),
    "interp": one(lambda f, x, fp: f(x, XP, fp), (SHAPE, (5,))),
    "intersect1d": one(lambda f, x, y: f(x, y, size=4), (SHAPE, SHAPE)),
    "kaiser": one(lambda f, beta: f(5, beta), SCALAR, (POS_SCALAR,)),
    "ldexp": one(lambda f, x: f(x, INT_EXPONENTS)),
    "linspace": one(lambda f, a, b: f(a, b, 5), SCALARS),
    "logspace": one(lambda f, a, b: f(a, b, 5), SCALARS),
    "matmul": (C(shapes=(SHAPE, (4, 2))),),
    "matvec": (C(shapes=(SHAPE, V4)),),
    "meshgrid": (C(n_diff=2, shapes=((3,), V4)),),
    "moveaxis": one(lambda f, x: f(x, 0, 1)),
    "nanpercentile": one(lambda f, x, q: f(x, q), (SHAPE, ()), (N, uniform(5.0, 95.0, ()))),
    "nanquantile": one(lambda f, x, q: f(x, q), (SHAPE, ()), (N, uniform(0.05, 0.95, ()))),
    "nonzero": one(lambda f, x: f(x, size=5)),
    "pad": (*one(lambda f, x: f(x, 1)), *one(lambda f, x: f(x, 2, mode="reflect"),
                                             label="reflect"),
            *one(lambda f, x: f(x, 1, mode="edge"), label="edge"),
            *one(lambda f, x: f(x, 1, mode="maximum"), label="maximum")),
    "partition": one(lambda f, x: f(x, 2)),
    "percentile": one(lambda f, x, q: f(x, q), (SHAPE, ()), (N, uniform(5.0, 95.0, ()))),
    "permute_dims": one(lambda f, x: f(x, (1, 0))),
    "piecewise": one(piecewise),
    "place": one(lambda f, x, v: f(x, MASK, v, inplace=False), (SHAPE, (3,))),
    "poly": (C(shapes=(V4,)),),
    "polyadd": (C(shapes=(V4, (3,))),), "polysub": (C(shapes=(V4, (3,))),),
    "polyder": (C(shapes=((5,),)),),
    "polydiv": (C(shapes=((5,), (3,))),),
    "polyfit": one(lambda f, x, y: f(x, y, 2), (V6, V6)),
    "polyint": (C(shapes=(V4,)),),
    "polymul": (C(shapes=(V4, (3,))),),
    "polyval": (C(shapes=(V4, SHAPE)),),
    "put": one(lambda f, x, v: f(x, IDX, v, inplace=False), (SHAPE, V4)),
    "put_along_axis": one(lambda f, x, v: f(x, ALONG, v, axis=1, inplace=False),
                          (SHAPE, (3, 2))),
    "quantile": one(lambda f, x, q: f(x, q), (SHAPE, ()), (N, uniform(0.05, 0.95, ()))),
    "repeat": one(lambda f, x: f(x, 2, axis=1)),
    "reshape": one(lambda f, x: f(x, (2, 6))),
    "resize": one(lambda f, x: f(x, (5, 3))),
    "roll": one(lambda f, x: f(x, 1, axis=1)),
    "rollaxis": one(lambda f, x: f(x, 1)),
    "roots": one(lambda f, p: f(p, strip_zeros=False), (V4,)),
    "searchsorted": one(lambda f, a, v: f(a, v), ((5,), SHAPE), (sorted_normal((5,)), N)),
    "select": one(lambda f, x, y: f([x < 0, x >= 0], [x, y]), (SHAPE, SHAPE)),
    "setdiff1d": one(lambda f, x, y: f(x, y, size=4), (SHAPE, SHAPE)),
    "setxor1d": one(lambda f, x, y: f(x, y, size=4), (SHAPE, SHAPE)),
    "split": one(lambda f, x: f(x, 2, axis=1)),
    "squeeze": (C(shapes=((3, 1, 4),)),),
    "stack": (C(listed, 2),),
    "swapaxes": one(lambda f, x: f(x, 0, 1)),
    "take": one(lambda f, x: f(x, IDX)),
    "take_along_axis": one(lambda f, x: f(x, ALONG, axis=1)),
    "tile": one(lambda f, x: f(x, (2, 1))),
    "top_k": one(lambda f, x: f(x, 2)),  # JAX >= 0.12
    "trapezoid": (C(), *one(lambda f, y, x: f(y, x), (SHAPE, SHAPE), label="x")),
    "union1d": one(lambda f, x, y: f(x, y, size=4), (SHAPE, SHAPE)),
    "unique": one(lambda f, x: f(x, size=6)),
    "unique_all": one(lambda f, x: f(x, size=6)),
    "unique_counts": one(lambda f, x: f(x, size=6)),
    "unique_inverse": one(lambda f, x: f(x, size=6)),
    "unique_values": one(lambda f, x: f(x, size=6)),
    "vander": (C(shapes=(V4,)),),
    "vecmat": (C(shapes=((3,), SHAPE)),),
    "vectorize": one(vectorize),
    "vsplit": one(lambda f, x: f(x, 3)),
    "where": one(lambda f, x, y: f(x > 0, x, y), (SHAPE, SHAPE)),
}

STATIC = "builds an array from static shapes/integers: no float input to differentiate"
INTEGER = "takes integer or boolean arrays only: nothing to differentiate"
DTYPES = "a predicate on dtypes or Python objects: no array in, no array out"
IO = "input/output or buffer conversion, not a traced function of arrays"
PRINTING = "printing configuration or string formatting: no array out"
CONCRETE = "its output shape depends on the input's values (jnp refuses it under jit too)"

JNP_EXCLUDED = {
    **{n: STATIC for n in ("arange", "bartlett", "blackman", "diag_indices", "empty", "eye",
                           "hamming", "hanning", "identity", "indices", "mask_indices",
                           "ones", "tri", "tril_indices", "triu_indices", "zeros")},
    **{n: INTEGER for n in ("bitwise_and", "bitwise_count", "bitwise_invert",
                            "bitwise_left_shift", "bitwise_not", "bitwise_or",
                            "bitwise_right_shift", "bitwise_xor", "gcd", "invert", "lcm",
                            "left_shift", "packbits", "ravel_multi_index", "right_shift",
                            "unpackbits", "unravel_index", "ix_")},
    **{n: DTYPES for n in ("can_cast", "isdtype", "issubdtype", "promote_types",
                           "result_type", "broadcast_shapes", "iscomplexobj", "isrealobj",
                           "isscalar", "iterable", "ndim", "shape", "size", "einsum_path")},
    **{n: IO for n in ("from_dlpack", "frombuffer", "fromfile", "fromiter", "fromstring",
                       "load", "save", "savez")},
    **{n: PRINTING for n in ("array_repr", "array_str", "get_printoptions", "printoptions",
                             "set_printoptions")},
    "trim_zeros": CONCRETE,
}

# Names in JNP that only some supported JAX releases have.
JNP_NOT_IN_EVERY_RELEASE = {"top_k"}
