"""The engine as a whole, through its public API: graph structure (a node used twice, a node
used many times, a 10,000-node chain), dtypes, integer inputs, pytrees, argnums, has_aux, and
the errors (never a silent zero). References: ``jax.grad`` / ``jax.vjp``."""
from __future__ import annotations

import inspect
import os
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.extend import core as jcore
from jax.interpreters import mlir

from funcnn import backprop
from tests.backprop.sampling import assert_grads_close, rng_for, run_jitted
from tests.helpers import assert_trees_close

RNG = rng_for("test_engine")
X = jnp.asarray(RNG.standard_normal((3, 4)))
W = jnp.asarray(RNG.standard_normal((4, 2)))
V = jnp.asarray(RNG.standard_normal(4))


# --- graph structure: fan-out is where adjoints accumulate --------------------------------------
def twice(a):
    b = a + a  # the classic bug: the adjoint of a is 2, not 1
    return (b * a).sum()


def many_uses(a):
    s = jnp.sin(a)  # s feeds 6 children
    return (s * s + s / (2.0 + s) - jnp.exp(s) + s.sum() * s).sum() + jnp.tanh(s).prod()


def shared_subgraph(a, w):
    h = jnp.tanh(a @ w)
    return (h * h).sum() + (h @ h.T).sum() + h.max()


def output_is_input(a):
    return a.sum() + 0.0 * a.sum()


def unused_input(a, b):
    return (a * 2.0).sum()


def constant_output(a):
    return jnp.float64(3.0)


def closes_over_array(a):
    return (jnp.sin(a) * W.sum(axis=1)).sum()  # W is a constant of the jaxpr


GRAPHS = [
    ("a_plus_a", twice, (X,)),
    ("many_uses", many_uses, (X,)),
    ("shared_subgraph", shared_subgraph, (X, W)),
    ("output_is_input", output_is_input, (X,)),
    ("unused_input", unused_input, (X, W)),
    ("constant_output", constant_output, (X,)),
    ("closed_over_constant", closes_over_array, (V,)),
]


@pytest.mark.parametrize("f, args", [g[1:] for g in GRAPHS], ids=[g[0] for g in GRAPHS])
def test_grad_matches_jax(f, args):
    argnums = tuple(range(len(args)))
    got = backprop.grad(f, argnums=argnums)(*args)
    assert_grads_close(got, jax.grad(f, argnums=argnums)(*args))


def test_a_plus_a_is_two():
    assert_trees_close(backprop.grad(lambda a: a + a)(1.5), 2.0)
    assert_trees_close(backprop.grad(lambda a: a * a + a)(1.5), 4.0)


def test_identity_and_duplicated_outputs():
    """Outputs that are inputs themselves, or the same variable twice."""
    out, vjp_fn = backprop.vjp(lambda a: (a, a, 2.0 * a), V)
    cts = (V, 2 * V, jnp.ones(4))
    assert_trees_close(out, (V, V, 2 * V))
    assert_grads_close(vjp_fn(cts), jax.vjp(lambda a: (a, a, 2.0 * a), V)[1](cts))


def test_ten_thousand_node_chain():
    """No recursion over the graph: a 10,000-op chain runs (eagerly) without hitting Python's
    recursion limit, which is lowered here to make sure."""
    n = 10_000

    def chain(x):
        for _ in range(n):
            x = x * 1.0001
        return x

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000)
    try:
        out, vjp_fn = backprop.vjp(chain, 0.5)
        (g,) = vjp_fn(1.0)
    finally:
        sys.setrecursionlimit(limit)
    assert_trees_close(out, 0.5 * 1.0001 ** n, rtol=1e-9)
    assert_trees_close(g, 1.0001 ** n, rtol=1e-9)


# --- dtypes --------------------------------------------------------------------------------------
def mlp_loss(w, x):
    h = jnp.tanh(x @ w)
    return (h * h).mean() + jax.nn.sigmoid(h).sum() * 0.1


DTYPES = [  # (dtype, rtol against jax.grad): the engine and JAX round differently
    (jnp.float64, 1e-12),
    (jnp.float32, 1e-5),
    (jnp.float16, 2e-2),
    (jnp.bfloat16, 5e-2),
]


@pytest.mark.parametrize("dtype, rtol", DTYPES, ids=[jnp.dtype(d).name for d, _ in DTYPES])
def test_dtype_in_dtype_out(dtype, rtol):
    w, x = W.astype(dtype), X.astype(dtype)
    got, want = run_jitted(lambda w, x: (backprop.grad(mlp_loss)(w, x),
                                         jax.grad(mlp_loss)(w, x)), w, x)
    assert got.dtype == dtype
    assert_grads_close(got, want, rtol=rtol, atol=rtol)


def test_half_precision_eager():
    """Eagerly, the rules meet literals as NumPy scalars: still no promotion to float64."""
    w, x = W.astype(jnp.float16), X.astype(jnp.float16)
    got = backprop.grad(mlp_loss)(w, x)
    assert got.dtype == jnp.float16
    assert_grads_close(got, jax.grad(mlp_loss)(w, x), rtol=2e-2, atol=2e-2)


def test_mixed_precision_inputs_keep_their_dtypes():
    def f(a32, b64):
        return (a32.astype(jnp.float64) * b64).sum() + a32.sum()

    a, b = X.astype(jnp.float32), X
    got = backprop.grad(f, argnums=(0, 1))(a, b)
    assert_grads_close(got, jax.grad(f, argnums=(0, 1))(a, b), rtol=1e-6)


WEAK_TYPES = [  # f, args: Python scalars are weakly typed; their gradients are too (JAX's)
    (lambda x: 3.0 * x ** 2, (3.0,)),
    (lambda x, y: x * y, (2.0, jnp.float32(3.0))),
    (lambda x, y: y, (2.0, 1.0)),  # x unused: a zero cotangent, weak as well
    (lambda d: jnp.sum(d["a"] * d["b"]), ({"a": 1.0, "b": jnp.ones(2, jnp.bfloat16)},)),
]


@pytest.mark.parametrize("f, args", WEAK_TYPES)
def test_gradients_are_weakly_typed_where_the_primal_is(f, args):
    argnums = tuple(range(len(args)))
    got = backprop.grad(f, argnums=argnums)(*args)
    want = jax.grad(f, argnums=argnums)(*args)
    assert_grads_close(got, want)
    assert (jax.tree_util.tree_map(lambda g: (g.dtype, g.weak_type), got)
            == jax.tree_util.tree_map(lambda g: (g.dtype, g.weak_type), want))
    # what the weak type is for: an update of a bfloat16 weight stays bfloat16
    w = jnp.ones((), jnp.bfloat16)
    step = jax.tree_util.tree_leaves(got)[0]
    assert (w - step).dtype == (w - jax.tree_util.tree_leaves(want)[0]).dtype


# --- integer inputs ------------------------------------------------------------------------------
def with_labels(x, labels):
    logp = jax.nn.log_softmax(x, axis=-1)
    return -jnp.take_along_axis(logp, labels[:, None], axis=-1).sum() + (x * labels[:, None]).sum()


def test_grad_over_float_arg_beside_int_arg():
    labels = jnp.array([0, 3, 1])
    assert_grads_close(backprop.grad(with_labels)(X, labels), jax.grad(with_labels)(X, labels))


def test_vjp_gives_float0_for_integer_primals():
    labels = jnp.array([0, 3, 1])
    n = jnp.int32(2)

    def f(x, labels, n):
        return with_labels(x, labels) * n

    ct = jnp.float64(1.5)
    got = backprop.vjp(f, X, labels, n)[1](ct)
    want = jax.vjp(f, X, labels, n)[1](ct)
    assert got[1].dtype == jax.dtypes.float0 and got[2].dtype == jax.dtypes.float0
    assert_grads_close(got, want)


def test_integer_output_of_vjp():
    out, vjp_fn = backprop.vjp(lambda x: (x.sum(), jnp.argmax(x)), V)
    ct = (jnp.float64(1.0), np.zeros((), jax.dtypes.float0))
    assert_grads_close(vjp_fn(ct), jax.vjp(lambda x: (x.sum(), jnp.argmax(x)), V)[1](ct))


# --- pytrees -------------------------------------------------------------------------------------
class Params(NamedTuple):
    w: jnp.ndarray
    b: jnp.ndarray
    extra: object = None


def dict_loss(p, x):
    return ((x @ p["dense"]["w"] + p["dense"]["b"]) ** 2).sum() + p["scale"][0] * p["scale"][1]


def tuple_loss(p, x):
    (w, b), (c,) = p
    return jnp.tanh(x @ w + b).sum() * c


def list_loss(p, x):
    return sum(jnp.sin(x * q).sum() for q in p)


def namedtuple_loss(p, x):
    assert p.extra is None
    return jnp.tanh(x @ p.w + p.b).sum()


def none_leaf_loss(p, x):
    assert p["skip"] is None and p["nested"][1] is None
    return (x @ p["w"]).sum() * p["nested"][0]


TREES = [
    ("dict", dict_loss, {"dense": {"w": W, "b": jnp.ones((1, 2))},
                         "scale": [jnp.float64(2.0), jnp.float64(-1.0)]}),
    ("tuple", tuple_loss, ((W, jnp.ones((1, 2))), (jnp.float64(0.5),))),
    ("list", list_loss, [jnp.float64(0.3), jnp.ones((3, 4)), jnp.float64(-2.0)]),
    ("namedtuple", namedtuple_loss, Params(W, jnp.zeros((1, 2)))),
    ("none_leaves", none_leaf_loss, {"w": W, "skip": None, "nested": (jnp.float64(2.0), None)}),
]


@pytest.mark.parametrize("f, params", [t[1:] for t in TREES], ids=[t[0] for t in TREES])
def test_pytree_params(f, params):
    got = backprop.grad(f)(params, X)
    assert_grads_close(got, jax.grad(f)(params, X))


def test_pytree_outputs_and_cotangents():
    def f(p):
        return {"y": jnp.tanh(X @ p[0]), "z": (p[1] * 2.0, [p[0].sum()])}

    p = (W, V)
    out, vjp_fn = backprop.vjp(f, p)
    ref_out, ref_vjp = jax.vjp(f, p)
    ct = jax.tree_util.tree_map(lambda o: jnp.asarray(RNG.standard_normal(o.shape)), ref_out)
    assert_grads_close(out, ref_out)
    assert_grads_close(vjp_fn(ct), ref_vjp(ct))


# --- argnums, has_aux, value_and_grad --------------------------------------------------------
def three(a, b, c):
    return (jnp.sin(a) * b).sum() + (c ** 3).sum() * b.sum()


ARGNUMS = [0, 1, 2, -1, -3, (0, 2), (2, 0), (-1, 0, 1), (1,)]


@pytest.mark.parametrize("argnums", ARGNUMS, ids=[str(a) for a in ARGNUMS])
def test_argnums(argnums):
    args = (X, X + 1.0, V)
    assert_grads_close(backprop.grad(three, argnums=argnums)(*args),
                       jax.grad(three, argnums=argnums)(*args))


def test_kwargs_are_passed_through():
    def f(x, *, scale):
        return (x * scale).sum()

    assert_grads_close(backprop.grad(f)(V, scale=3.0), jax.grad(f)(V, scale=3.0))


def aux_loss(w, x):
    h = x @ w
    return (h ** 2).sum(), {"h": h, "n": jnp.int32(7)}


def test_grad_has_aux():
    g, aux = backprop.grad(aux_loss, has_aux=True)(W, X)
    g_ref, aux_ref = jax.grad(aux_loss, has_aux=True)(W, X)
    assert_grads_close((g, aux), (g_ref, aux_ref))


def test_value_and_grad_has_aux():
    got = backprop.value_and_grad(aux_loss, argnums=(0, 1), has_aux=True)(W, X)
    want = jax.value_and_grad(aux_loss, argnums=(0, 1), has_aux=True)(W, X)
    assert_grads_close(got, want)


def test_value_and_grad():
    got = backprop.value_and_grad(mlp_loss)(W, X)
    assert_grads_close(got, jax.value_and_grad(mlp_loss)(W, X))


def test_vjp_has_aux():
    def f(w):
        return jnp.tanh(X @ w), [w.sum(), "label"]

    out, vjp_fn, aux = backprop.vjp(f, W, has_aux=True)
    ref_out, ref_vjp, ref_aux = jax.vjp(lambda w: (f(w)[0], f(w)[1][0]), W, has_aux=True)
    ct = jnp.asarray(RNG.standard_normal(out.shape))
    assert aux[1] == "label"
    assert_grads_close((out, aux[0], vjp_fn(ct)), (ref_out, ref_aux, ref_vjp(ct)))


# --- errors: what was expected, what came -------------------------------------------------------
def test_non_scalar_output_is_a_type_error():
    with pytest.raises(TypeError, match="scalar"):
        backprop.grad(lambda x: x * 2.0)(V)
    with pytest.raises(TypeError):
        jax.grad(lambda x: x * 2.0)(V)


def test_integer_output_to_grad_is_a_type_error():
    with pytest.raises(TypeError):
        backprop.grad(lambda x: jnp.argmax(x))(V)


def test_integer_input_in_argnums_names_the_leaf():
    params = {"w": W, "steps": jnp.int32(3)}
    with pytest.raises(TypeError, match=r"\['steps'\].*int32"):
        backprop.grad(lambda p: (p["w"] * p["steps"]).sum())(params)
    with pytest.raises(TypeError):
        jax.grad(lambda p: (p["w"] * p["steps"]).sum())(params)


def test_argnums_out_of_range():
    with pytest.raises(ValueError, match="argnums"):
        backprop.grad(three, argnums=3)(X, X, V)


def test_has_aux_needs_a_pair():
    with pytest.raises(TypeError, match="pair"):
        backprop.grad(lambda x: x.sum(), has_aux=True)(V)


def test_vjp_fn_checks_the_cotangent():
    _, vjp_fn = backprop.vjp(lambda x: (x, x.sum()), V)
    with pytest.raises(TypeError, match="structure"):
        vjp_fn(V)
    with pytest.raises(ValueError, match="shape"):
        vjp_fn((jnp.ones(3), jnp.float64(1.0)))


def line_of(marker: str) -> int:
    """The line of this file holding ``marker`` (so the test does not hard-code numbers)."""
    lines = inspect.getsource(sys.modules[__name__]).splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line and "line_of" not in line)


def test_while_loop_on_an_active_carry_is_a_missing_rule():
    def f(x):
        carry = (0, x)
        return lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 2.0), carry)[1].sum(
        )  # WHILE-MARKER is on the line above

    with pytest.raises(backprop.MissingRuleError) as info:
        backprop.grad(f)(V)
    message = str(info.value)
    assert "'while'" in message
    assert f"{os.path.basename(__file__)}:{line_of('WHILE-MARKER') - 1}" in message, message
    assert "scan" in message  # says how to fix it


def test_while_loop_on_an_inactive_carry_is_fine():
    def f(x):
        n = lax.while_loop(lambda c: c < 10.0, lambda c: c * 2.0, 1.0)  # does not depend on x
        return (x * n).sum()

    assert_grads_close(backprop.grad(f)(V), jax.grad(f)(V))


fake_p = jcore.Primitive("funcnn_fake_op")
fake_p.def_impl(lambda x: x * 2.0)
fake_p.def_abstract_eval(lambda x: jax.core.ShapedArray(x.shape, x.dtype))
mlir.register_lowering(fake_p, mlir.lower_fun(lambda x: x * 2.0, multiple_results=False))


def test_primitive_without_rule_is_an_error_not_a_zero():
    def f(x):
        return fake_p.bind(jnp.sin(x)).sum()  # FAKE-MARKER

    with pytest.raises(backprop.MissingRuleError) as info:
        backprop.grad(f)(V)
    message = str(info.value)
    assert "'funcnn_fake_op'" in message
    assert f"{os.path.basename(__file__)}:{line_of('FAKE-MARKER')}" in message, message
    assert "defvjp" in message
    with pytest.raises(backprop.MissingRuleError):
        jax.jit(backprop.grad(f))(V)


def test_primitive_without_rule_on_an_inactive_value_is_fine():
    def f(x):
        return (x * fake_p.bind(jnp.ones(4))).sum()  # constant: no derivative needed

    assert_grads_close(backprop.grad(f)(V), 2.0 * jnp.ones(4))
