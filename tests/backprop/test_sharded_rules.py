"""Every rule under explicit sharding, by a sweep: each program of ``rule_params.EXAMPLES``
(and ``sharded_rules.DIVISIBLE``, the same primitives on shapes the mesh divides) on a 4 x 2
mesh with Explicit axes, inputs sharded, the engine (jit, and eagerly on a sample) against
``jax.grad`` at 1e-12, each gradient sharded as jax.grad's. JAX fixes the device count when
it starts, so the sweep runs in one child process (``sharded_rules.py``) and each case here
reads its line. Skipped: where ``jax.grad`` itself fails under explicit sharding (the reason
is JAX's error) or the running JAX lacks the primitive.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import lru_cache

import pytest

from tests.backprop.sharded_rules import PROGRAMS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Rules outside this sweep's author's files that fail it, with the fix they are owed (the
# error is matched: any other failure fails). Remove an entry once its rule is fixed.
OWED: dict[str, tuple[str, str]] = {}  # program -> (error text, the rule change it needs)


@lru_cache(maxsize=1)
def run_sweep() -> tuple[dict, str | None]:
    """The child's lines by name, and what went wrong if it did not finish (kept, so that a
    crashed child runs once, not once per case)."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-m", "tests.backprop.sharded_rules"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    error = None
    if run.returncode != 0 or not lines:
        error = (f"the sharded rule sweep did not finish (exit {run.returncode}):\n"
                 f"{run.stderr[-4000:]}")
    return {line["prim"]: line for line in lines}, error


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_rule_under_explicit_sharding(name):
    results, error = run_sweep()
    assert error is None, error
    assert name in results, f"the child process reported no result for {name}"
    line = results[name]
    if line["outcome"] == "skip":
        pytest.skip(line["why"])
    if line["outcome"] == "fail" and name in OWED and OWED[name][0] in line["why"]:
        pytest.xfail(OWED[name][1])
    assert line["outcome"] in ("pass", "replicated"), line["why"]
