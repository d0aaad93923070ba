"""The NumPy reference (scripts/verify_numpy_reference.py) verifies clean, in float64 and
float32, and says which cases it skips."""
import oracle
from oracle.cli import main
from tests.oracle.conftest import load_script


def test_numpy_reference_verifies_clean(golden, tmp_path, capsys):
    ref = load_script()
    done, skipped = ref.run(golden, tmp_path, log=lambda line: None)
    assert {n.rsplit(".", 1)[1] for n in done} == {"f64", "f32"}
    assert "model.mlp.f32" in done and "training.mlp_sgd.f64" in done
    assert "layer.conv2d.stride1_same.f64" in skipped
    args = ["verify", str(golden), str(tmp_path)]
    for name in done:
        args += ["--cases", name]
    assert main(args) == 0, capsys.readouterr().out
    assert f"{len(done)} passed, 0 failed, 0 missing" in capsys.readouterr().out


def test_script_command_line(golden, tmp_path, capsys):
    ref = load_script()
    assert ref.main([str(golden), str(tmp_path), "--cases", "activation.*", "--verify"]) == 0
    out = capsys.readouterr().out
    n = len(oracle.cases.names("activation.*"))
    assert f"wrote {n} results" in out and f"{n} passed" in out
    assert ref.main([str(golden), str(tmp_path / "all")]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "layer.elman_rnn.f64" in out
    assert "now run: python -m oracle verify" in out
