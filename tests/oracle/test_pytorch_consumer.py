"""The second consumer, examples/pytorch/: plain PyTorch and autograd answer every case (every
family, float64 and float32, and a float16 / bfloat16 sample), verify passes them, and each bug
of its mutation catalog is caught with the right layer named. Skipped without torch."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import oracle
from oracle.cli import main
from oracle.golden import export

pytest.importorskip("torch", reason="the PyTorch consumer needs torch (pip install torch)")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "pytorch"))
import torch_answer  # noqa: E402
import torch_mutants  # noqa: E402

LOW = ["layer.dense.bf16", "model.mlp.f16", "layer.lstm.bf16", "training.mlp_sgd.f16"]


@pytest.fixture(scope="module")
def every_case(tmp_path_factory):
    directory = tmp_path_factory.mktemp("golden_every_case")
    cases = oracle.cases.all() + [oracle.cases.get(n) for n in LOW]
    assert not export(directory, cases).refused
    return directory


@pytest.mark.slow
def test_pytorch_answers_every_case(every_case, tmp_path, capsys):
    done = torch_answer.run(every_case, tmp_path, log=lambda line: None)
    assert len(done) == len(oracle.cases.all()) + len(LOW)
    assert {n.split(".")[0] for n in done} == {"activation", "loss", "layer", "model",
                                               "training", "example", "linalg", "fft", "top_k"}
    report = tmp_path / "report.json"
    assert main(["verify", str(every_case), str(tmp_path), "--json", str(report)]) == 0, \
        capsys.readouterr().out[-3000:]
    data = json.loads(report.read_text())
    assert data["skip"] == [] and all(c["status"] == "pass" for c in data["cases"])


def test_the_catalog_has_at_least_20_bugs():
    assert len(torch_mutants.MUTANTS) >= 20
    assert len({m.case for m in torch_mutants.MUTANTS.values()}) >= 12


@pytest.mark.parametrize("name", sorted(torch_mutants.MUTANTS))
def test_mutant_is_caught_with_the_right_layer_named(name, every_case, tmp_path, capsys):
    mutant = torch_mutants.MUTANTS[name]
    with torch_mutants.planted(name), np.errstate(all="ignore"):
        torch_answer.run(every_case, tmp_path, mutant.case, log=lambda line: None)
    report = tmp_path / "report.json"
    assert main(["verify", str(every_case), str(tmp_path), "--cases", mutant.case, "--json",
                 str(report)]) == 1
    case = json.loads(report.read_text())["cases"][0]
    failed = {k["key"] for k in case["keys"] if k["status"] == "FAIL"}
    assert mutant.key in failed, (failed, case["diagnosis"])
    assert case["layer_at_fault"] == mutant.layer, case["diagnosis"]
    if mutant.layer is not None:
        assert mutant.layer in capsys.readouterr().out
    # and without the bug the same case passes
    torch_answer.run(every_case, tmp_path / "clean", mutant.case, log=lambda line: None)
    assert main(["verify", str(every_case), str(tmp_path / "clean"), "--cases",
                 mutant.case]) == 0
