"""export -> verify: the manifest follows format funcnn-oracle/1, the golden values as results
pass, funcnn's own float32 computation passes within the float32 budget (and uses a small
fraction of it), and the files are reproducible."""
import json
import re

import numpy as np

import oracle
from oracle.cli import main
from oracle.conventions import CONVENTIONS
from oracle.golden import export
from oracle.npzio import read_npz, sha256
from oracle.reference import computed_in_dtype


def test_manifest_follows_the_format(golden):
    m = json.loads((golden / "manifest.json").read_text())
    assert m["format"] == "funcnn-oracle/1"
    assert set(m["created_by"]) >= {"funcnn", "jax", "numpy"}
    assert m["conventions"] == CONVENTIONS
    for entry in m["cases"]:
        assert set(entry) >= {"name", "file", "sha256", "kind", "description", "config",
                              "dtype", "arrays", "tolerance"}
        assert re.fullmatch(r"[a-z0-9_.-]+", entry["name"]) and entry["file"] == \
            entry["name"] + ".npz"
        assert sha256(golden / entry["file"]) == entry["sha256"]
        arrays = read_npz(golden / entry["file"])
        assert sorted(arrays) == sorted(entry["arrays"])
        for key, spec in entry["arrays"].items():
            assert list(arrays[key].shape) == spec["shape"]
            assert str(arrays[key].dtype) == spec["dtype"]
            if key.startswith(("params/", "inputs/", "grads/")) and spec["dtype"] != "int32":
                assert spec["dtype"] == entry["dtype"]
        assert set(entry["tolerance"]) >= {"rtol", "atol"}
        assert any(k.startswith("grads/") for k in arrays)
    mlp = next(e for e in m["cases"] if e["name"] == "model.mlp.f64")
    assert mlp["probes"][0] == "dense_0" and "probes/relu_0/adjoint" in mlp["arrays"]
    sgd = next(e for e in m["cases"] if e["name"] == "training.mlp_sgd.f32")
    assert "trajectory/2/params/dense_1/w" in sgd["arrays"]


def test_golden_values_as_results_pass(golden, tmp_path, capsys):
    m = json.loads((golden / "manifest.json").read_text())
    for entry in m["cases"]:
        arrays = read_npz(golden / entry["file"])
        np.savez(tmp_path / entry["file"], **{k: v for k, v in arrays.items()
                                               if not k.startswith(("params/", "inputs/"))})
    assert main(["verify", str(golden), str(tmp_path)]) == 0
    assert f"{len(m['cases'])} passed" in capsys.readouterr().out


def test_funcnn_in_float32_passes_within_a_small_part_of_the_budget(golden, tmp_path):
    """The float32 budget is not hiding anything: funcnn's engine computing in float32 uses
    at most a tenth of it on every float32 case (measured: under 1%)."""
    names = [c.name for c in oracle.cases.all(dtypes=["f32"])
             if (golden / f"{c.name}.npz").exists()]
    for name in names:
        np.savez(tmp_path / f"{name}.npz", **computed_in_dtype(oracle.cases.get(name)))
    report = tmp_path / "r.json"
    args = ["verify", str(golden), str(tmp_path), "--json", str(report)]
    for name in names:
        args += ["--cases", name]
    assert main(args) == 0
    worst = max(k["max_abs"] / k["tol"] for c in json.loads(report.read_text())["cases"]
                for k in c["keys"] if k["status"] == "pass" and k["tol"])
    assert worst < 0.1, worst


def test_export_is_deterministic(tmp_path):
    """Two exports of one case of every kind give the same bytes, manifest included."""
    names = ["activation.relu.kink.f32", "loss.cross_entropy.f64", "layer.conv2d.groups2.f64",
             "model.mlp.f32", "training.mlp_sgd.f64", "example.notes_sigmoid_neuron.f64",
             "linalg.eigh.f32", "fft.rfft_filter.f64", "top_k.moe_router.f32"]
    cases = [oracle.cases.get(n) for n in names]
    export(tmp_path / "a", cases)
    export(tmp_path / "b", cases)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert "manifest.json" in files and len(files) == len(names) + 1
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_command_line_list_and_export(tmp_path, capsys):
    assert main(["list", "--cases", "model.*", "--dtypes", "f32"]) == 0
    out = capsys.readouterr().out
    assert "model.transformer.f32" in out and "model.mlp.f64" not in out
    assert f"{len(oracle.cases.names('model.*', ['f32']))} cases" in out
    assert main(["export", str(tmp_path), "--cases", "loss.l2*", "--dtypes", "f64"]) == 0
    assert (tmp_path / "loss.l2_penalty.f64.npz").exists()
    assert main(["list", "--cases", "nothing.*"]) == 2
    assert main(["check", "--cases", "activation.sign.f32"]) == 0
