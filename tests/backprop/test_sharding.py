"""The engine on sharded programs: shard_map with its collectives, sharding constraints and
device_put, on 8 simulated CPU devices (a 4 x 2 mesh), against ``jax.grad`` (values and the
gradients' shardings) and against the same function written for one device. The programs are
in ``sharded_programs.py``; JAX fixes the device count when it starts, so they run in one
child process and each case here reads its line of the child's report.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import lru_cache

import pytest

from tests.backprop.sharded_programs import CASES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@lru_cache(maxsize=1)
def run_programs() -> tuple[dict, str | None]:
    """Each case's error (None: it passed), and what went wrong if the child did not finish
    (kept, so that a crashed child runs once, not once per case)."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-m", "tests.backprop.sharded_programs"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    error = None
    if run.returncode != 0 or not lines:
        error = (f"the sharded programs did not finish (exit {run.returncode}):\n"
                 f"{run.stderr[-4000:]}")
    return {line["case"]: line["error"] for line in lines}, error


@pytest.mark.parametrize("name", list(CASES))
def test_sharded_program(name):
    results, error = run_programs()
    assert error is None, error
    assert name in results, f"the child process reported no result for {name}"
    assert results[name] is None, results[name]
