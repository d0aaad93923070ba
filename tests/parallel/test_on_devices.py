"""The layouts on 8 simulated CPU devices: the same numbers as one device and as jax.grad,
the gradients and updated parameters in the layout's shardings, and the errors.

JAX fixes the device count when it starts, so ``devices_child.py`` runs once, in a subprocess
with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``, and reports one JSON line and one
``.npz`` per case; each test here checks one case.

Tolerance: the child runs in float64 (``jax_enable_x64``). A sharded step sums the batch's
and the hidden units' contributions in another order than one device (partial sums per device,
then an all-reduce), so results differ by reordered float64 rounding: measured at most
3e-16 relative after 3 momentum steps. ``rtol=1e-12, atol=1e-13`` leaves that 1000 times
room and still fails any real error (a wrong gradient or a missed all-reduce is off in the
first digits). The engine against jax.grad under the same layout agreed to the bit here;
the same tolerance is asked of it.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import assert_trees_close

CHILD = Path(__file__).with_name("devices_child.py")
ROOT = Path(__file__).resolve().parents[2]
TOL = dict(rtol=1e-12, atol=1e-13)
LAYOUT_CASES = ["mlp-dp", "mlp-fsdp", "mlp-tp", "mlp-2d", "transformer-2d", "mlp-fsdp-optax"]

# The layouts' specs for models.mlp(12, hidden=(20, 24), num_classes=8) with
# min_shard_elements=64, worked out by hand from the rules in funcnn/parallel/fsdp.py and
# megatron.py: FSDP over 8 leaves w0 [12, 20] whole (no dimension 8 divides) and the biases
# (< 64 elements); Megatron pairs dense_0 (columns) with dense_1 (rows), the head unpaired.
MLP_SPECS = {
    "dp": {},
    "fsdp": {"['dense_1']['w']": "P(None, 'data')", "['dense_2']['w']": "P('data',)"},
    "tp": {"['dense_0']['w']": "P(None, 'model')", "['dense_0']['b']": "P('model',)",
           "['dense_1']['w']": "P('model',)"},
    "2d": {"['dense_0']['w']": "P('data', 'model')", "['dense_0']['b']": "P('model',)",
           "['dense_1']['w']": "P('model', 'data')", "['dense_2']['w']": "P('data',)"},
}
TRANSFORMER_2D = {  # a sample, by hand: heads over "model", then FSDP over "data" (size 2)
    "['block_0']['attention']['self_attention']['wq']": "P('data', 'model')",
    "['block_0']['attention']['self_attention']['bq']": "P('model',)",
    "['block_0']['attention']['self_attention']['wo']": "P('model', 'data')",
    "['block_0']['attention']['self_attention']['bo']": "P()",
    "['block_0']['mlp']['dense_0']['w']": "P('data', 'model')",
    "['block_0']['mlp']['dense_1']['w']": "P('model', 'data')",
    "['block_0']['mlp']['dense_1']['b']": "P()",
    "['positional_embedding_0']['table']": "P(None, 'data')",
    "['dense_1']['w']": "P('data',)",
    "['layer_norm_0']['scale']": "P()",
}


@pytest.fixture(scope="module")
def child(tmp_path_factory):
    out = tmp_path_factory.mktemp("devices")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(CHILD), str(out)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cases = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            cases.setdefault(record["case"], []).append(record)
    return out, cases


def case(child, name):
    out, cases = child
    crashes = {r["job"]: r["traceback"] for r in cases.get("crash", [])}
    job = "references" if name.endswith("-one-device") else name
    assert job not in crashes, f"the child's job {job!r} failed:\n{crashes[job]}"
    assert name in cases, f"the child reported no case {name!r}: {sorted(cases)}; {crashes}"
    (record,) = cases[name]
    path = out / f"{name}.npz"
    return record, (dict(np.load(path)) if path.exists() else {})


def tree(arrays, prefix):
    """The flat ``{path: array}`` of one saved tree (its keys start ``prefix[`` or
    ``prefix.``), keyed by the rest of its path."""
    return {k[len(prefix):]: v for k, v in arrays.items()
            if k.startswith(prefix) and k[len(prefix):][:1] in ("[", ".")}


@pytest.mark.parametrize("name", LAYOUT_CASES)
def test_sharded_steps_equal_one_device(child, name):
    record, arrays = case(child, name)
    _, reference = case(child, f"{record['model']}-one-device")  # hand engine, hand SGD
    assert_trees_close(tree(arrays, "params_hand"), tree(reference, "params"), **TOL,
                       what=f"{name} params: ")
    state = {"manual": "state_hand.momentum", "optax": "state_hand[0].trace"}[record["optimizer"]]
    assert_trees_close(tree(arrays, state), tree(reference, "state.momentum"), **TOL,
                       what=f"{name} momentum: ")
    np.testing.assert_allclose(arrays["losses_hand"], reference["losses"], rtol=1e-12)


@pytest.mark.parametrize("name", [n for n in LAYOUT_CASES if "optax" not in n])
def test_engine_equals_jax_grad_under_the_layout(child, name):
    _, arrays = case(child, name)
    for what in ("params", "state", "grads"):
        assert_trees_close(tree(arrays, f"{what}_hand"), tree(arrays, f"{what}_jax"), **TOL,
                           what=f"{name} {what}: ")
    np.testing.assert_allclose(arrays["losses_hand"], arrays["losses_jax"], rtol=1e-12)


@pytest.mark.parametrize("name", LAYOUT_CASES)
def test_gradients_and_updates_keep_the_layout(child, name):
    record, _ = case(child, name)
    for engine in record["engines"]:
        for what in ("params", "state", "grads"):
            wrong = [p for p, ok in record[f"{what}_{engine}_match_plan"].items() if not ok]
            assert not wrong, f"{name}: {what} ({engine}) not in the layout's sharding: {wrong}"
    if "jax" in record["engines"]:
        assert record["grads_hand_specs"] == record["grads_jax_specs"]


@pytest.mark.parametrize("layout", sorted(MLP_SPECS))
def test_mlp_specs_follow_the_rules(child, layout):
    record, _ = case(child, f"mlp-{layout}")
    expected = {path: MLP_SPECS[layout].get(path, "P()") for path in record["plan_specs"]}
    assert record["plan_specs"] == expected


def test_transformer_2d_specs_split_heads_and_shard_the_rest(child):
    record, _ = case(child, "transformer-2d")
    assert {p: record["plan_specs"][p] for p in TRANSFORMER_2D} == TRANSFORMER_2D


def test_optimizer_state_follows_the_parameters(child):
    record, _ = case(child, "mlp-fsdp-optax")  # optax.sgd's state: (TraceState(trace), ...)
    assert record["state_specs"] == {
        f"[0].trace{p}": s for p, s in record["plan_specs"].items()}
    manual, _ = case(child, "mlp-fsdp")  # funcnn's SGDState(momentum)
    assert manual["state_specs"] == {
        f".momentum{p}": s for p, s in manual["plan_specs"].items()}


def test_train_data_parallel_equals_one_device(child):
    record, arrays = case(child, "train-data-parallel")
    assert record["devices"] == 8 and record["replicated"]
    assert_trees_close(tree(arrays, "eight"), tree(arrays, "one"), **TOL)
    np.testing.assert_allclose(arrays["loss_eight"], arrays["loss_one"], rtol=1e-12)
    assert record["acc"][0] == record["acc"][1]
    assert record["all_reduce"]  # the partitioner inserted the cross-device sum


def test_train_keeps_a_last_batch_the_data_axis_divides(child):
    _, arrays = case(child, "train-last-batch")  # 3 steps each, the last on 4 examples
    assert_trees_close(tree(arrays, "split"), tree(arrays, "one"), **TOL)


def test_errors_name_what_was_expected_and_what_came(child):
    record, _ = case(child, "errors")
    for key in ("step_batch", "loss_batch"):
        assert "divisible by the 8 devices of the mesh axis 'data'" in record[key], key
        assert "batch_size=30" in record[key] and "(30, 12)" in record[key], key
    assert "expected a mesh axis named 'model'" in record["tp_on_data_mesh"]
    assert "('data',)" in record["tp_on_data_mesh"]
    assert "at most the 8 devices" in record["mesh_too_big"]
    assert "product 16" in record["mesh_too_big"]
    dp, _ = case(child, "train-data-parallel")
    assert "divisible by the 8 devices" in dp["batch_error"]
    assert "batch_size=30" in dp["batch_error"]
