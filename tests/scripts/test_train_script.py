"""scripts/train.py in --quick mode: output format, metrics.json, the figure, resume, errors."""
import importlib.util
import json
import pathlib

import numpy as np
import pytest

# scripts/train.py trains on scikit-learn's digits and draws with matplotlib.
for _module in ("matplotlib", "sklearn"):
    pytest.importorskip(_module, reason=f"scripts/train.py needs {_module}: "
                                        "pip install -e '.[scripts]'")

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


SHARDED_MLP_SPECS = {  # mlp 64-64-10 under 2d on data=4 x model=2, by hand from the rules:
    "['dense_0']['w']": "P('data', 'model')",  # Megatron columns, then FSDP on the rows
    "['dense_0']['b']": "P('model',)",          # 64 elements: under FSDP's minimum
    "['dense_1']['w']": "P('model',)",          # rows; its 10 columns do not split over 4
    "['dense_1']['b']": "P()",
}


def test_sharded_run_on_eight_simulated_devices_equals_one_device(script, tmp_path, capsys):
    """The command line with --mesh data=4,model=2 --layout 2d in a subprocess with 8 CPU
    devices (float64: JAX_ENABLE_X64), against the same run here on one device. Only the
    order of the sums differs (the batch over 4 devices, the hidden units over 2), so the
    losses agree to float64 rounding; rtol=1e-12 is 1000 times what reordering gives."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu", JAX_ENABLE_X64="1")
    out = tmp_path / "sharded"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--model", "mlp", "--quick", "--mesh",
                           "data=4,model=2", "--layout", "2d", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("test_accuracy=")
    sharded = json.loads((out / "metrics.json").read_text())
    (run,) = sharded["runs"].values()
    assert run["layout"] == "2d" and run["mesh"] == {"data": 4, "model": 2}
    assert {p: r["spec"] for p, r in run["params"].items()} == SHARDED_MLP_SPECS
    assert all(r["in_layout"] and r["devices"] == 8 for r in run["params"].values())
    assert len(sharded["devices"]) == 8

    script.main(["--model", "mlp", "--quick", "--out", str(tmp_path / "one")])
    capsys.readouterr()
    (one,) = json.loads((tmp_path / "one" / "metrics.json").read_text())["runs"].values()
    np.testing.assert_allclose([r["train_loss"] for r in run["history"]],
                               [r["train_loss"] for r in one["history"]], rtol=1e-12)
    assert run["test_accuracy"] == one["test_accuracy"]


def test_layout_arguments_are_checked(script, tmp_path):
    with pytest.raises(ValueError, match=r"tensor parallel: expected parameters with an MLP"):
        script.main(["--model", "cnn", "--quick", "--layout", "tp", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match=r"--layout 2d needs the mesh's two axes"):
        script.main(["--model", "mlp", "--quick", "--layout", "2d", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match=r"expected a mesh axis named 'model'.*\('data',\)"):
        script.main(["--model", "mlp", "--quick", "--layout", "tp", "--mesh", "data=1",
                     "--out", str(tmp_path)])
    with pytest.raises(ValueError, match=r"at most the \d+ devices available, got "
                                         r"\{'data': 4096\}"):
        script.main(["--model", "mlp", "--quick", "--mesh", "data=4096", "--out",
                     str(tmp_path)])
    for bad in (["--mesh", "data4"], ["--mesh", "data=0"], ["--mesh", "data=1,data=1"],
                ["--data-parallel", "--layout", "dp"], ["--layout", "zero"]):
        with pytest.raises(SystemExit):
            script.parse_args(["--model", "mlp", *bad])
