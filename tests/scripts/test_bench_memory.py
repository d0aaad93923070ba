"""scripts/bench_memory.py in quick mode on 8 simulated CPU devices (a subprocess: JAX fixes
the device count when it starts): with FSDP each device holds about 1/8 of the parameters,
gradients and optimizer state; with data parallel all of it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_memory.py"
N = 8


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("memory") / "memory.json"
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={N}",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "state ratio" in proc.stdout
    return json.loads(out.read_text())


def test_fsdp_holds_about_one_nth_per_device(report):
    """Above 1/N only by what FSDP leaves whole: the quick MLP's biases (under
    min_shard_elements), 784 of 201,488 parameters: (200704 / 8 + 784) / 201488 = 1.027 / 8."""
    rows = report["layouts"]
    assert report["devices"] == N
    fsdp, one = rows["fsdp"], rows["one device"]
    assert 1 / N <= fsdp["state_ratio"] <= 1.05 / N
    assert 1 / N <= fsdp["gradients"] / one["gradients"] <= 1.05 / N
    assert 1 / N <= fsdp["params_and_opt_state"] / one["params_and_opt_state"] <= 1.05 / N


def test_data_parallel_holds_everything_on_every_device(report):
    rows = report["layouts"]
    assert rows["dp"]["state"] == rows["one device"]["state"]


def test_the_analysis_agrees_with_the_shard_shapes(report):
    for name, row in report["layouts"].items():
        if name != "one device":
            assert row["params_and_opt_state"] == row["params_and_opt_state_from_shapes"], name
