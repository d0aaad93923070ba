"""check_grads: passes on correct functions in float64 and float32 (with and without a
hand-written ``vjp=``), reports kinks as "no derivative here", and catches every planted wrong
gradient (see ``mutants.py``)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oracle
from funcnn import activations
from funcnn.backprop import VJP_RULES
from tests.oracle.mutants import KINKED, MUTANTS, PLANTED_CUSTOM_VJP

RNG = np.random.default_rng(0)
YOURS = {"yours vs engine", "yours vs jax", "yours vs fd"}


def tanh_dense_vjp(w, x, g):  # a hand-written backward, in NumPy, of tanh(x @ w)
    d = g * (1 - np.tanh(x @ w) ** 2)
    return x.T @ d, d @ w.T


def dict_params_vjp(p, x, g):  # pytrees: one cotangent per argnum, with its structure
    c = g * np.cos(x * p["a"])
    return {"a": c * x, "b": 2 * g * p["b"]}, c * p["a"]

CORRECT = {
    "tanh_dense": (lambda w, x: jnp.tanh(x @ w), (RNG.standard_normal((3, 2)),
                                                  RNG.standard_normal((4, 3))), (0, 1)),
    "softmax_xent": (lambda z: -jnp.sum(activations.log_softmax(z)[:, 0]),
                     (RNG.standard_normal((3, 4)),), 0),
    "dict_params": (lambda p, x: jnp.sum(jnp.sin(x * p["a"]) + p["b"] ** 2),
                    ({"a": RNG.standard_normal(3), "b": RNG.standard_normal(3)},
                     RNG.standard_normal(3)), (0, 1)),
    # 120 entries > max_coords: random directions, compared as <u, J^T v> = <J u, v>
    "large_leaf": (lambda x: jnp.sum(jnp.tanh(x) ** 2), (RNG.standard_normal((10, 12)),), 0),
}
VJPS = {"tanh_dense": tanh_dense_vjp, "dict_params": dict_params_vjp,
        "large_leaf": lambda x, g: g * 2 * np.tanh(x) * (1 - np.tanh(x) ** 2)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_functions_pass(name, dtype):
    f, args, argnums = CORRECT[name]
    args = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype), args)
    report = oracle.check_grads(f, *args, argnums=argnums, vjp=VJPS.get(name))
    report.assert_ok()
    assert report.no_derivative_count == 0
    pairs = ["engine vs jax", "engine vs fd", "jax vs fd"]
    pairs += ["yours vs engine", "yours vs jax", "yours vs fd"] if name in VJPS else []
    assert all([p.pair for p in leaf.pairs] == pairs for leaf in report.leaves)


def test_large_leaf_uses_seeded_directions():
    f, args, _ = CORRECT["large_leaf"]
    a = oracle.check_grads(f, *args, seed=3)
    b = oracle.check_grads(f, *args, seed=3)
    leaf = a.leaves[0]
    assert leaf.mode == "8 directions"
    assert [p.worst for p in leaf.pairs] == [p.worst for p in b.leaves[0].pairs]
    assert a.to_dict()["leaves"][0]["pairs"] == b.to_dict()["leaves"][0]["pairs"]


def test_paths_use_argument_names_and_dict_keys():
    f, args, argnums = CORRECT["dict_params"]
    report = oracle.check_grads(f, *args, argnums=argnums)
    assert [leaf.path for leaf in report.leaves] == ["p/a", "p/b", "x"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fn", [activations.relu, activations.step, activations.sign, jnp.abs,
                                activations.leaky_relu])
def test_kinks_are_no_derivative_here_not_failures(fn, dtype):
    report = oracle.check_grads(fn, KINKED.astype(dtype))
    report.assert_ok()
    assert report.leaves[0].no_derivative == ["(0, 1)", "(1, 0)"]
    assert "no derivative here at (0, 1), (1, 0)" in report.table()


def test_max_tie_is_no_derivative_here():
    report = oracle.check_grads(lambda x: jnp.max(x), np.array([1.0, 1.0, 0.0]))
    report.assert_ok()
    assert report.leaves[0].no_derivative == ["(0,)", "(1,)"]


def test_known_kinks_flag_coordinates_within_a_step():
    x = np.array([1e-4, 0.5, -0.7])  # 1e-4 is within a step of the kink at 0
    report = oracle.check_grads(lambda z: jnp.sum(jnp.abs(z) * 0 + z ** 2), x, kinks=(0.0,))
    assert report.leaves[0].no_derivative == ["(0,)"]


def test_integer_leaves_are_not_differentiated():
    f = lambda logits, labels: jnp.sum(jnp.take_along_axis(logits, labels[:, None], 1))
    report = oracle.check_grads(f, RNG.standard_normal((2, 3)), np.array([0, 2]),
                                argnums=(0, 1))
    assert [leaf.path for leaf in report.leaves] == ["logits"]
    report.assert_ok()


def test_works_with_x64_off():
    with jax.enable_x64(False):
        report = oracle.check_grads(lambda x: jnp.sum(jnp.exp(x)),
                                    np.linspace(-1, 1, 5).astype(np.float32))
        report.assert_ok()
        report = oracle.check_grads(lambda x: jnp.sum(jnp.exp(x)), np.linspace(-1, 1, 5))
        report.assert_ok()
        assert report.dtype == "float64"


def test_engine_failure_is_reported_not_raised():
    def f(x):  # while_loop: no reverse-mode derivative in the engine (nor in jax)
        return jax.lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 2.0),
                                  (0, x))[1]
    report = oracle.check_grads(f, np.array(1.5))
    assert not report.ok
    assert any(e.startswith("engine:") for e in report.errors)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_every_planted_bug_is_caught(name):
    f, (mutant, twin), args, argnums = MUTANTS[name]
    conventions = dict(kinks=(0.0,), kink_grads={0.0: 0.0})
    twin_report = oracle.check_grads(f, *args, argnums=argnums, vjp=twin, **conventions)
    twin_report.assert_ok()
    assert {p.pair for leaf in twin_report.leaves for p in leaf.pairs} >= YOURS
    report = oracle.check_grads(f, *args, argnums=argnums, vjp=mutant, **conventions)
    assert not report.ok and not report.errors
    failed = {p for leaf in report.leaves for p in leaf.failed_pairs}
    if name == "relu_derivative_1_at_0":  # no derivative at 0: only the convention judges
        assert failed == {"yours vs declared"}
    else:  # engine, jax and finite differences all see the true derivative of f
        assert failed == YOURS
    with pytest.raises(AssertionError, match="gradient check failed"):
        report.assert_ok()


def test_relu_derivative_at_0_is_judged_against_the_convention():
    f, (mutant, _), args, _ = MUTANTS["relu_derivative_1_at_0"]
    report = oracle.check_grads(f, *args, vjp=mutant, kinks=(0.0,), kink_grads={0.0: 0.0})
    x_leaf, kink_leaf = report.leaves
    assert x_leaf.ok and x_leaf.no_derivative == ["(0, 1)", "(1, 0)"]
    assert kink_leaf.path == "z at kinks" and not kink_leaf.ok
    assert kink_leaf.failed_pairs == ["yours vs declared"]
    (pair,) = [p for p in kink_leaf.pairs if not p.ok]
    assert pair.worst == "(0, 1)" and pair.b_at_worst == 0.0 and pair.a_at_worst != 0.0
    assert "not the declared convention" in report.table()
    # without a declared convention, nothing judges the value at 0
    assert oracle.check_grads(f, *args, vjp=mutant, kinks=(0.0,)).ok


def test_failing_pair_names_the_worst_entry():
    f, (mutant, _), args, argnums = MUTANTS["transposed_weight_gradient"]
    g = RNG.standard_normal((3, 4))
    report = oracle.check_grads(f, *args, argnums=argnums, vjp=mutant, cotangent=g)
    w_leaf = report.leaves[0]
    assert w_leaf.path == "w" and w_leaf.failed_pairs == sorted(YOURS, key=[
        "yours vs engine", "yours vs jax", "yours vs fd"].index)
    assert [leaf.ok for leaf in report.leaves[1:]] == [True, True]  # b and x are right
    pair = w_leaf.pairs[3]
    dw = args[2].T @ g
    i, j = (int(v) for v in pair.worst.strip("()").split(","))
    assert pair.a_at_worst == pytest.approx(dw[j, i]) and pair.b_at_worst == pytest.approx(
        dw[i, j])
    table = report.table()
    assert "yours vs engine" in table and pair.worst in table and "FAIL" in table
    assert "w: your vjp disagrees with engine, jax, fd, which agree" in table


def test_a_custom_vjp_with_a_planted_bwd_is_caught_by_finite_differences():
    # the engine and jax.vjp both run the program's (planted) bwd, as the program declares;
    # finite differences of the primal function disagree with both
    f, args = PLANTED_CUSTOM_VJP
    report = oracle.check_grads(f, *args)
    assert set(report.leaves[0].failed_pairs) == {"engine vs fd", "jax vs fd"}
    assert [p.ok for p in report.leaves[0].pairs if p.pair == "engine vs jax"] == [True]


def test_your_vjp_int_argnums_and_pytrees():
    f = lambda p, x, labels: jnp.sum(jnp.sin(x * p["a"]) + p["b"] ** 2) + 0 * labels.sum()
    p, x, labels = {"a": RNG.standard_normal(3), "b": RNG.standard_normal(3)}, \
        RNG.standard_normal(3), np.array([1, 2])
    one = oracle.check_grads(f, p, x, labels, argnums=1,
                             vjp=lambda p, x, labels, g: g * np.cos(x * p["a"]) * p["a"])
    assert [leaf.path for leaf in one.leaves] == ["x"] and one.ok
    both = oracle.check_grads(  # None at an integer leaf
        f, p, x, labels, argnums=(2, 0),
        vjp=lambda p, x, labels, g: (None, dict_params_vjp(p, x, g)[0]))
    assert [leaf.path for leaf in both.leaves] == ["p/a", "p/b"] and both.ok, both


def test_your_vjp_at_a_point_with_no_derivative_is_yours_to_choose():
    x = np.array([1.0, 1.0, 0.0])  # a max tie: the engine splits, numpy's argmax takes the first
    report = oracle.check_grads(lambda x: jnp.max(x), x,
                                vjp=lambda x, g: g * (np.arange(3) == np.argmax(x)))
    report.assert_ok()
    assert report.leaves[0].no_derivative == ["(0,)", "(1,)"]
    assert [p.compared for p in report.leaves[0].pairs if p.pair.startswith("yours")] == [1] * 3


def test_your_vjp_without_the_engine():
    f, args, argnums = CORRECT["tanh_dense"]
    report = oracle.check_grads(f, *args, argnums=argnums, vjp=tanh_dense_vjp, engine=False)
    report.assert_ok()
    assert [p.pair for p in report.leaves[0].pairs] == ["jax vs fd", "yours vs jax",
                                                       "yours vs fd"]


@pytest.mark.parametrize("name, vjp, message", [
    ("tanh_dense", lambda w, x, g: 1 / 0, "yours: vjp raised ZeroDivisionError"),
    ("tanh_dense", lambda w, x, g: x.T @ g, "expected a tuple of 2 cotangents"),
    ("tanh_dense", lambda w, x, g: (g.T @ x, g @ w.T),
     "yours: w: cotangent of shape (2, 3), the argument has shape (3, 2)"),
    ("dict_params", lambda p, x, g: ({"a": x}, x),
     "the cotangent of argument 0 does not have its structure"),
])
def test_a_broken_vjp_is_reported_not_raised(name, vjp, message):
    f, args, argnums = CORRECT[name]
    report = oracle.check_grads(f, *args, argnums=argnums, vjp=vjp)
    assert not report.ok
    assert any(message in e for e in report.errors), report.errors
    assert message in report.table()


def test_relu_written_with_the_wrong_branch_is_caught_by_the_convention():
    wrong = lambda z: jnp.where(z >= 0, z, 0)  # relu'(0) = 1 by definition
    assert oracle.check_grads(wrong, KINKED).ok  # no convention given: nothing to judge by
    assert not oracle.check_grads(wrong, KINKED, kink_grads={0.0: 0.0}).ok


def test_a_wrong_rule_inside_the_engine_is_caught(monkeypatch):
    def wrong_logistic(ct, x, *, out, **params):  # sigmoid' written as s (1 + s)
        return (ct * out * (1 + out),)

    monkeypatch.setitem(VJP_RULES, "logistic", wrong_logistic)
    report = oracle.check_grads(lambda z: jax.lax.logistic(z) * 1.0,
                                RNG.standard_normal((3, 4)))
    failed = set(report.leaves[0].failed_pairs)
    assert failed == {"engine vs jax", "engine vs fd"}


def _numpy_forward(x):
    return np.tanh(np.asarray(x)).sum()  # np.asarray on a tracer: not a JAX function


def test_a_numpy_function_gets_told_what_to_do():
    with pytest.raises(TypeError, match="vjp=") as err:
        oracle.check_grads(_numpy_forward, np.ones(3))
    message = str(err.value)
    assert "_numpy_forward" in message and "pure_callback" in message
    assert "TracerArrayConversionError" in message  # what JAX said, kept for reference


def test_a_torch_function_gets_told_what_to_do():
    torch = pytest.importorskip("torch", reason="torch is not installed")

    def torch_forward(x):
        return torch.tanh(torch.as_tensor(x)).sum()

    with pytest.raises(TypeError, match="pass its backward pass as vjp=") as err:
        oracle.check_grads(torch_forward, np.ones(3))
    assert "pure_callback" in str(err.value)


def test_a_jax_function_with_a_bug_still_raises_its_own_error():
    with pytest.raises(ValueError, match="boom"):
        oracle.check_grads(lambda x: (_ for _ in ()).throw(ValueError("boom")), np.ones(3))
