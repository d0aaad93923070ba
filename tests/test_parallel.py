"""Data parallel on 4 simulated CPU devices: the same loss and parameters as one device.

JAX fixes the device count when it starts, so the check runs in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``.
"""
import json
import os
import subprocess
import sys

import pytest

CHILD = r"""
import json
import jax
import numpy as np
jax.config.update("jax_enable_x64", True)
from funcnn import data, models, optim, parallel
from funcnn.train import make_step, train

assert len(jax.devices()) == 4, jax.devices()
ds = data.digits("flat", dtype=np.float64)
ds = ds._replace(x_train=ds.x_train[:256], y_train=ds.y_train[:256],
                 x_test=ds.x_test[:100], y_test=ds.y_test[:100])
model = models.mlp(64, hidden=(16,), num_classes=10)
kw = dict(epochs=2, batch_size=32, learning_rate=0.1, momentum=0.9, backprop="hand")
one = train(model, ds, **kw)
four = train(model, ds, data_parallel=True, **kw)
diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
           for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(four.params)))
leaf = jax.tree.leaves(four.params)[0]

mesh = parallel.make_mesh()
opt = optim.sgd(0.1)
params = model.init(jax.random.key(0))
step = parallel.jit_data_parallel(make_step(model.loss, opt, "hand"), mesh)
hlo = step.lower(params, opt.init(params), (ds.x_train[:32], ds.y_train[:32])).compile()
try:
    train(model, ds, data_parallel=True, epochs=1, batch_size=30, learning_rate=0.1)
    error = None
except ValueError as e:
    error = str(e)
print(json.dumps({"max_param_diff": diff, "devices": len(leaf.sharding.device_set),
                  "replicated": leaf.sharding.is_fully_replicated,
                  "loss_one": [r["train_loss"] for r in one.history],
                  "loss_four": [r["train_loss"] for r in four.history],
                  "acc": [one.history[-1]["test_accuracy"], four.history[-1]["test_accuracy"]],
                  "all_reduce": "all-reduce" in hlo.as_text(), "error": error}))
"""


@pytest.fixture(scope="module")
def result():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_four_devices_match_one(result):
    assert result["devices"] == 4 and result["replicated"]
    assert result["max_param_diff"] < 1e-12
    for a, b in zip(result["loss_one"], result["loss_four"], strict=True):
        assert abs(a - b) <= 1e-12 * abs(a)
    assert result["acc"][0] == result["acc"][1]


def test_gradients_are_averaged_by_xla(result):
    assert result["all_reduce"]  # the partitioner inserted the cross-device sum


def test_batch_must_split_over_devices(result):
    assert "divisible by the 4 devices" in result["error"]
    assert "batch_size=30" in result["error"]
