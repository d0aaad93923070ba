"""The research scripts in quick mode: each one's ``main(argv)`` runs in-process with
``--quick --out tmp_path``; the tests read the JSON it wrote and check the numbers (the
answers to the notes' questions), not only that it exited.
"""
import importlib
import json
import os
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

# The scripts draw with matplotlib and read scikit-learn's datasets: the `scripts` extra.
for _module in ("matplotlib", "sklearn"):
    pytest.importorskip(_module, reason=f"the research scripts need {_module}: "
                                        "pip install -e '.[scripts]'")

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
NAMES = ("activations", "linear_regression", "learning_rate", "sgd_batch_size",
         "backprop_by_hand", "layers_tour")

# The bands for the measured log-log slopes of time against size (see
# scripts/linear_regression.py: single-threaded child process, min CPU time over interleaved
# repeats, fit on the largest sizes). Measured on the loaded 2-core development machine, quick
# and full runs: closed form vs d 1.71-1.94 (predicted 2.2 with unit constants: the flop rate
# of LAPACK's kernels still grows with d at these sizes), vs n 0.76-1.06 (predicted 1.0); one
# GD update vs n 0.90-1.19, vs d 0.98-1.27 (predicted 1).
BANDS = {"closed_form_vs_d": (1.5, 3.5), "closed_form_vs_n": (0.5, 1.5),
         "gd_update_vs_n": (0.6, 1.4), "gd_update_vs_d": (0.6, 1.4)}


def _script(name):
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module(name)


def _run(name, tmp_path):
    """Run the script's main in quick mode; return (returned dict, JSON read back)."""
    returned = _script(name).main(["--quick", "--seed", "0", "--out", str(tmp_path)])
    written = json.loads((tmp_path / f"{name}.json").read_text())
    for figure in written["figures"]:
        png = tmp_path / figure
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
    return returned, written


@pytest.mark.parametrize("name", NAMES)
def test_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _script(name).main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--seed", "--out", "--quick"):
        assert option in text


def test_activations(tmp_path):
    _, out = _run("activations", tmp_path)
    acts = out["activations"]
    for name, a in acts.items():
        assert a["max_abs_err_vs_formula"] < 1e-6, name
        assert a["max_abs_err_vs_jax_grad"] < 1e-6, name
    assert acts["sigmoid"]["derivative_at_minus_1_0_plus_1"][1] == pytest.approx(0.25)
    assert acts["sigmoid"]["no_derivative_at"] == {}
    for name in ("relu", "step", "sign"):
        at0 = acts[name]["no_derivative_at"]["0.0"]  # marked: no derivative at z = 0
        assert at0["engine"] == 0.0 and at0["jax_grad"] == 0.0, name  # JAX's convention
    relu0 = acts["relu"]["no_derivative_at"]["0.0"]
    assert (relu0["left_limit"], relu0["right_limit"]) == (0.0, 1.0)
    assert "kink" in relu0["why"] and "jump" in acts["step"]["no_derivative_at"]["0.0"]["why"]
    assert acts["relu"]["derivative_at_minus_1_0_plus_1"] == [0.0, 0.0, 1.0]


def test_linear_regression(tmp_path):
    _, out = _run("linear_regression", tmp_path)
    for name, r in out["gd_vs_closed_form"].items():
        # GD reaches the closed form: weights within 1e-3 relative, loss within 1e-6
        assert r["relative_weight_error"] < 1e-3, (name, r["relative_weight_error"])
        assert abs(r["relative_loss_gap"]) < 1e-6, (name, r["relative_loss_gap"])
        assert r["learning_rate"] < 2 / r["lambda_max"]
    timing = out["timing"]
    assert set(timing) == set(BANDS)
    for t in timing.values():
        assert all(c > 0 for c in t["cpu_seconds"])
    assert 2.0 <= timing["closed_form_vs_d"]["predicted_slope"] <= 3.0
    assert timing["gd_update_vs_n"]["predicted_slope"] == pytest.approx(1.0)
    assert timing["gd_update_vs_d"]["predicted_slope"] == pytest.approx(1.0)


@pytest.mark.timing
def test_linear_regression_measured_slopes(tmp_path):
    """The fitted log-log slopes of CPU time against n and d fall in each operation's band.
    A wall-clock measurement: it needs a quiet machine (``pytest -m timing``), not CI's."""
    _, out = _run("linear_regression", tmp_path)
    for name, (lo, hi) in BANDS.items():
        t = out["timing"][name]
        assert lo <= t["slope"] <= hi, (
            f"{name}: fitted slope {t['slope']:.2f} outside [{lo}, {hi}] (predicted "
            f"{t['predicted_slope']:.2f}); CPU seconds {t['cpu_seconds']} at {t['sizes']}")


def test_learning_rate(tmp_path):
    _, out = _run("learning_rate", tmp_path)
    lin = out["linear_regression"]
    assert lin["threshold"] == pytest.approx(2 / lin["lambda_max"])
    below = above = 0
    for alpha, v in zip(lin["alphas"], lin["verdicts"], strict=True):
        if alpha < lin["threshold"]:
            below += 1
            assert not v["diverged"] and v["monotone"] and v["improved"], (alpha, v)
        else:
            above += 1
            assert v["diverged"], (alpha, v)
    assert below >= 3 and above >= 2
    assert lin["diverged_alphas"] and min(lin["diverged_alphas"]) > lin["threshold"]
    # small alpha improves but slowly: the smallest ends furthest from the optimum
    finals = [v["final_loss"] for a, v in zip(lin["alphas"], lin["verdicts"], strict=True)
              if a < lin["threshold"]]
    assert finals[0] == max(finals) and finals[0] > lin["loss_closed_form"] * (1 + 1e-3)

    mlp = out["mlp"]
    verdicts = dict(zip(mlp["alphas"], mlp["verdicts"], strict=True))
    smallest, largest = min(mlp["alphas"]), max(mlp["alphas"])
    assert verdicts[smallest]["improved"] and not verdicts[smallest]["overshot"]
    assert verdicts[largest]["diverged"]
    assert mlp["diverged_alphas"] and mlp["overshot_alphas"]
    assert min(mlp["overshot_alphas"]) > mlp["threshold_at_init"]
    assert smallest < mlp["best_alpha"] < largest


def test_sgd_batch_size(tmp_path):
    _, out = _run("sgd_batch_size", tmp_path)
    errors = out["errors"]
    sizes = [e["batch_size"] for e in errors]
    assert sizes == sorted(sizes) and sizes[0] == 1 and sizes[-1] == out["n"]
    rel = [e["rel_error_mean"] for e in errors]
    cos = [e["cosine_mean"] for e in errors]
    # the minibatch gradient's error falls (and its cosine rises) as the batch grows
    assert all(a > b for a, b in pairwise(rel)), rel
    assert all(a < b for a, b in pairwise(cos)), cos
    assert rel[-1] < 1e-5 and cos[-1] > 1 - 1e-9  # B = n is the full gradient
    for e in errors[:-1]:  # sampling theory: rms error sqrt(tr Sigma / B (n-B)/(n-1)) / |g|
        assert e["rel_error_rms"] == pytest.approx(e["rel_error_predicted_rms"], rel=0.3), e
    timed = [e for e in errors if e["seconds_per_update"] is not None]
    assert len(timed) >= 3 and all(e["seconds_per_update"] > 0 for e in timed)
    for bs, run in out["training"].items():
        assert run["loss"][-1] < run["loss"][0], bs
        assert all(b >= a for a, b in pairwise(run["seconds"])), bs
    full = out["training"][str(out["n"])]["loss"]
    assert all(b <= a + 1e-9 for a, b in pairwise(full))  # full batch: GD, monotone


def test_backprop_by_hand(tmp_path, monkeypatch):
    # a stand-in for Graphviz's `dot` (it writes a PNG signature), so that the PNG path runs
    # whether or not Graphviz is installed
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text(f"#!{sys.executable}\nimport sys\n"
                    "open(sys.argv[sys.argv.index('-o') + 1], 'wb').write("
                    "b'\\x89PNG\\r\\n\\x1a\\n' + open(sys.argv[2], 'rb').read())\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    _, out = _run("backprop_by_hand", tmp_path)
    assert out["dot_png"] in out["figures"]
    # the notes' dL/dw is flagged by the oracle, with the numbers; the corrected one passes
    notes = out["oracle_notes_formula"]
    assert notes["status"] == "FAIL" and notes["failing_keys"] == ["grads/params/w"]
    w_key = notes["keys"]["grads/params/w"]
    assert abs(w_key["result"] - w_key["golden"]) > 1e3 * w_key["tol"]
    assert notes["keys"]["grads/params/b"]["status"] == "pass"  # dL/db as written is right
    assert out["notes_dw_flagged"] and out["notes_db_correct"]
    assert out["oracle_corrected_formula"]["status"] == "pass"
    assert out["check_grads"]["ok"]
    golden = out["oracle_golden"]
    for who in ("corrected formula", "engine (funcnn.backprop)", "jax.grad"):
        assert out["answers"][who]["dL/dw"] == pytest.approx(golden["dL/dw"], rel=1e-12)
        assert out["answers"][who]["dL/db"] == pytest.approx(golden["dL/db"], rel=1e-12)
    fd = out["answers"]["finite differences (f64)"]
    assert fd["dL/dw"] == pytest.approx(golden["dL/dw"], rel=1e-8)
    assert fd["dL/db"] == pytest.approx(golden["dL/db"], rel=1e-8)
    assert out["answers"]["notes formula"]["dL/dw"] != pytest.approx(golden["dL/dw"], rel=1e-3)
    # the graph: w feeds two nodes (w x and w^2), its adjoint is dL/dw; L's adjoint is 1
    nodes = {n["node"]: n for n in out["graph"]}
    w = next(n for n in out["graph"] if n["op"] == "w")
    assert len(w["children"]) == 2
    assert w["adjoint"] == pytest.approx(golden["dL/dw"], rel=1e-12)
    assert nodes[out["graph_outputs"][0]]["adjoint"] == 1.0
    assert nodes[out["graph_outputs"][0]]["value"] == pytest.approx(out["loss"])
    assert any(n["primitive"] == "logistic" for n in out["graph"])
    assert (tmp_path / out["dot"]).read_text().startswith("digraph")


def test_layers_tour(tmp_path):
    _, out = _run("layers_tour", tmp_path)
    layers = out["layers"]
    assert set(layers) == {"dense", "convolutional", "recurrent", "residual", "attention"}
    assert out["all_ok"] and len(out["figures"]) == 5
    tol = 1e-10 if out["dtype"] == "float64" else 1e-5
    for name, r in layers.items():
        assert r["check"]["ok"], r["check"]["table"]
        assert r["check"]["engine_vs_jax_max_abs"] < tol, name
        assert r["check"]["engine_vs_fd_worst_err_over_tol"] <= 1.0, name
    assert layers["dense"]["max_abs_vs_numpy"] < tol
    assert layers["residual"]["max_abs_jacobian_minus_branch_minus_identity"] < tol
    assert layers["attention"]["weights_above_diagonal_max"] == 0.0  # the causal mask
    assert layers["attention"]["weights_row_sum_max_error"] < tol
    lo, hi = layers["recurrent"]["h_range"]
    assert -1 <= lo < hi <= 1  # tanh states
    assert np.prod(layers["convolutional"]["out_shape"]) == 1 * 8 * 8 * 2
