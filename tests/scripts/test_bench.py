"""scripts/bench.py in quick mode: it runs, times every model for each system, and what it
times is the same step (funcnn's parameters after one SGD step equal jax.grad's)."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import bench  # noqa: E402


def test_bench_quick_runs_every_model_and_times_the_same_step(tmp_path):
    out = tmp_path / "bench.json"
    bench.main(["--quick", "--no-torch", "--repeats", "1", "--number", "1", "--json", str(out)])
    report = json.loads(out.read_text())
    rows = {(r["model"], r["system"]): r for r in report["results"]}
    assert set(rows) == {(m, s) for m in ("mlp", "cnn", "rnn", "transformer")
                         for s in ("funcnn", "jax.grad")}
    for (model, system), r in rows.items():
        assert r["ms_min"] <= r["ms_median"] <= r["ms_max"] and r["compile_s"] > 0
        if system == "funcnn":
            assert r["max_param_diff_vs_jax_grad"] < 1e-5, model
            assert isinstance(r["same_program_as_jax_grad"], bool)
    assert report["device"].split(":")[0] in {"cpu", "gpu", "tpu"}


def test_bench_xla_options_reach_the_compiler_and_the_report(tmp_path):
    out = tmp_path / "bench.json"
    quick = ["--quick", "--no-torch", "--repeats", "1", "--number", "1", "--models", "mlp"]
    bench.main(quick + ["--xla-option", "xla_cpu_enable_fast_math=false", "--json", str(out)])
    assert json.loads(out.read_text())["xla_options"] == {"xla_cpu_enable_fast_math": False}
    with pytest.raises(Exception, match="xla_cpu_enable_fast_math.*'maybe'"):
        bench.main(quick + ["--xla-option", "xla_cpu_enable_fast_math=maybe"])
    with pytest.raises(SystemExit):
        bench.main(quick + ["--xla-option", "no-equals-sign"])


def test_program_lines_compare_programs_not_names():
    import jax
    import jax.numpy as jnp

    def f(a):
        return jnp.tanh(a) * 2.0

    def g(b):  # the same computation under other names
        return 2.0 * jnp.tanh(b)

    def h(a):
        return jnp.sin(a) * 2.0

    x = jnp.ones((8, 8))
    lines = {k: bench.program_lines(jax.jit(fn).lower(x).compile())
             for k, fn in {"f": f, "g": g, "h": h}.items()}
    assert lines["f"] == lines["g"] and lines["f"] != lines["h"]


def test_bench_bf16_mlp_reports_tflops_for_both_systems(tmp_path):
    out = tmp_path / "bench.json"
    bench.main(["--quick", "--no-torch", "--models", "mlp_bf16", "--json", str(out)])
    rows = json.loads(out.read_text())["results"]
    assert [(r["model"], r["system"]) for r in rows] == [("mlp_bf16_256x4", "funcnn"),
                                                         ("mlp_bf16_256x4", "jax.grad")]
    for r in rows:  # TFLOP/s is the step's 3 * 2 * batch * width^2 * layers over its time
        assert r["tflops"] == pytest.approx(6 * 256 * 256**2 * 4 / (r["ms_median"] * 1e9))
    assert rows[1]["ratio_to_jax_grad"] == 1.0


def test_bench_rejects_unknown_models():
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--no-torch", "--models", "mlp,resnet"])
