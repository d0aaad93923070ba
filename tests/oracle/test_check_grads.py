"""check_grads: passes on correct functions in float64 and float32, reports kinks as "no
derivative here", and catches every planted wrong gradient (see ``mutants.py``)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oracle
from funcnn import activations
from funcnn.backprop import VJP_RULES
from tests.oracle.mutants import KINKED, MUTANTS

RNG = np.random.default_rng(0)

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


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_functions_pass(name, dtype):
    f, args, argnums = CORRECT[name]
    args = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype), args)
    report = oracle.check_grads(f, *args, argnums=argnums)
    report.assert_ok()
    assert report.no_derivative_count == 0
    assert all(len(leaf.pairs) == 3 for leaf in report.leaves)


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
    (mutant, twin), args, argnums = MUTANTS[name]
    conventions = dict(kinks=(0.0,), kink_grads={0.0: 0.0})
    oracle.check_grads(twin, *args, argnums=argnums, **conventions).assert_ok()
    report = oracle.check_grads(mutant, *args, argnums=argnums, **conventions)
    assert not report.ok
    failed = {p for leaf in report.leaves for p in leaf.failed_pairs}
    if name == "relu_derivative_1_at_0":
        assert failed == {"engine vs declared", "jax vs declared"}
    else:  # engine and jax both run the planted bwd; finite differences see the truth
        assert {"engine vs fd", "jax vs fd"} <= failed
    with pytest.raises(AssertionError, match="gradient check failed"):
        report.assert_ok()


def test_relu_derivative_at_0_is_judged_against_the_convention():
    (mutant, _), args, _ = MUTANTS["relu_derivative_1_at_0"]
    report = oracle.check_grads(mutant, *args, kinks=(0.0,), kink_grads={0.0: 0.0})
    x_leaf, kink_leaf = report.leaves
    assert x_leaf.ok and x_leaf.no_derivative == ["(0, 1)", "(1, 0)"]
    assert kink_leaf.path == "z at kinks" and not kink_leaf.ok
    assert "not the declared convention" in report.table()


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
