"""Two real processes on 127.0.0.1: ``jax.distributed.initialize`` with a coordinator on a free
local port, CPU collectives through gloo, 2 CPU devices each, one mesh over all 4. Each
trains an MLP 3 steps under FSDP (``data=4``) and 2-D (``data=2, model=2``), with the hand
engine and with jax.grad, feeding only its own rows of every batch; the parameters must equal
one unsharded device's (and the engine's equal jax.grad's).

The runner cleans up whatever happens: each process starts in its own session (process
group), stdout and stderr go to files (no pipe can fill and block it), a process that fails
ends the run at once, and at a deadline, or on any error, every group still alive is killed
with SIGKILL and reaped. ``test_a_hung_run_is_killed_with_its_process_group`` checks that on
a run that cannot finish (the second process never comes).

Tolerance: float64; as in ``test_on_devices.py``, only the order of the sums differs
(measured: 6e-17 absolute), so ``rtol=1e-12, atol=1e-13``.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import assert_trees_close

CHILD = Path(__file__).with_name("multihost_child.py")
ROOT = Path(__file__).resolve().parents[2]
TOL = dict(rtol=1e-12, atol=1e-13)
CASES = ["fsdp-hand", "fsdp-jax", "2d-hand", "2d-jax"]


PORT_TAKEN = "Address already in use"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_alive(pid):
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def launch(out, count, timeout, only=None):
    """Start processes ``only`` (default all) of a ``count``-process run; wait at most
    ``timeout`` seconds. Returns ``(returncodes, logs, pids, timed_out)``; every process
    group is dead when it returns."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    port, procs, logs = free_port(), [], []
    deadline, timed_out = time.monotonic() + timeout, False
    try:
        for i in range(count) if only is None else only:
            log = open(out / f"process-{i}.log", "w")  # noqa: SIM115 (closed below)
            logs.append(log)
            procs.append(subprocess.Popen(
                [sys.executable, str(CHILD), str(i), str(count), str(port), str(out)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                start_new_session=True))
        while any(p.poll() is None for p in procs):
            if any(p.poll() not in (None, 0) for p in procs):
                break  # one failed: the others would wait for it in a collective
            if time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        for log in logs:
            log.close()
    texts = [Path(log.name).read_text() for log in logs]
    return [p.returncode for p in procs], texts, [p.pid for p in procs], timed_out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("multihost")
    for _attempt in range(3):  # the free port can be taken between free_port() and the bind
        codes, logs, pids, timed_out = launch(out, 2, timeout=120)
        if not any(PORT_TAKEN in text for text in logs):
            break
    tails = "\n".join(f"--- process {i} ---\n{text[-2500:]}" for i, text in enumerate(logs))
    assert not timed_out and codes == [0, 0], f"return codes {codes}\n{tails}"
    reports = [json.loads(line) for text in logs for line in text.splitlines()
               if line.startswith('{"process"')]
    params = dict(np.load(out / "params.npz"))
    return reports, params, pids


def tree(params, name):
    return {k[len(name):]: v for k, v in params.items() if k.startswith(name + "[")}


def test_both_processes_see_every_device(run):
    reports, _, _ = run
    assert sorted(r["process"] for r in reports) == [0, 1]
    for r in reports:
        assert (r["processes"], r["devices"], r["local_devices"]) == (2, 4, 2)


def test_each_process_feeds_its_rows_and_holds_its_shards(run):
    reports, _, _ = run
    for r in reports:
        rows = [8 * r["process"], 8 * r["process"] + 8]  # data axis: process 0's devices first
        for name in CASES:
            assert r["cases"][name]["rows"] == rows, name
            assert r["cases"][name]["local_shards"] == [2], name  # its 2 devices, no more
            assert r["cases"][name]["shardings_ok"], name


@pytest.mark.parametrize("name", CASES)
def test_two_processes_equal_one_device(run, name):
    _, params, _ = run
    assert_trees_close(tree(params, name), tree(params, "one-device"), **TOL, what=f"{name}: ")


@pytest.mark.parametrize("layout", ["fsdp", "2d"])
def test_engine_equals_jax_grad_across_processes(run, layout):
    _, params, _ = run
    assert_trees_close(tree(params, f"{layout}-hand"), tree(params, f"{layout}-jax"), **TOL)


def test_no_process_is_left(run):
    _, _, pids = run
    assert not any(group_alive(pid) for pid in pids)


def test_a_hung_run_is_killed_with_its_process_group(tmp_path):
    start = time.monotonic()
    codes, _, pids, timed_out = launch(tmp_path, 2, timeout=4, only=[0])  # process 1 never comes
    assert timed_out and codes == [-signal.SIGKILL]
    assert time.monotonic() - start < 15
    assert not group_alive(pids[0])  # the coordinator (process 0) is gone too
