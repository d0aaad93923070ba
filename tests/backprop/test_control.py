"""Nested graphs: jit/pjit, custom_jvp, custom_vjp, scan (reverse, consts, several carries,
xs=None, unroll, nested), fori_loop with static bounds, cond/switch, remat/checkpoint.

Each case runs eagerly (a cond's index is concrete: one branch's tape) and under jax.jit
(the index is a tracer: every branch's tape), against ``jax.vjp`` with a random cotangent and
central finite differences.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.custom_derivatives import SymbolicZero

from funcnn import backprop
from tests.backprop.sampling import check_vjp, primitive_names, rng_for
from tests.helpers import assert_trees_close

R = rng_for("test_control")
X = R.standard_normal((3, 4))
W = R.standard_normal((4, 4)) / 2
V = R.standard_normal(4)
XS = R.standard_normal((5, 4))


# --- jit / pjit ----------------------------------------------------------------------------------
@jax.jit
def jitted_layer(w, x):
    return jnp.tanh(x @ w)


def nested_jit(w, x):
    inner = jax.jit(lambda h: jnp.sin(h) * h)
    return jax.jit(lambda w, x: inner(jitted_layer(w, x)).sum() + inner(w).sum())(w, x)


def jit_static_args(w, x):
    f = jax.jit(lambda x, n: x ** n, static_argnums=1)
    return f(x @ w, 3).sum()


def jit_with_int_and_unused(w, x):
    f = jax.jit(lambda w, x, k, unused: (jnp.roll(x @ w, k, axis=0), w.sum()))
    a, b = f(w, x, 1, x)
    return (a * b).sum()


# --- custom_jvp / custom_vjp -----------------------------------------------------------------
@jax.custom_jvp
def scaled_sin(x):
    return jnp.sin(x)


@scaled_sin.defjvp
def _scaled_sin_jvp(primals, tangents):  # deliberately not the derivative: the rule must win
    (x,), (t,) = primals, tangents
    return jnp.sin(x), 2.0 * jnp.cos(x) * t


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def power_of(x, n):
    return x ** n


@power_of.defjvp
def _power_of_jvp(n, primals, tangents):
    (x,), (t,) = primals, tangents
    return x ** n, n * x ** (n - 1) * t


@jax.custom_jvp
def two_in_two_out(x, y):
    return x * y, jnp.sin(x) + y


@two_in_two_out.defjvp
def _two_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    return two_in_two_out(x, y), (tx * y + x * ty * 0.5, jnp.cos(x) * tx + 3.0 * ty)


@jax.custom_vjp
def clip_gradient(x):
    return x


def _clip_fwd(x):
    return x, None


def _clip_bwd(_, g):
    return (jnp.clip(g, -0.3, 0.3),)


clip_gradient.defvjp(_clip_fwd, _clip_bwd)


@jax.custom_vjp
def weighted(x, w, n):  # residuals: an input (forwarded by JAX) and a computed value
    return (jnp.sin(x) * w).sum() * n


def _weighted_fwd(x, w, n):
    return weighted(x, w, n), (jnp.cos(x), w, n)


def _weighted_bwd(res, g):
    cos_x, w, n = res
    return (g * cos_x * w * n * 1.5, None, None)  # no cotangent for w (None), n is int


weighted.defvjp(_weighted_fwd, _weighted_bwd)


@jax.custom_vjp
def pytree_io(p):
    return {"y": p["a"] * p["b"], "z": jnp.tanh(p["a"])}


def _pytree_fwd(p):
    return pytree_io(p), p


def _pytree_bwd(p, g):
    return ({"a": g["y"] * p["b"] + g["z"], "b": g["y"] * p["a"] * 2.0},)


pytree_io.defvjp(_pytree_fwd, _pytree_bwd)


@jax.custom_jvp
def symbolic(a, b):
    return a * b


def _symbolic_jvp(primals, tangents):  # sees SymbolicZero for an input with no tangent
    (a, b), (ta, tb) = primals, tangents
    dt = jnp.zeros_like(a * b)
    if type(ta) is not SymbolicZero:
        dt = dt + ta * b * 2.0
    if type(tb) is not SymbolicZero:
        dt = dt + a * tb
    return a * b, dt


symbolic.defjvp(_symbolic_jvp, symbolic_zeros=True)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def scaled_by(x, scale):
    return jnp.sin(x) * scale


scaled_by.defvjp(lambda x, s: (scaled_by(x, s), (jnp.cos(x), 2, jnp.int32(3))),
                 lambda s, res, g: (g * res[0] * s * res[1] * res[2],))  # int residuals


def custom_jvp_symbolic_zeros(w, x):
    return symbolic(x @ w, 3.0).sum() + symbolic(x, x @ w).sum()


def custom_vjp_nondiff_int_residuals(w, x):
    return scaled_by(x @ w, 0.5).sum()


def custom_jvp_rule_wins(w, x):
    return scaled_sin(x @ w).sum()


def custom_jvp_nondiff(w, x):
    return power_of(x @ w, 3).sum()


def custom_jvp_two_outputs(w, x):
    a, b = two_in_two_out(x @ w, x)
    return (a * 2.0 + b).sum()


def custom_jvp_one_output_used(w, x):
    return two_in_two_out(x @ w, x)[1].sum()


def custom_jvp_library(w, x):
    h = jax.nn.relu(x @ w) + jax.nn.gelu(x, approximate=False) + jax.nn.silu(x)
    return (jax.nn.softmax(h, axis=-1) * jnp.sinc(x)).sum() + jax.nn.logsumexp(h)


def custom_vjp_clip(w, x):
    return (clip_gradient(x @ w) ** 2).sum()


def custom_vjp_residuals(w, x):
    return weighted(x, w[:3], 2)


def custom_vjp_pytree(w, x):
    out = pytree_io({"a": x @ w, "b": x})
    return (out["y"] * out["z"]).sum()


def custom_vjp_inside_jit_and_scan(w, x):
    def step(c, xi):
        return clip_gradient(jnp.tanh(c @ w + xi)), (c ** 2).sum()

    c, ys = jax.jit(lambda x: lax.scan(step, x[0], x))(x)
    return c.sum() + ys.sum()


@jax.custom_jvp
def straight_through_round(x):  # forward rounds, backward passes the gradient straight through
    return jnp.round(x)


straight_through_round.defjvps(lambda t, ans, x: t)


@jax.custom_jvp
def safe_log1pexp(x):  # log(1 + e^x); the body's derivative is NaN at x = 1000 (inf / inf)
    return jnp.log1p(jnp.exp(x))


safe_log1pexp.defjvps(lambda t, ans, x: t * jax.nn.sigmoid(x))


COEFFS = np.linspace(0.5, 2.0, 12).reshape(3, 4)  # closed over by function and rule: a const


@jax.custom_jvp
def with_constants(x):
    return jnp.sin(x * COEFFS)


with_constants.defjvps(lambda t, ans, x: jnp.cos(x * COEFFS) * COEFFS * t)


@jax.custom_jvp
def outer_rule(x):  # a custom rule whose JVP calls another custom_jvp function (relu)
    return jnp.tanh(x)


outer_rule.defjvps(lambda t, ans, x: jax.nn.relu(x) * t + straight_through_round(x) * t)


@functools.partial(jax.custom_vjp, nondiff_argnums=())
def scale_both(a, b):
    return a * 2.0, b * 3.0


def _scale_both_fwd(a, b):
    return scale_both(a.value, b.value), (a.perturbed, b.perturbed)


def _scale_both_bwd(perturbed, g):  # sees SymbolicZero for an unused output
    ga, gb = g
    da = jnp.zeros_like(ga) if type(ga) is SymbolicZero else ga * 5.0
    db = jnp.zeros_like(gb) if type(gb) is SymbolicZero else gb * 7.0
    return da, db


scale_both.defvjp(_scale_both_fwd, _scale_both_bwd, symbolic_zeros=True)


@jax.custom_vjp
def sin_and_cos(x):
    return jnp.sin(x), jnp.cos(x)


sin_and_cos.defvjp(lambda x: (sin_and_cos(x), x),
                   lambda x, g: (g[0] * jnp.cos(x) * 2.0 - g[1] * jnp.sin(x),))


@jax.custom_vjp
def tanh_jitted_fwd(x):
    return jnp.tanh(x)


@jax.jit
def _tanh_fwd(x):  # residuals computed inside a jit
    y = jnp.tanh(x)
    return y, (1.0 - y * y,)


tanh_jitted_fwd.defvjp(_tanh_fwd, lambda res, g: (g * res[0],))


def custom_jvp_straight_through(w, x):
    return (straight_through_round(x @ w * 3.0) ** 2).sum()


def custom_jvp_safe_log1pexp(w, x):
    return safe_log1pexp(x @ w * 400.0).sum() + safe_log1pexp(x @ w).sum()


def custom_jvp_in_scan(w, xs):
    def step(h, x):
        h = jax.nn.softplus(h @ w + x) - jax.nn.relu(x)
        return h, jax.nn.gelu(h).sum()

    h, ys = lax.scan(step, xs[0], xs)
    return h.sum() + ys.sum()


def custom_jvp_in_cond(w, x):
    return lax.cond(x.sum() > 0, lambda a: jax.nn.softplus(a).sum(),
                    lambda a: scaled_sin(a).sum(), x @ w)


def custom_jvp_closed_over_constants(w, x):
    return with_constants(x @ w).sum() + jax.scipy.special.dawsn(x @ w).sum()


def custom_jvp_nested(w, x):
    return outer_rule(x @ w).sum()


def custom_vjp_symbolic_zeros(w, x):
    a, _ = scale_both(x @ w, x)
    return (a ** 2).sum()


def custom_vjp_unused_output(w, x):
    return sin_and_cos(x @ w)[0].sum()


def custom_vjp_jitted_fwd(w, x):
    return (tanh_jitted_fwd(x @ w) ** 2).sum()


def custom_vjp_in_cond(w, x):
    return lax.cond(x.sum() > 0, lambda a: (clip_gradient(a) ** 2).sum(),
                    lambda a: sin_and_cos(a)[1].sum(), x @ w)


# --- scan ------------------------------------------------------------------------------------
def rnn(w, xs):
    def step(h, x):
        h = jnp.tanh(h @ w + x)
        return h, h.sum()

    h, ys = lax.scan(step, jnp.zeros(4), xs)
    return (h ** 2).sum() + (ys * jnp.arange(5.0)).sum()


def scan_reverse(w, xs):
    def step(h, x):
        h = jnp.sin(h * x) + h @ w
        return h, h * 2.0

    h, ys = lax.scan(step, xs[0], xs, reverse=True)
    return (h * ys[0]).sum() + ys[-1].sum()


def scan_consts_and_carries(w, xs):
    b = jnp.cos(w.sum(axis=0))  # a closed-over value: a const of the scan, gets a cotangent

    def step(carry, x):
        h, c, n = carry  # three carries: two active, one integer
        h2 = jnp.tanh(h @ w + b * x)
        c2 = c * 0.9 + h2.sum()
        return (h2, c2, n + 1), (h2 * c, n)

    (h, c, n), (ys, ns) = lax.scan(step, (xs[0], 0.0, 0), xs)
    return h.sum() * c + (ys ** 2).sum() + n * 0.0 + ns.sum() * 0.0


def scan_xs_none(w, x):
    def step(h, _):
        return jnp.tanh(h @ w), (h ** 2).sum()

    h, ys = lax.scan(step, x[0], None, length=6)
    return h.sum() + ys.sum()


def scan_unrolled(w, xs):
    def step(h, x):
        return jnp.tanh(h @ w + x), h

    h, ys = lax.scan(step, xs[0], xs, unroll=2)
    return (h * ys.sum(axis=0)).sum()


def scan_carry_becomes_active(w, xs):
    """The initial carry is a constant; the body makes it depend on w (a fixed point)."""
    def step(c, x):
        return c * 0.5 + (x @ w).sum(), c

    c, cs = lax.scan(step, 1.0, xs)
    return c + cs.sum()


def scan_only_xs_active(w, xs):
    def step(c, x):
        return c + 1.0, jnp.sin(x) * c

    return lax.scan(step, 0.0, xs)[1].sum() + w.sum()


def nested_scans(w, xs):
    def inner(h, x):
        return jnp.tanh(h @ w + x), h.sum()

    def outer(h, x_row):
        h, s = lax.scan(inner, h, jnp.stack([x_row, x_row * 0.5, -x_row]))
        return h * 0.9, s

    h, ss = lax.scan(outer, xs[0], xs, reverse=True)
    return (h ** 2).sum() + (ss ** 2).sum()


def fori_loop_static(w, x):
    def body(i, h):
        return jnp.tanh(h @ w) + jnp.asarray(x)[i % 3] * i

    return lax.fori_loop(0, 5, body, x[0]).sum()


def fori_loop_tuple_carry(w, x):
    def body(i, carry):
        h, acc = carry
        h = jnp.sin(h @ w)
        return h, acc + h.sum() * i

    h, acc = lax.fori_loop(1, 4, body, (x[1], 0.0))
    return h.sum() + acc


# --- cond / switch -----------------------------------------------------------------------------
def cond_on_data(w, x):
    h = x @ w
    return lax.cond(h.sum() > 0, lambda a, b: (jnp.sin(a) * b).sum(),
                    lambda a, b: (a ** 2).sum() - b.sum(), h, x)


def cond_true(w, x):
    return lax.cond(True, lambda a: jnp.tanh(a @ w).sum(), lambda a: a.sum(), x)


def cond_false(w, x):
    return lax.cond(False, lambda a: jnp.tanh(a @ w).sum(), lambda a: (a * w[:1]).sum(), x)


def switch_three(w, x):
    branches = [lambda a: jnp.sin(a @ w).sum(), lambda a: (a * a).sum() * w.sum(),
                lambda a: jnp.exp(a / 4.0).sum()]
    return sum(lax.switch(i, branches, x) for i in (0, 1, 2, 7, -2))  # 7, -2 clamp


def switch_int_index_from_data(w, x):
    i = jnp.argmax(x.sum(axis=1))  # a traced integer index
    return lax.switch(i, [lambda a: a.sum(), lambda a: (a ** 3).sum(),
                          lambda a: (a @ w).max()], x)


def cond_inactive_operand(w, x):
    return lax.cond(w.sum() > 0, lambda a, n: (a * n).sum(), lambda a, n: a.sum() * 2.0,
                    x @ w, jnp.int32(3))


def cond_in_scan(w, xs):
    def step(h, x):
        h = lax.cond(x.sum() > 0, lambda h: jnp.tanh(h @ w), lambda h: h * x, h)
        return h, h.sum()

    h, ys = lax.scan(step, xs[0], xs)
    return h.sum() + ys.sum()


def cond_branch_ignores_input(w, x):
    return lax.cond(x.sum() > 100.0, lambda a: a.sum(), lambda a: jnp.float64(1.0), x @ w)


# --- remat / checkpoint ------------------------------------------------------------------------
def remat_layer(w, x):
    layer = jax.checkpoint(lambda w, x: jnp.sin(jnp.tanh(x @ w) @ w))
    return layer(w, layer(w, x)).sum()


def remat_policy(w, x):
    layer = jax.checkpoint(lambda w, x: jnp.tanh(jnp.tanh(x @ w) @ w),
                           policy=jax.checkpoint_policies.dots_saveable)
    return (layer(w, x) ** 2).sum()


def remat_in_scan(w, xs):
    step = jax.checkpoint(lambda h, x: (jnp.tanh(h @ w + x), h.sum()))
    h, ys = lax.scan(step, xs[0], xs)
    return h.sum() + ys.sum()


CASES = [  # (name, f, second argument, primitive that must be in the jaxpr, finite diffs?)
    # Custom rules decide the derivative, as in jax.vjp; finite differences agree only where the
    # rule is the body's true derivative (several rules here are deliberately not).
    ("jit", lambda w, x: jitted_layer(w, x).sum(), X, "jit", True),
    ("nested_jit", nested_jit, X, "jit", True),
    ("jit_static_args", jit_static_args, X, "jit", True),
    ("jit_int_and_unused_args", jit_with_int_and_unused, X, "jit", True),
    ("custom_jvp_rule_wins", custom_jvp_rule_wins, X, "custom_jvp_call", False),
    ("custom_jvp_nondiff_argnums", custom_jvp_nondiff, X, "custom_jvp_call", True),
    ("custom_jvp_two_outputs", custom_jvp_two_outputs, X, "custom_jvp_call", False),
    ("custom_jvp_one_output_used", custom_jvp_one_output_used, X, "custom_jvp_call", False),
    ("custom_jvp_jax_nn", custom_jvp_library, X, "custom_jvp_call", True),
    ("custom_jvp_symbolic_zeros", custom_jvp_symbolic_zeros, X, "custom_jvp_call", False),
    ("custom_jvp_straight_through", custom_jvp_straight_through, X, "custom_jvp_call", False),
    ("custom_jvp_safe_log1pexp", custom_jvp_safe_log1pexp, X, "custom_jvp_call", True),
    ("custom_jvp_in_scan", custom_jvp_in_scan, XS, "custom_jvp_call", True),
    ("custom_jvp_in_cond", custom_jvp_in_cond, X, "custom_jvp_call", False),
    ("custom_jvp_nested", custom_jvp_nested, X, "custom_jvp_call", False),
    ("custom_jvp_closed_over_constants", custom_jvp_closed_over_constants, X,
     "custom_jvp_call", True),
    ("custom_vjp_clip", custom_vjp_clip, X, "custom_vjp_call", False),
    ("custom_vjp_nondiff_int_residuals", custom_vjp_nondiff_int_residuals, X, "custom_vjp_call",
     False),
    ("custom_vjp_residuals", custom_vjp_residuals, X, "custom_vjp_call", False),
    ("custom_vjp_pytree", custom_vjp_pytree, X, "custom_vjp_call", False),
    ("custom_vjp_in_jit_scan", custom_vjp_inside_jit_and_scan, X, "custom_vjp_call", False),
    ("custom_vjp_symbolic_zeros", custom_vjp_symbolic_zeros, X, "custom_vjp_call", False),
    ("custom_vjp_unused_output", custom_vjp_unused_output, X, "custom_vjp_call", False),
    ("custom_vjp_jitted_fwd", custom_vjp_jitted_fwd, X, "custom_vjp_call", True),
    ("custom_vjp_in_cond", custom_vjp_in_cond, X, "custom_vjp_call", False),
    ("scan_rnn", rnn, XS, "scan", True),
    ("scan_reverse", scan_reverse, XS, "scan", True),
    ("scan_consts_multiple_carries", scan_consts_and_carries, XS, "scan", True),
    ("scan_xs_none", scan_xs_none, X, "scan", True),
    ("scan_unroll", scan_unrolled, XS, "scan", True),
    ("scan_carry_becomes_active", scan_carry_becomes_active, XS, "scan", True),
    ("scan_only_xs_active", scan_only_xs_active, XS, "scan", True),
    ("nested_scans", nested_scans, XS, "scan", True),
    ("fori_loop_static", fori_loop_static, X, "scan", True),
    ("fori_loop_tuple_carry", fori_loop_tuple_carry, X, "scan", True),
    ("cond_on_data", cond_on_data, X, "cond", True),
    ("cond_on_data_negative", cond_on_data, -X, "cond", True),
    ("cond_true", cond_true, X, "cond", True),
    ("cond_false", cond_false, X, "cond", True),
    ("switch_three_clamped", switch_three, X, "cond", True),
    ("switch_traced_index", switch_int_index_from_data, X, "cond", True),
    ("cond_inactive_operand", cond_inactive_operand, X, "cond", True),
    ("cond_in_scan", cond_in_scan, XS, "cond", True),
    ("cond_branch_ignores_input", cond_branch_ignores_input, X, "cond", True),
    ("remat", remat_layer, X, "checkpoint", True),
    ("remat_policy", remat_policy, X, "checkpoint", True),
    ("remat_in_scan", remat_in_scan, XS, "checkpoint", True),
]


def primitive_present(name, f, *args) -> bool:
    names = primitive_names(f, *args)
    aliases = {"checkpoint": {"checkpoint", "remat", "remat2"}}
    return bool(aliases.get(name, {name}) & names)


# Eagerly too where the engine takes another path there (a cond's concrete index runs one
# branch; calls and custom rules bind eagerly); a scan is a lax.scan either way.
EAGER = {"nested_jit", "custom_jvp_two_outputs", "custom_jvp_jax_nn", "custom_vjp_residuals",
         "custom_vjp_pytree", "custom_jvp_symbolic_zeros", "custom_vjp_symbolic_zeros",
         "custom_vjp_unused_output", "custom_jvp_in_cond", "custom_vjp_in_cond", "scan_rnn",
         "cond_on_data", "cond_on_data_negative", "cond_false",
         "switch_three_clamped", "cond_inactive_operand", "cond_branch_ignores_input", "remat"}
RUNS = [pytest.param(*c[1:], mode, id=f"{c[0]}-{mode}") for c in CASES
        for mode in (("jit", "eager") if c[0] in EAGER else ("jit",))]


@pytest.mark.parametrize("f, x, prim, fd, mode", RUNS)
def test_control(f, x, prim, fd, mode):
    assert primitive_present(prim, f, W, x), f"{prim} not in {primitive_names(f, W, x)}"
    check_vjp(f, (W, x), rng_for(f"{f.__name__}-{mode}"), rtol=1e-9, atol=1e-11, fd=fd,
              jit=mode == "jit")


def test_the_programs_custom_rule_decides_the_derivative():
    """The rule, not the body: 2 cos x for scaled_sin (whose rule says so), the clipped
    cotangent through clip_gradient, and jax.nn.relu's own rule at exactly 0 (0, where max's
    tie rule on the body would give 0.5)."""
    x = jnp.array([0.1, -0.7, 1.3])
    assert_trees_close(backprop.grad(lambda x: scaled_sin(x).sum())(x), 2.0 * jnp.cos(x))
    assert_trees_close(backprop.grad(lambda x: (clip_gradient(x) * 10.0).sum())(x),
                       jnp.full(3, 0.3))
    z = jnp.array([-1.0, 0.0, 2.0])
    assert_trees_close(backprop.grad(lambda x: jax.nn.relu(x).sum())(z),
                       jnp.array([0.0, 0.0, 1.0]))


def test_a_rule_written_for_numerical_safety_stays_finite():
    """log(1 + e^x) at x = 1000: the body's derivative is inf / inf = NaN, the rule's is
    sigmoid(1000) = 1; the engine follows the rule (and jax.grad)."""
    x = jnp.array([1000.0, -1000.0, 0.0])
    got = backprop.grad(lambda x: safe_log1pexp(x).sum())(x)
    assert_trees_close(got, jnp.array([1.0, 0.0, 0.5]))
    assert_trees_close(got, jax.grad(lambda x: safe_log1pexp(x).sum())(x))


def test_cond_eager_and_jit_agree_on_both_branches():
    f = backprop.grad(cond_on_data)
    for x in (X, -X):
        assert_trees_close(f(W, x), jax.jit(f)(W, x))
        assert_trees_close(f(W, x), jax.grad(cond_on_data)(W, x))


def test_scan_gradient_of_long_sequence_is_exact():
    """Backpropagation through 200 steps: the engine's reverse scan against jax.grad."""
    xs = np.random.default_rng(1).standard_normal((200, 4)) * 0.3
    g = jax.jit(backprop.grad(rnn_long, argnums=(0, 1)))(W, xs)
    assert_trees_close(g, jax.jit(jax.grad(rnn_long, argnums=(0, 1)))(W, xs), rtol=1e-9)


def rnn_long(w, xs):
    h, _ = lax.scan(lambda h, x: (jnp.tanh(h @ w + x), None), jnp.zeros(4), xs)
    return h.sum()


def scan_equations(jaxpr):
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "scan":
            yield eqn
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            yield from scan_equations(sub)


@pytest.mark.parametrize("f, x", [(c[1], c[2]) for c in CASES if c[3] == "scan"],
                         ids=[c[0] for c in CASES if c[3] == "scan"])
def test_scan_counts_read_off_the_types_match_the_declared_ones(f, x):
    """JAX 0.11's scan does not declare num_consts/num_carry; the engine reads them off the
    types there. Where JAX declares them (0.10), the two must agree."""
    from funcnn.backprop.rules.control import body_of, scan_counts_from_types

    eqns = list(scan_equations(jax.make_jaxpr(f)(W, x).jaxpr))
    assert eqns
    for eqn in eqns:
        if "num_consts" not in eqn.params:
            pytest.skip("this JAX declares no counts to compare with")
        declared = (eqn.params["num_consts"], eqn.params["num_carry"])
        assert scan_counts_from_types(eqn, body_of(eqn)[0]) == declared


# --- eager scans: compiled once per equation, correct for every call ------------------------
@jax.jit
def jitted_scan(w, xs):  # a library-style jitted function: JAX caches its jaxpr
    def step(h, x):
        h = jnp.tanh(w * h + x)
        return h, h * h
    h, ys = lax.scan(step, jnp.zeros_like(w), xs)
    return jnp.sum(h) + jnp.sum(ys)


def test_eager_scans_are_reused_and_right_for_each_call():
    from funcnn.backprop.rules import control

    w = jnp.array([0.5, -0.3])
    for length in (3, 5, 3):  # a new length is a new trace of the jitted function
        xs = jnp.linspace(-1.0, 1.0, 2 * length).reshape(length, 2)
        for argnums in (0, 1, (0, 1)):
            want = jax.grad(jitted_scan, argnums=argnums)(w, xs)
            before = len(control.EAGER_SCANS)
            assert_trees_close(backprop.grad(jitted_scan, argnums=argnums)(w, xs), want,
                               rtol=1e-14, atol=1e-15, what=f"length {length} {argnums}: ")
            again = len(control.EAGER_SCANS)
            assert_trees_close(backprop.grad(jitted_scan, argnums=argnums)(w, xs), want,
                               rtol=1e-14, atol=1e-15)
            assert len(control.EAGER_SCANS) == again >= before  # the second call: all hits
