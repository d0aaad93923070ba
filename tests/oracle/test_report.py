"""Report: a table, JSON, and assert_ok raising with the table."""
import json

import jax.numpy as jnp
import numpy as np
import pytest

import oracle


def test_table_json_and_assert_ok():
    report = oracle.check_grads(lambda w, x: jnp.sum(jnp.tanh(x @ w)), np.ones((2, 2)) * 0.3,
                                np.array([[1.0, -2.0]]), argnums=(0, 1))
    table = report.table()
    assert table.splitlines()[0].endswith(": ok")
    for word in ("leaf", "max_abs", "max_rel", "worst", "tol", "engine vs jax", "engine vs fd",
                 "jax vs fd", "w", "x"):
        assert word in table
    data = json.loads(report.to_json())
    assert data["ok"] and [leaf["path"] for leaf in data["leaves"]] == ["w", "x"]
    pair = data["leaves"][0]["pairs"][1]
    assert set(pair) >= {"pair", "max_abs", "max_rel", "worst", "tol_at_worst", "ok"}
    assert report.assert_ok() is report


def test_failing_report_names_leaf_index_and_pair():
    wrong = oracle.check_grads(lambda x: jnp.sum(x ** 2), np.array([1.0, 2.0, 3.0]),
                               engine=False)
    assert wrong.ok
    leaf = wrong.leaves[0]
    assert [p.pair for p in leaf.pairs] == ["jax vs fd"]


def test_errors_make_the_report_fail_and_json_stays_valid():
    report = oracle.check_grads(lambda x: x, np.array([1, 2]))  # nothing to differentiate
    assert not report.ok and report.errors
    json.loads(report.to_json())
    with pytest.raises(AssertionError, match="no float leaves"):
        report.assert_ok()
