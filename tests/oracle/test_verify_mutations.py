"""Every planted bug in an implementation outside funcnn is caught by ``verify``, and for
model cases the report names the layer whose backward pass is wrong.

The bugs are planted into the NumPy reference (scripts/verify_numpy_reference.py) by
replacing one of its functions, and into the NumPy conv / RNN of ``numpy_layers.py`` by its
switch; the correct versions verify clean (``test_numpy_reference.py``, and the twins here).
"""
import json
from pathlib import Path

import numpy as np
import pytest

from oracle.cli import main
from tests.oracle import numpy_layers
from tests.oracle.conftest import load_script


def verify(golden, results, *patterns, json_path=None):
    args = ["verify", str(golden), str(results)]
    for p in patterns:
        args += ["--cases", p]
    if json_path:
        args += ["--json", str(json_path)]
    return main(args)


def failing(capsys):
    return capsys.readouterr().out


def transposed_weight_gradient(ref):
    right = ref.dense_backward

    def wrong(x, w, g):
        dx, dw, db = right(x, w, g)
        return dx, (dw.T if dw.shape[0] == dw.shape[1] else dw), db
    ref.dense_backward = wrong


def bias_gradient_averaged(ref):
    right = ref.dense_backward

    def wrong(x, w, g):
        dx, dw, _ = right(x, w, g)
        return dx, dw, g.mean(axis=0)
    ref.dense_backward = wrong


def sigmoid_derivative_wrong(ref):
    ref.sigmoid_grad = lambda s: s * (1 + s)


def softmax_gradient_wrong_sign(ref):
    right = ref.softmax_vjp
    ref.softmax_vjp = lambda y, g: -right(y, g)


def relu_derivative_1_at_0(ref):
    ref.relu_grad = lambda z: (z >= 0).astype(z.dtype)


# (plant, cases that must fail, a key named in the output)
NUMPY_MUTANTS = {
    "transposed_weight_gradient": (transposed_weight_gradient, ["model.mlp.f64"],
                                   "grads/params/dense_1/w"),
    "bias_gradient_averaged": (bias_gradient_averaged, ["layer.dense.f64", "model.mlp.f64",
                                                         "model.linear_regression.f64"],
                               "grads/params/b"),
    "sigmoid_derivative_s_times_1_plus_s": (sigmoid_derivative_wrong,
                                            ["activation.sigmoid.f64",
                                             "example.notes_sigmoid_neuron.f64"],
                                            "grads/inputs/x"),
    "softmax_gradient_wrong_sign": (softmax_gradient_wrong_sign, ["activation.softmax.f64"],
                                    "grads/inputs/x"),
    "relu_derivative_1_at_0": (relu_derivative_1_at_0, ["activation.relu.kink.f64",
                                                         "model.mlp.f64"],
                               "probes/dense_0/adjoint"),
}


@pytest.mark.parametrize("name", sorted(NUMPY_MUTANTS))
def test_numpy_mutant_is_caught(name, golden, tmp_path, capsys):
    plant, must_fail, key = NUMPY_MUTANTS[name]
    ref = load_script()
    plant(ref)
    ref.run(golden, tmp_path, "*.f64", log=lambda line: None)
    report = tmp_path / "report.json"
    assert verify(golden, tmp_path, *must_fail, json_path=report) == 1
    out = failing(capsys)
    assert key in out
    cases = {c["name"]: c for c in json.loads(report.read_text())["cases"]}
    assert all(cases[n]["status"] == "FAIL" for n in must_fail), out
    # the same results with the bug are clean on the cases it does not touch
    assert verify(golden, tmp_path, "loss.cross_entropy.f64") == 0


def test_relu_kink_mutant_names_the_layer(golden, tmp_path, capsys):
    ref = load_script()
    relu_derivative_1_at_0(ref)
    ref.run(golden, tmp_path, "model.mlp.*", log=lambda line: None)
    report = tmp_path / "report.json"
    assert verify(golden, tmp_path, "model.mlp.*", json_path=report) == 1
    mlp = json.loads(report.read_text())["cases"][0]
    assert mlp["first_failing_probe"] == "probes/dense_0/adjoint"
    assert "first goes wrong in layer relu_0" in mlp["diagnosis"]
    assert "relu_0" in failing(capsys)


def test_wrong_input_gradient_names_the_layer(golden, tmp_path):
    """dense_1 (5 x 5) passes back g @ w instead of g @ w.T: the adjoints before it go wrong,
    and verify names dense_1 as the layer whose backward pass is wrong."""
    ref = load_script()
    right = ref.dense_backward

    def wrong(x, w, g):
        dx, dw, db = right(x, w, g)
        return (g @ w if w.shape[0] == w.shape[1] else dx), dw, db
    ref.dense_backward = wrong
    ref.run(golden, tmp_path, "model.mlp.f64", log=lambda line: None)
    report = tmp_path / "report.json"
    assert verify(golden, tmp_path, "model.mlp.f64", json_path=report) == 1
    mlp = json.loads(report.read_text())["cases"][0]
    assert mlp["first_failing_probe"] == "probes/relu_0/adjoint"
    assert "first goes wrong in layer dense_1" in mlp["diagnosis"]
    failed = {k["key"] for k in mlp["keys"] if k["status"] == "FAIL"}
    assert "probes/dense_1/adjoint" not in failed and "probes/relu_0/adjoint" in failed


def _write(golden, results, pattern, run):
    manifest = json.loads((Path(golden) / "manifest.json").read_text())
    names = []
    for entry in manifest["cases"]:
        if not entry["name"].startswith(pattern) or not entry["name"].endswith(".f64"):
            continue
        with np.load(Path(golden) / entry["file"], allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
        out = run(entry, arrays)
        if out is not None:
            np.savez(Path(results) / f"{entry['name']}.npz", **out)
            names.append(entry["name"])
    return names


@pytest.mark.parametrize("pattern, run, bug", [
    ("layer.conv2d.", numpy_layers.run_conv, {"flip": True}),
    ("layer.elman_rnn.", numpy_layers.run_elman, {"short": True}),
])
def test_numpy_layer_mutants(pattern, run, bug, golden, tmp_path, capsys):
    right, wrong = tmp_path / "right", tmp_path / "wrong"
    right.mkdir()
    wrong.mkdir()
    names = _write(golden, right, pattern, run)
    assert names
    assert verify(golden, right, *names) == 0, failing(capsys)
    _write(golden, wrong, pattern, lambda e, a: run(e, a, **bug))
    report = tmp_path / "report.json"
    assert verify(golden, wrong, *names, json_path=report) == 1
    cases = json.loads(report.read_text())["cases"]
    assert all(c["status"] == "FAIL" for c in cases)
    assert all(any(k["key"].startswith("grads/") and k["status"] == "FAIL" for k in c["keys"])
               for c in cases)
