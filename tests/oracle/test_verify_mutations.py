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

import oracle
from oracle.cli import main
from oracle.golden import export
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


def softmax_without_max_subtraction(ref):
    ref.softmax = lambda z: np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


def log_softmax_without_max_subtraction(ref):
    ref.log_softmax = lambda z: z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def bce_through_log_sigmoid(ref):
    def wrong(z, t):
        n = z.size
        s = 1 / (1 + np.exp(-z))
        loss = -np.mean(t * np.log(s) + (1 - t) * np.log(1 - s))
        return loss, (s - t) / n, (np.log(1 - s) - np.log(s)) / n
    ref.binary_cross_entropy = wrong


# (plant, cases that must fail, a key named in the output, the mlp's layer at fault)
NUMPY_MUTANTS = {
    "transposed_weight_gradient": (transposed_weight_gradient, ["model.mlp.f64"],
                                   "grads/params/dense_1/w", "dense_1"),
    "bias_gradient_averaged": (bias_gradient_averaged, ["layer.dense.f64", "model.mlp.f64",
                                                         "model.linear_regression.f64"],
                               "grads/params/b", "dense_0"),
    "sigmoid_derivative_s_times_1_plus_s": (sigmoid_derivative_wrong,
                                            ["activation.sigmoid.f64",
                                             "example.notes_sigmoid_neuron.f64"],
                                            "grads/inputs/x", None),
    "softmax_gradient_wrong_sign": (softmax_gradient_wrong_sign, ["activation.softmax.f64"],
                                    "grads/inputs/x", None),
    "relu_derivative_1_at_0": (relu_derivative_1_at_0, ["activation.relu.kink.f64",
                                                         "model.mlp.f64"],
                               "probes/dense_0/adjoint", "relu_0"),
    "softmax_without_max_subtraction": (softmax_without_max_subtraction,
                                        ["activation.softmax.large_logits.f64"], "outputs/y",
                                        None),
    "log_softmax_without_max_subtraction": (log_softmax_without_max_subtraction,
                                            ["activation.log_softmax.large_logits.f64",
                                             "loss.cross_entropy.large_logits.f64"],
                                            "outputs/", None),
    "bce_through_log_sigmoid": (bce_through_log_sigmoid,
                                ["loss.binary_cross_entropy.large_logits.f64"],
                                "outputs/loss", None),
}
# Bugs that only the hard inputs catch: the plain case of the same function still passes.
PLAIN_TWIN = {"softmax_without_max_subtraction": "activation.softmax.f64",
              "log_softmax_without_max_subtraction": "loss.cross_entropy.f64",
              "bce_through_log_sigmoid": "loss.binary_cross_entropy.f64"}


@pytest.mark.parametrize("name", sorted(NUMPY_MUTANTS))
def test_numpy_mutant_is_caught(name, golden, tmp_path, capsys):
    plant, must_fail, key, layer = NUMPY_MUTANTS[name]
    ref = load_script()
    plant(ref)
    with np.errstate(all="ignore"):  # the unstable mutants overflow, as they would for a user
        ref.run(golden, tmp_path, "*.f64", log=lambda line: None)
    report = tmp_path / "report.json"
    assert verify(golden, tmp_path, *must_fail, json_path=report) == 1
    out = failing(capsys)
    assert key in out
    cases = {c["name"]: c for c in json.loads(report.read_text())["cases"]}
    assert all(cases[n]["status"] == "FAIL" for n in must_fail), out
    if layer is not None:
        assert cases["model.mlp.f64"]["layer_at_fault"] == layer, cases["model.mlp.f64"]
    # the same results with the bug are clean on the cases it does not touch
    assert verify(golden, tmp_path, PLAIN_TWIN.get(name, "loss.mean_squared_error.f64")) == 0


def test_relu_kink_mutant_names_the_layer(golden, tmp_path, capsys):
    ref = load_script()
    relu_derivative_1_at_0(ref)
    ref.run(golden, tmp_path, "model.mlp.*", log=lambda line: None)
    report = tmp_path / "report.json"
    assert verify(golden, tmp_path, "model.mlp.*", json_path=report) == 1
    mlp = json.loads(report.read_text())["cases"][0]
    assert mlp["first_failing_probe"] == "probes/dense_0/adjoint"
    assert mlp["layer_at_fault"] == "relu_0"
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
    assert mlp["layer_at_fault"] == "dense_1"
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


def _fails(golden, results, names, capsys):
    """{case: status} for each of ``names`` verified alone."""
    out = {}
    for name in names:
        out[name] = verify(golden, results, name)
        capsys.readouterr()
    return {n for n, code in out.items() if code == 1}


@pytest.mark.parametrize("pattern, right, wrong, must_fail", [
    ("layer.conv2d.", numpy_layers.run_conv, numpy_layers.run_conv_symmetric,
     {"layer.conv2d.stride2_same_even.f64"}),
    ("layer.avg_pool.", numpy_layers.run_avg_pool,
     lambda e, a: numpy_layers.run_avg_pool(e, a, count_include_pad=True),
     {"layer.avg_pool.window2_stride1_same.f64", "layer.avg_pool.window3_stride2_same_even.f64"}),
    ("layer.embedding.", numpy_layers.run_embedding,
     lambda e, a: numpy_layers.run_embedding(e, a, overwrite=True),
     {"layer.embedding.f64", "layer.embedding.repeated.f64"}),
])
def test_bugs_only_hard_inputs_catch(pattern, right, wrong, must_fail, golden, tmp_path,
                                     capsys):
    """Each bug is caught exactly by the cases built for it (asymmetric SAME padding, padded
    windows, repeated ids) and passes the rest of its family."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    names = _write(golden, good, pattern, right)
    assert _fails(golden, good, names, capsys) == set()
    _write(golden, bad, pattern, wrong)
    assert _fails(golden, bad, names, capsys) == must_fail


@pytest.fixture(scope="module")
def lstm_golden(tmp_path_factory):
    directory = tmp_path_factory.mktemp("lstm_golden")
    export(directory, [oracle.cases.get("layer.lstm.f64")])
    return directory


@pytest.mark.parametrize("bug, layer, evidence", [
    ("forget_derivative", "forget", "probes/forget_pre/adjoint"),
    ("detached", "input_pre, forget_pre, candidate_pre, output_pre", "probes/hidden/adjoint"),
])
def test_lstm_gate_bugs_name_the_gate(lstm_golden, tmp_path, capsys, bug, layer, evidence):
    """With the gate probes, verify names the gate (or the recurrence) at fault, not "every
    gradient fails"."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    _write(lstm_golden, good, "layer.lstm.", numpy_layers.run_lstm)
    assert verify(lstm_golden, good, "layer.lstm.f64") == 0, failing(capsys)
    _write(lstm_golden, bad, "layer.lstm.", lambda e, a: numpy_layers.run_lstm(e, a, bug))
    report = tmp_path / "r.json"
    assert verify(lstm_golden, bad, "layer.lstm.f64", json_path=report) == 1
    case = json.loads(report.read_text())["cases"][0]
    assert (case["layer_at_fault"], case["first_failing_probe"]) == (layer, evidence), \
        case["diagnosis"]
    assert "time step 3" in case["diagnosis"] or "time step 2" in case["diagnosis"]
