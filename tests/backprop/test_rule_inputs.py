"""Every elementwise rule on each kind of input a program hands it, against ``jax.vjp``:

- a Python scalar (a weakly typed literal or argument: ``backprop.grad(jnp.log)(0.5)``),
- a 0-d array, and a NumPy scalar the jaxpr holds as a literal,
- an array of each dtype the primitive accepts (float16, bfloat16, float32, float64,
  complex64, complex128), under ``jax.jit``.

The unary rules are enumerated from the registry (every rule made by ``defunary`` /
``defquotient``), so a new one is covered without an edit here; its operand is drawn from
(0.2, 0.8), valid for nearly every op (``DOMAIN`` lists the exceptions). The other
elementwise rules are in the tables below, and ``test_every_elementwise_rule_is_covered``
fails for a rule in none of them. A dtype the primitive itself rejects is skipped (JAX says
so); one it accepts must give JAX's cotangent: the dtype exactly, the weak type exactly (real
dtypes), the values within a few units in the last place of that dtype (``tolerance``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from funcnn import backprop
from funcnn.backprop.registry import VJP_RULES
from funcnn.backprop.rules.elementwise import NEXTAFTER_HAS_DERIVATIVE
from tests.backprop.rule_params import PRIMITIVES
from tests.backprop.sampling import primitive_names, rng_for, run_jitted
from tests.helpers import assert_trees_close

DTYPES = [np.float16, jnp.bfloat16, np.float32, np.float64, np.complex64, np.complex128]
ULPS = 16  # the rules and JAX's may round in a different order, or fuse differently


def tolerance(dtype) -> float:
    return ULPS * float(jnp.finfo(dtype).eps)


# --- the rules under test -------------------------------------------------------------------
def unary_names() -> list[str]:
    return sorted(n for n, r in VJP_RULES.items() if getattr(r, "family", None) == "unary")


DOMAIN = {"acosh": (1.2, 3.0)}  # (lo, hi) of the real operand where (0.2, 0.8) is not valid

# Elementwise rules written out by hand: name -> (f, number of operands, (lo, hi) per operand).
OTHER_UNARY = {
    "abs": (lax.abs, (0.2, 0.8)),
    "abs_negative": (lax.abs, (-0.8, -0.2)),
    "sign": (lax.sign, (0.2, 0.8)),
    "neg": (lax.neg, (0.2, 0.8)),
    "integer_pow_3": (lambda x: lax.integer_pow(x, 3), (0.2, 0.8)),
    "integer_pow_2": (lambda x: lax.integer_pow(x, 2), (0.2, 0.8)),
    "integer_pow_0": (lambda x: lax.integer_pow(x, 0), (0.2, 0.8)),
    "integer_pow_-2": (lambda x: lax.integer_pow(x, -2), (0.2, 0.8)),
    "reduce_precision": (lambda x: lax.reduce_precision(x, 5, 10), (0.2, 0.8)),
    "copy": (lambda x: lax.copy_p.bind(x), (0.2, 0.8)),
    "real": (lax.real, (0.2, 0.8)),
    "convert_element_type": (lambda x: lax.convert_element_type(x, other_dtype(x)) * x,
                             (0.2, 0.8)),
}
def other_dtype(x):
    """float32 for a float64 x, else float64 (complex: complex64/complex128)."""
    dtype = jnp.result_type(x)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return np.complex64 if dtype == np.complex128 else np.complex128
    return np.float32 if dtype == np.float64 else np.float64


def scalar(value, like):
    """A NumPy scalar of ``like``'s dtype: a literal of the jaxpr."""
    return jnp.result_type(like).type(value)


BINARY = {
    "add": (lax.add, (-1.0, 1.0), (-1.0, 1.0)),
    "sub": (lax.sub, (-1.0, 1.0), (-1.0, 1.0)),
    "mul": (lax.mul, (-1.0, 1.0), (-1.0, 1.0)),
    "div": (lax.div, (-1.0, 1.0), (0.5, 2.0)),
    "max": (lax.max, (-1.0, 0.0), (0.1, 1.0)),
    "min": (lax.min, (-1.0, 0.0), (0.1, 1.0)),
    "pow": (lax.pow, (0.5, 2.0), (-1.5, 1.5)),
    "atan2": (lax.atan2, (-1.0, 1.0), (0.3, 1.0)),
    "rem": (lax.rem, (2.1, 2.9), (0.7, 0.9)),
    **({"nextafter": (lax.nextafter, (-1.0, 1.0), (-1.0, 1.0))} if NEXTAFTER_HAS_DERIVATIVE
       else {}),  # JAX < 0.12 cannot differentiate it (test_rules.py)
}
OTHERS = {  # select_n and clamp take a predicate or bounds besides the operand
    "select_n": (lambda x, y: lax.select_n(x > 0.5, x, y), (0.2, 0.8), (0.2, 0.8)),
    "clamp": (lambda x, y: lax.clamp(scalar(0.3, x), x, y), (0.2, 0.8), (0.6, 0.9)),
}
# Rules not in the tables above, and why. (nograd rules give no cotangent whatever the input.)
ELSEWHERE = {
    "add_any": "only JAX's own autodiff emits it; the add rule serves it",
    "copy_p": "the copy primitive's name in older JAX; the copy rule serves it",
    "optimization_barrier": "several operands, no arithmetic; tests/backprop/test_rules.py",
    "polynomial": "several coefficient operands; test_polynomial_inputs below",
}
ELEMENTWISE_MODULE = "funcnn.backprop.rules.elementwise"


CASES = (
    [(n, (lambda name: lambda x: getattr(lax, name)(x))(n), (DOMAIN.get(n, (0.2, 0.8)),))
     for n in unary_names()]
    + [(n, f, (d,)) for n, (f, d) in OTHER_UNARY.items()]
    + [(n, f, (dx, dy)) for n, (f, dx, dy) in {**BINARY, **OTHERS}.items()]
)
IDS = [c[0] for c in CASES]


def test_every_elementwise_rule_is_covered():
    """Every rule of the elementwise module (and every ``defunary`` rule) is bound by some
    case above, read off the cases' jaxprs, or listed in ``ELSEWHERE``."""
    covered = set(ELSEWHERE)
    for _, f, domains in CASES:
        real = tuple(float(np.mean(d)) for d in domains)
        args = real if accepts(f, real) else tuple(complex(a) for a in real)  # lax.real
        covered |= primitive_names(f, *args)
    rules = {n for n, r in VJP_RULES.items()
             if (r.__module__ == ELEMENTWISE_MODULE or getattr(r, "family", None) == "unary")
             and getattr(r, "family", None) != "nograd"}
    missing = {n for n in rules if n not in covered and n in PRIMITIVES}
    assert not missing, f"elementwise rules no case here binds: {sorted(missing)}"


# --- drawing operands and comparing ---------------------------------------------------------
def operand(rng, domain, dtype, shape):
    """Values in ``domain`` (complex: real and imaginary parts, the imaginary part small)."""
    lo, hi = domain
    x = rng.uniform(lo, hi, shape)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        x = x + 0.25j * rng.uniform(-1.0, 1.0, shape)
    return np.asarray(x).astype(dtype)


def accepts(f, args) -> bool:
    """Whether the primitive takes operands of these dtypes (JAX's dtype check raises a
    TypeError naming the dtype)."""
    try:
        jax.eval_shape(f, *args)
    except TypeError as error:
        if "dtype" in str(error):
            return False
        raise
    return True


def cotangent(rng, out):
    c = rng.standard_normal(np.shape(out))
    if jnp.iscomplexobj(out):
        c = c + 1j * rng.standard_normal(np.shape(out))
    return jnp.asarray(c, jnp.result_type(out))


# JAX's cotangent of a weakly typed primal is weak, except where its rule builds the cotangent
# from a strongly typed constant (convert_element_type, select against zeros): incidental,
# and different between versions. The engine's is weak exactly where the primal is.
JAX_DROPS_WEAK_TYPE = {("pow", 0), ("clamp", 0), ("clamp", 1),  # JAX 0.10 and 0.12
                       ("max", 0), ("max", 1), ("min", 0), ("min", 1),  # JAX 0.12
                       ("erf", 0), ("erfc", 0)}  # JAX 0.12


def assert_same(got, want, dtype, what, weak=None):
    """``got`` has ``want``'s dtype, and values within ``tolerance(dtype)``. ``weak``: the
    weak type ``got`` must have (that of its primal), which is JAX's too unless ``weak`` is
    None."""
    got, want = jnp.asarray(got), jnp.asarray(want)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, JAX's {want.dtype}"
    expected_weak = want.weak_type if weak is None else weak
    assert got.weak_type == expected_weak, (
        f"{what}: weak_type {got.weak_type}, expected {expected_weak} (JAX's "
        f"{want.weak_type})")
    tol = tolerance(dtype)
    scale = float(np.max(np.abs(np.asarray(want, np.complex128)), initial=1.0))
    for part in (np.real, np.imag):
        assert_trees_close(part(np.asarray(got, np.complex128)),
                           part(np.asarray(want, np.complex128)), rtol=tol, atol=tol * scale,
                           what=f"{what} ({part.__name__}): ")


def engine_and_jax(f, args, ct):
    got = backprop.vjp(f, *args)[1](ct)
    want = jax.vjp(f, *args)[1](ct)
    return got, want


# --- Python scalars and 0-d arrays, eagerly ----------------------------------------------------
@pytest.mark.parametrize("name, f, domains", CASES, ids=IDS)
def test_python_scalars(name, f, domains):
    """Python floats, as ``backprop.grad(jnp.log)(0.5)`` passes them: the rule sees a Python
    float (or a weakly typed 0-d array) where an array is usual."""
    args = tuple(float(np.mean(d)) for d in domains)
    if not accepts(f, args):
        pytest.skip(f"JAX does not take {name} of a float")
    got = backprop.grad(f, argnums=tuple(range(len(args))))(*args)
    want = jax.grad(f, argnums=tuple(range(len(args))))(*args)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if (name, i) not in JAX_DROPS_WEAK_TYPE:
            assert w.weak_type, f"JAX's cotangent of {name} is strongly typed: list it above"
        assert_same(g, w, np.float64, f"{name} d/d(arg {i}) at {args}", weak=True)


ZERO_DIM = ([pytest.param(n, f, d, False, id=f"{n}-all_0d") for n, f, d in CASES]
            + [pytest.param(n, f, d, True, id=f"{n}-literal_and_0d") for n, f, d in CASES
               if len(d) > 1])


@pytest.mark.parametrize("name, f, domains, literal", ZERO_DIM)
def test_zero_dim_arrays(name, f, domains, literal):
    """0-d float32 arrays, the rules under jit; ``literal``: the first operand a NumPy scalar
    closed over, which the jaxpr holds as a literal (the rule sees the NumPy scalar)."""
    rng = rng_for(f"0d-{name}")
    args = [jnp.asarray(operand(rng, d, np.float32, ())) for d in domains]
    if not accepts(f, args):
        pytest.skip(f"JAX does not take {name} of a float")
    if literal:
        first = np.float32(args[0])
        f_args, args = (lambda *rest: f(first, *rest)), args[1:]
    else:
        f_args = f
    ct = cotangent(rng, jax.eval_shape(f_args, *args))
    got, want = run_jitted(lambda a, c: engine_and_jax(f_args, a, c), tuple(args), ct)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert_same(g, w, np.float32, f"{name} 0-d d/d(arg {i})", weak=False)


# --- arrays of every dtype, under jit ---------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("name, f, domains", CASES, ids=IDS)
def test_dtypes(name, f, domains, dtype):
    rng = rng_for(f"dtype-{name}-{jnp.dtype(dtype).name}")
    args = tuple(jnp.asarray(operand(rng, d, dtype, (3,))) for d in domains)
    if not accepts(f, args):
        pytest.skip(f"JAX does not take {name} of {jnp.dtype(dtype).name}")
    if name == "sign" and jnp.issubdtype(dtype, jnp.complexfloating) and not JAX_SIGN_COMPLEX:
        pytest.skip("JAX < 0.12 takes sign' = 0 for complex inputs; the engine gives the "
                    "derivative (test_complex_sign_against_finite_differences)")
    ct = cotangent(rng, jax.eval_shape(f, *args))
    try:
        got, want = run_jitted(lambda a, c: engine_and_jax(f, a, c), args, ct)
    except TypeError as error:  # JAX cannot differentiate it (complex clamp): nor the engine
        with pytest.raises(TypeError):
            jax.vjp(f, *args)[1](ct)
        if name in ENGINE_GOES_FURTHER:
            pytest.skip(ENGINE_GOES_FURTHER[name])
        with pytest.raises(TypeError):
            backprop.vjp(f, *args)[1](ct)
        pytest.skip(f"neither JAX nor the engine differentiates this: {error}"[:200])
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert_same(g, w, dtype, f"{name} {jnp.dtype(dtype).name} d/d(arg {i})", weak=False)


ENGINE_GOES_FURTHER = dict.fromkeys(
    ["max", "min"], "JAX 0.12's max/min rule compares with gt, which takes no complex operand; "
    "JAX 0.10's tie rule (and the engine's) compares with ==, and is checked there")
JAX_SIGN_COMPLEX = bool(jax.vjp(lax.sign, jnp.complex64(1 + 1j))[1](jnp.complex64(1))[0] != 0)


def test_complex_sign_against_finite_differences():
    """sign(z) = z / |z| off 0: <ct, J t> (pairing re(a b), JAX's) against central finite
    differences along 1 and i, in complex128."""
    z = jnp.asarray([0.6 - 0.3j, -1.2 + 0.8j, 0.0 + 0.0j])
    ct = jnp.asarray([0.3 + 1.1j, -0.7 + 0.2j, 1.0 - 1.0j])
    (ct_z,) = jax.jit(lambda z, ct: backprop.vjp(lax.sign, z)[1](ct))(z, ct)
    eps = 1e-6
    for t in (1.0, 1j):
        moved = (np.sign(z + eps * t) - np.sign(z - eps * t)) / (2 * eps)
        finite = np.real(ct * moved)[:2]  # sign has no derivative at 0
        assert_trees_close(np.real(ct_z * t)[:2], finite, rtol=1e-7, atol=1e-9)
    assert complex(ct_z[2]) == 0  # JAX's value at 0


# --- polynomial (JAX >= 0.12) ----------------------------------------------------------------
needs_polynomial = pytest.mark.skipif(not hasattr(lax, "polynomial_p"),
                                      reason="lax.polynomial is new in JAX 0.12")


@needs_polynomial
@pytest.mark.parametrize("dtype", DTYPES[:4], ids=lambda d: jnp.dtype(d).name)
def test_polynomial_inputs(dtype):
    """x, an array coefficient, a rank-0 array coefficient and Python-float literals."""
    rng = rng_for(f"polynomial-{jnp.dtype(dtype).name}")
    x, c = (jnp.asarray(operand(rng, (-1.0, 1.0), dtype, s)) for s in ((3,), (3,)))
    c0 = jnp.asarray(0.5, dtype)

    def f(x, c, c0):
        return lax.polynomial(x, [c0, 1.5, c, -0.25, 2.0])

    ct = cotangent(rng, f(x, c, c0))
    got, want = run_jitted(lambda a, ct: engine_and_jax(f, a, ct), (x, c, c0), ct)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert_same(g, w, dtype, f"polynomial {jnp.dtype(dtype).name} d/d(arg {i})")
    got = backprop.grad(lambda x: lax.polynomial(x, [1.0, -2.0, 3.0]))(0.5)
    assert_same(got, jax.grad(lambda x: lax.polynomial(x, [1.0, -2.0, 3.0]))(0.5),
                np.float64, "polynomial at a Python float")
