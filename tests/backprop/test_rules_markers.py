"""Primitives that mark what they compute (rules/markers.py: checkpoint_name, lax.composite),
the no-derivative ops of rules/integer.py (bitcast_convert_type, mulhi), and side effects with
no outputs (jax.debug.print / callback: the backward pass never reaches them). Against jax.vjp
and float64 finite differences."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.ad_checkpoint import checkpoint_name

from tests.backprop.matrix_specs import S, run_spec, spec_name, unique_names
from tests.backprop.sampling import normal

N = normal((3, 4))


def named_then_remat(x):
    """checkpoint_name under a remat policy that keeps only the named value."""
    def body(x):
        return jnp.sin(checkpoint_name(jnp.cos(x) * x, "kept")) ** 2

    policy = jax.checkpoint_policies.save_only_these_names("kept")
    return jax.checkpoint(body, policy=policy)(x)


def composite_gelu(x):
    return lax.composite(lambda x: 0.5 * x * (1 + jnp.tanh(0.8 * x)), "my.gelu")(x)


def bitcast_roundtrip(x):
    """x * (a float rebuilt from its own bits): bits carry no derivative, as in JAX."""
    bits = lax.bitcast_convert_type(x, jnp.int64)
    return x * lax.bitcast_convert_type(bits, jnp.float64)


def debug_printed(x):
    jax.debug.print("x = {}", x[0, 0], ordered=False)
    jax.debug.callback(lambda v: None, x)
    return jnp.tanh(x) * x


SPECS = [
    S("checkpoint_name", "name", lambda x: checkpoint_name(x * x, "h") ** 3, N),
    S("checkpoint_name_remat_policy", "name", named_then_remat, N),
    # JAX refuses to differentiate a composite ("JVP rule for composite not implemented");
    # the engine differentiates its body, checked by finite differences
    S("composite", "composite", composite_gelu, N, against_jax=False),
    S("composite_two_operands", "composite",
      lambda x, y: lax.composite(lambda a, b: a * jnp.exp(b), "my.op")(x, y), N, N,
      against_jax=False),
    S("bitcast_convert_type", "bitcast_convert_type", bitcast_roundtrip, N, fd=False),
    S("debug_print", "debug_callback", debug_printed, N),
]


def test_spec_names_are_unique():
    assert unique_names(SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=[spec_name(s) for s in SPECS])
def test_rule(spec):
    run_spec(spec)


def test_mulhi_has_no_derivative():
    from funcnn import backprop
    from funcnn.backprop.registry import VJP_RULES

    assert VJP_RULES["mulhi"](None, np.uint32(3), np.uint32(5), out=None) == (None, None)
    x = jnp.arange(3.0)
    got = backprop.grad(lambda x: (x * lax.mul(jnp.uint32(7), jnp.uint32(3))).sum())(x)
    np.testing.assert_array_equal(got, [21.0, 21.0, 21.0])
