"""scripts/train.py in --quick mode: output format, metrics.json, the figure, resume, errors."""
import importlib.util
import json
import pathlib

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "train.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_quick_mlp_then_resume(script, tmp_path, capsys):
    out = tmp_path / "run"
    script.main(["--model", "mlp", "--quick", "--out", str(out)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("test_accuracy=")
    accuracy = float(lines[-1].split("=")[1])
    assert 0.0 <= accuracy <= 1.0
    assert sum("epoch" in line and "train_loss=" in line for line in lines) == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert metrics["args"]["backprop"] == "hand" and metrics["args"]["optimizer"] == "manual"
    assert _is_png(out / "curves.png") and (out / "checkpoint.npz").exists()

    more = tmp_path / "more"
    script.main(["--model", "mlp", "--quick", "--out", str(more), "--resume",
                 str(out / "checkpoint.npz"), "--epochs", "2"])
    assert "epoch   2/2" not in capsys.readouterr().out  # nothing left to do: no new epoch
    history = json.loads((more / "metrics.json").read_text())["runs"]
    assert [r["epoch"] for r in next(iter(history.values()))["history"]] == [1, 2]


def test_compare_trains_four_combinations_in_one_figure(script, tmp_path, capsys):
    script.main(["--model", "mlp", "--quick", "--compare", "--out", str(tmp_path)])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    runs = list(metrics["runs"].values())
    assert {(r["backprop"], r["optimizer"]) for r in runs} == {
        ("hand", "manual"), ("hand", "optax"), ("jax", "manual"), ("jax", "optax")}
    losses = np.array([[e["train_loss"] for e in r["history"]] for r in runs])
    np.testing.assert_allclose(losses, losses[:1].repeat(4, axis=0), rtol=1e-9)
    assert _is_png(tmp_path / "curves.png")
    assert "max difference of final train loss" in capsys.readouterr().out


@pytest.mark.parametrize("model", ["cnn", "rnn", "transformer"])
def test_quick_every_model_with_the_hand_engine(script, model, tmp_path, capsys):
    script.main(["--model", model, "--quick", "--out", str(tmp_path)])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("test_accuracy=")
    history = json.loads((tmp_path / "metrics.json").read_text())["runs"]
    run = next(iter(history.values()))
    assert run["history"][-1]["train_loss"] < run["history"][0]["train_loss"] * 1.05


def test_bad_arguments_are_clear_errors(script, tmp_path):
    with pytest.raises(ValueError, match="learning rate > 0"):
        script.main(["--model", "mlp", "--quick", "--lr", "0", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match=r"got batch_size=5000"):
        script.main(["--model", "mlp", "--quick", "--batch-size", "5000", "--out",
                     str(tmp_path)])
    assert not (tmp_path / "checkpoint.npz").exists()
