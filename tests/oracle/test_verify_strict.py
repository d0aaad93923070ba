"""verify does not pass careless results: unknown keys, globs that match nothing, a missing
results directory, probes or trajectories left out; ``max_rel`` is the tolerance rule's own
relative error. Each rule: its exit code and its message."""
import json

import numpy as np
import pytest

from oracle.cli import main
from oracle.comparison import compare_key
from oracle.npzio import read_npz

MLP, SGD, DENSE = "model.mlp.f64", "training.mlp_sgd.f64", "layer.dense.f64"


def golden_results(golden, results, name, drop=()):
    """Write the golden values of ``name`` as results, leaving out keys under ``drop``."""
    arrays = read_npz(golden / f"{name}.npz")
    keep = {k: v for k, v in arrays.items() if k.startswith(("outputs/", "grads/", "probes/",
                                                            "trajectory/"))
            and not k.startswith(tuple(drop))}
    results.mkdir(exist_ok=True)
    np.savez(results / f"{name}.npz", **keep)
    return keep


def run(golden, results, capsys, *extra):
    code = main(["verify", str(golden), str(results), *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_golden_values_pass(golden, tmp_path, capsys):
    for name in (MLP, SGD, DENSE):
        golden_results(golden, tmp_path, name)
    code, out = run(golden, tmp_path, capsys, "--cases", MLP, "--cases", SGD, "--cases", DENSE)
    assert code == 0, out
    assert "not checked" not in out


@pytest.mark.parametrize("typo, suggestion", [("grads/params/wieght", "grads/params/w"),
                                              ("outputs/Y", "outputs/y"),
                                              ("grads/inputs/xx", "grads/inputs/x")])
def test_typo_in_a_compared_key_is_an_error_with_did_you_mean(golden, tmp_path, capsys, typo,
                                                              suggestion):
    arrays = golden_results(golden, tmp_path, DENSE)
    arrays[typo] = arrays[suggestion]
    np.savez(tmp_path / f"{DENSE}.npz", **arrays)
    code, out = run(golden, tmp_path, capsys, "--cases", DENSE)
    assert code == 2
    assert f"{DENSE}.npz" in out and typo in out and f"did you mean {suggestion!r}" in out


def test_unknown_key_far_from_every_key_has_no_suggestion(golden, tmp_path, capsys):
    arrays = golden_results(golden, tmp_path, DENSE)
    arrays["probes/hidden/value"] = np.zeros(3)
    np.savez(tmp_path / f"{DENSE}.npz", **arrays)
    code, out = run(golden, tmp_path, capsys, "--cases", DENSE)
    assert code == 2 and "probes/hidden/value: not a key of this case" in out
    assert "did you mean" not in out


def test_keys_outside_the_compared_prefixes_are_allowed(golden, tmp_path, capsys):
    arrays = golden_results(golden, tmp_path, DENSE)
    golden_arrays = read_npz(golden / f"{DENSE}.npz")
    arrays["params/w"] = golden_arrays["params/w"]  # an echo of the inputs
    arrays["debug/anything"] = np.zeros(2)
    np.savez(tmp_path / f"{DENSE}.npz", **arrays)
    code, out = run(golden, tmp_path, capsys, "--cases", DENSE)
    assert code == 0, out


def test_every_cases_glob_must_match(golden, tmp_path, capsys):
    golden_results(golden, tmp_path, DENSE)
    code, out = run(golden, tmp_path, capsys, "--cases", DENSE, "--cases", "layer.dnese.*")
    assert code == 2
    assert "'layer.dnese.*' matches no case" in out and "manifest.json" in out


def test_missing_results_directory_is_exit_2(golden, tmp_path, capsys):
    code, out = run(golden, tmp_path / "nowhere", capsys, "--cases", DENSE)
    assert code == 2 and "nowhere" in out and "results directory does not exist" in out


def test_missing_golden_directory_is_exit_2(tmp_path, capsys):
    code, out = run(tmp_path / "nowhere", tmp_path, capsys)
    assert code == 2 and "manifest.json" in out


@pytest.mark.parametrize("name, group", [(MLP, "probes"), (SGD, "trajectory")])
def test_left_out_probes_or_trajectory_are_missing(golden, tmp_path, capsys, name, group):
    golden_results(golden, tmp_path, name, drop=(f"{group}/",))
    report = tmp_path / "r.json"
    code, out = run(golden, tmp_path, capsys, "--cases", name, "--json", str(report))
    assert code == 1
    assert f"{group}/" in out and "missing from the results" in out
    assert f"--skip {group} verifies without it" in out
    assert json.loads(report.read_text())["cases"][0]["status"] == "missing"


@pytest.mark.parametrize("name, group", [(MLP, "probes"), (SGD, "trajectory")])
def test_skip_says_what_was_not_checked(golden, tmp_path, capsys, name, group):
    golden_results(golden, tmp_path, name, drop=(f"{group}/",))
    report = tmp_path / "r.json"
    code, out = run(golden, tmp_path, capsys, "--cases", name, "--skip", group, "--json",
                    str(report))
    assert code == 0, out
    assert f"{group}/ of 1 cases not checked (--skip {group})" in out
    data = json.loads(report.read_text())
    assert data["skip"] == [group] and data["cases"][0]["not_checked"] == [group]
    assert {k["status"] for k in data["cases"][0]["keys"] if k["key"].startswith(group)} == \
        {"skipped"}


def test_skip_does_not_hide_a_wrong_gradient(golden, tmp_path, capsys):
    arrays = golden_results(golden, tmp_path, MLP, drop=("probes/",))
    arrays["grads/params/dense_1/w"] = arrays["grads/params/dense_1/w"].T
    np.savez(tmp_path / f"{MLP}.npz", **arrays)
    code, out = run(golden, tmp_path, capsys, "--cases", MLP, "--skip", "probes")
    assert code == 1 and "grads/params/dense_1/w: FAIL" in out
    assert "probes were not all checked" in out and "dense_1" in out


def test_bad_skip_value_is_a_usage_error(golden, tmp_path, capsys):
    code, _ = run(golden, tmp_path, capsys, "--skip", "grads")
    assert code == 2


def test_max_rel_uses_the_rules_denominator():
    golden = np.array([1.0, 0.0, -2.0])
    rtol, atol = 1e-6, 1e-8
    # entry 1 (golden 0) is off by 0.9 atol: it passes, and its relative error is 0.9 rtol
    result = golden + np.array([0.5e-6, 0.9e-8, 0.0])
    k = compare_key("grads/x", result, golden, rtol, atol)
    assert k.status == "pass"
    expected = np.max(np.abs(result - golden) / (np.abs(golden) + atol / rtol))
    assert k.max_rel == pytest.approx(expected) and k.max_rel <= rtol
    assert k.max_rel == pytest.approx(0.9e-8 / (atol / rtol))
    k = compare_key("grads/x", golden + np.array([0.0, 1.1e-8, 0.0]), golden, rtol, atol)
    assert k.status == "FAIL" and k.max_rel > rtol and k.worst == (1,)


def test_a_nan_fails():
    k = compare_key("outputs/y", np.array([1.0, np.nan]), np.array([1.0, 2.0]), 1e-6, 1e-9)
    assert k.status == "FAIL" and k.worst == (1,) and k.max_abs == np.inf
