"""float16 and bfloat16 cases: the same functions on inputs rounded to the dtype, golden values
computed in float64 and rounded, tolerances of a few ulps of the dtype (``oracle.tolerance``);
funcnn computing in that dtype passes within a small part of them, a planted bug does not."""
import json

import numpy as np
import pytest

import oracle
from oracle.cases.base import numpy_dtype
from oracle.cli import main
from oracle.golden import export
from oracle.npzio import read_npz
from oracle.reference import computed_in_dtype
from oracle.tolerance import EPS, LOW_ULPS, rtol_for
from tests.oracle.conftest import load_script

NAMES = ["layer.dense", "activation.softmax.large_logits", "model.mlp", "training.mlp_sgd",
         "loss.cross_entropy", "top_k.moe_router"]
LOW = [f"{n}.{d}" for n in NAMES for d in ("f16", "bf16")]


@pytest.fixture(scope="module")
def low_golden(tmp_path_factory):
    directory = tmp_path_factory.mktemp("low_golden")
    done = export(directory, [oracle.cases.get(n) for n in LOW])
    assert not done.refused
    return directory


def test_low_precision_cases_are_opt_in():
    assert not oracle.cases.all("*.bf16") and not oracle.cases.all("*.f16")
    bf16 = oracle.cases.all("layer.*", dtypes=["bf16"])
    assert bf16 and all(c.name.endswith(".bf16") and c.dtype == "bfloat16" for c in bf16)
    assert len(oracle.cases.all(dtypes=["f16"])) == len(oracle.cases.SPECS)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_inputs_are_the_float64_ones_rounded_and_tolerances_come_from_eps(dtype):
    short = {"float16": "f16", "bfloat16": "bf16"}[dtype]
    low, f64 = oracle.cases.get(f"model.mlp.{short}"), oracle.cases.get("model.mlp.f64")
    np.testing.assert_array_equal(low.inputs["x"],
                                  f64.inputs["x"].astype(numpy_dtype(dtype)))
    for depth, ulps in LOW_ULPS.items():
        assert rtol_for(dtype, depth) == ulps * EPS[dtype]
    assert low.tolerance["rtol"] == LOW_ULPS["deep"] * EPS[dtype]


def test_manifest_stores_bfloat16_as_float32(low_golden):
    manifest = json.loads((low_golden / "manifest.json").read_text())
    entries = {e["name"]: e for e in manifest["cases"]}
    bf16, f16 = entries["layer.dense.bf16"], entries["layer.dense.f16"]
    assert bf16["dtype"] == "bfloat16" and bf16["storage_dtype"] == "float32"
    assert f16["dtype"] == "float16" and "storage_dtype" not in f16
    arrays = read_npz(low_golden / "layer.dense.bf16.npz")
    assert arrays["params/w"].dtype == np.float32 and bf16["arrays"]["params/w"]["dtype"] == \
        "float32"
    for value in arrays.values():  # every stored value is a bfloat16 value
        as_bf16 = value.astype(numpy_dtype("bfloat16")).astype(np.float32)
        np.testing.assert_array_equal(as_bf16, value)
    assert read_npz(low_golden / "layer.dense.f16.npz")["outputs/y"].dtype == np.float16


def test_funcnn_in_low_precision_passes_within_half_the_budget(low_golden, tmp_path):
    for name in LOW:
        np.savez(tmp_path / f"{name}.npz", **computed_in_dtype(oracle.cases.get(name)))
    report = tmp_path / "r.json"
    args = ["verify", str(low_golden), str(tmp_path), "--json", str(report)]
    assert main(args) == 0
    worst = max(k["max_abs"] / k["tol"] for c in json.loads(report.read_text())["cases"]
                for k in c["keys"] if k["status"] == "pass" and k["tol"])
    assert 0 < worst < 0.5, worst


def test_numpy_reference_passes_and_a_planted_bug_fails(low_golden, tmp_path, capsys):
    ref = load_script()
    done, _ = ref.run(low_golden, tmp_path / "right", log=lambda line: None)
    assert sorted(done) == sorted(LOW)
    assert main(["verify", str(low_golden), str(tmp_path / "right")]) == 0
    right = ref.dense_backward
    ref.dense_backward = lambda x, w, g: (*right(x, w, g)[:2], g.mean(axis=0))  # averaged db
    ref.run(low_golden, tmp_path / "wrong", log=lambda line: None)
    capsys.readouterr()
    for name in ("layer.dense.f16", "layer.dense.bf16"):
        assert main(["verify", str(low_golden), str(tmp_path / "wrong"), "--cases", name]) == 1
        assert "grads/params/b: FAIL" in capsys.readouterr().out


def test_check_runs_the_low_precision_cases_in_float64():
    report = oracle.cases.get("model.mlp.bf16").check()
    report.assert_ok()
    assert {leaf.dtype for leaf in report.leaves} == {"float64"}
