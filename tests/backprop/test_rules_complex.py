"""Complex numbers (rules/complex.py): complex, real, imag, conj, and the elementwise and
linear-algebra rules on complex inputs, holomorphic and not, under JAX's convention for the
cotangent of a complex input (what jax.vjp returns: the transpose under Re sum(a * b), i.e.
dL/dx - i dL/dy for a real loss). Against jax.vjp with complex cotangents and float64 finite
differences (``sampling.check_vjp_complex``)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from funcnn import backprop
from tests.backprop.matrix_specs import S, general, run_spec, slow, spec_name, unique_names
from tests.backprop.sampling import complex_normal, normal, run_jitted

pytestmark = pytest.mark.filterwarnings(  # see test_rules_decompositions.py
    "ignore:Casting complex values to real:numpy.exceptions.ComplexWarning")

Z = complex_normal((3, 4))
X = normal((3, 4))

PARTS = [
    S("complex", "complex", lambda x, y: lax.complex(x, y), X, X),
    S("complex_rank0_literal", "complex", lambda x: lax.complex(x, 2.0), X),
    slow(S("complex_rank0_operand", "complex", lambda x, y: lax.complex(x, y), X, normal(()))),
    S("real", "real", lambda z: lax.real(z), Z),
    S("imag", "imag", lambda z: lax.imag(z), Z),
    S("conj", "conj", lambda z: lax.conj(z), Z),
    S("conj_of_real", "conj", lambda x: lax.conj(x), X),
    S("real_imag_roundtrip", "complex", lambda z: lax.complex(lax.real(z), 2 * lax.imag(z)), Z),
    S("cast_real_to_complex", "convert_element_type",
      lambda x: x.astype(jnp.complex128) * (1 + 2j), X),
]

# Holomorphic: ct * f'(z). Not holomorphic: |z|, |z|^2, Re, Im, conj: a real loss of z.
ELEMENTWISE = [
    S("mul", "mul", lambda z, w: z * w, Z, Z),
    slow(S("mul_real_by_complex", "mul", lambda x, z: x * z, X, Z)),
    S("div", "div", lambda z, w: z / w, Z, Z),
    S("exp", "exp", jnp.exp, Z),
    S("log", "log", jnp.log, Z),
    S("pow", "pow", lambda z, w: z ** w, Z, Z),
    S("pow_real_exponent", "pow", lambda z: z ** 2.5, Z),
    S("integer_pow", "integer_pow", lambda z: z ** 3, Z),
    S("abs", "abs", jnp.abs, Z),
    S("abs_squared", "mul", lambda z: (z * jnp.conj(z)).real, Z),
    slow(S("sqrt", "sqrt", jnp.sqrt, Z)),
    slow(S("tanh", "tanh", jnp.tanh, Z)),
    slow(S("sin", "sin", jnp.sin, Z)),
    S("angle", "atan2", jnp.angle, Z),
    S("product_of_parts", "imag", lambda z: z.real * z.imag, Z),
    slow(S("reduce_prod", "reduce_prod", lambda z: jnp.prod(z, axis=1), Z)),
    slow(S("cumsum", "cumsum", lambda z: jnp.cumsum(z, axis=0), Z)),
    slow(S("where", "select_n", lambda z: jnp.where(z.real > 0, z, 2j * z), Z)),
]

LINEAR_ALGEBRA = [
    S("dot_general", "dot_general", lambda a, b: a @ b, Z, complex_normal((4, 2))),
    S("dot_general_real_complex", "dot_general", lambda a, b: a @ b, X, complex_normal((4, 2))),
    slow(S("einsum_conj", "dot_general", lambda a, b: jnp.einsum("ij,kj->ik", a, jnp.conj(b)), Z,
           complex_normal((5, 4)))),
    S("vdot", "dot_general", jnp.vdot, complex_normal((5,)), complex_normal((5,))),
    S("frobenius_norm", "sqrt", jnp.linalg.norm, general((3, 3), cplx=True)),
]

SPECS = PARTS + ELEMENTWISE + LINEAR_ALGEBRA


def test_spec_names_are_unique():
    assert unique_names(SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=[spec_name(s) for s in SPECS])
def test_rule(spec):
    run_spec(spec)


def test_the_convention_is_the_conjugate_gradient():
    """For L(z) = |z|^2 = x^2 + y^2, jax.grad gives dL/dx - i dL/dy = 2 conj(z); so does the
    engine (a closed form, not only agreement with JAX)."""
    z = jnp.array([1.0 + 2.0j, -0.5 + 0.25j])
    loss = lambda z: (z.real ** 2 + z.imag ** 2).sum()  # noqa: E731
    got, want = run_jitted(lambda z: (backprop.grad(loss)(z), jax.grad(loss)(z)), z)
    np.testing.assert_allclose(got, 2 * np.conj(np.asarray(z)))
    np.testing.assert_allclose(want, 2 * np.conj(np.asarray(z)))
