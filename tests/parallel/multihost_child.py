"""One process of ``test_multihost.py``: ``python multihost_child.py ID COUNT PORT OUT_DIR``.

Joins a run of COUNT processes (coordinator on 127.0.0.1:PORT, run by process 0; CPU
collectives through gloo), each with the local CPU devices the parent gave it, so the mesh
spans every process. It trains STEPS steps of an MLP under each layout of CASES with the
hand engine and with jax.grad, each process feeding only its own rows of every batch, and
once more on this process's first device alone, unsharded (the one-device reference). Process
0 writes the parameters (gathered from every process) to ``OUT_DIR/params.npz``; every
process prints one JSON line.
"""
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_cpu_collectives_implementation", "gloo")

from funcnn import models, optim, parallel  # noqa: E402
from funcnn.train import make_step  # noqa: E402

STEPS, BATCH, LR, MOMENTUM = 3, 16, 0.1, 0.9
CASES = [("fsdp", {"data": 4}), ("2d", {"data": 2, "model": 2})]


def batches():
    rng = np.random.default_rng(0)  # the same global batches on every process
    return [(rng.normal(size=(BATCH, 12)), rng.integers(0, 8, BATCH)) for _ in range(STEPS)]


def initial_state(model, opt, layout, axes):
    """The plan, and the initial parameters and state made directly in its layout."""
    key = jax.random.key(0)
    plan = parallel.make_plan(layout, parallel.make_mesh(axes),
                              jax.eval_shape(model.init, key), min_shard_elements=64)
    params = parallel.init_sharded(model.init, key, plan)
    return plan, params, parallel.init_state(opt, params, plan)


def sharded_run(model, opt, plan, params, opt_state, backprop):
    mesh = plan.mesh
    step = parallel.jit_step(make_step(parallel.sharded_loss(model.loss, plan), opt, backprop),
                             plan, opt_state)
    sharding = parallel.batch_sharding(plan)
    for x, y in batches():
        rows = parallel.local_rows(BATCH, sharding)  # only this process's rows
        batch = parallel.global_batch((x[rows], y[rows]), mesh, sharding)
        params, opt_state, _ = step(params, opt_state, batch)
    ok = all(a.sharding.is_equivalent_to(s, a.ndim) for a, s in zip(
        jax.tree.leaves(params), jax.tree.leaves(parallel.param_shardings(plan)), strict=True))
    local = sorted({len(a.addressable_shards) for a in jax.tree.leaves(params)})
    return parallel.to_host(params), ok, local, rows


def one_device(model, opt):
    """Unsharded, on this process's first device (jitted whole: eager ops are slow here)."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    params = jax.jit(model.init, out_shardings=device)(jax.random.key(0))
    opt_state = jax.jit(opt.init, out_shardings=device)(params)
    step = jax.jit(make_step(model.loss, opt, "hand"))
    for batch in batches():
        params, opt_state, _ = step(params, opt_state, jax.device_put(batch, device))
    return jax.device_get(params)


def main(process_id, count, port, out):
    start = time.perf_counter()
    parallel.initialize_distributed(f"127.0.0.1:{port}", count, process_id,
                                    initialization_timeout=60)
    model = models.mlp(12, hidden=(20, 24), num_classes=8)
    opt = optim.sgd(LR, momentum=MOMENTUM)
    trees, report = {"one-device": one_device(model, opt)}, {}
    for layout, axes in CASES:
        initial = initial_state(model, opt, layout, axes)
        for backprop in ("hand", "jax"):
            params, ok, local, rows = sharded_run(model, opt, *initial, backprop)
            trees[f"{layout}-{backprop}"] = params
            report[f"{layout}-{backprop}"] = {"shardings_ok": ok, "local_shards": local,
                                              "rows": [rows.start, rows.stop]}
    if process_id == 0:
        flat = {name + jax.tree_util.keystr(p): np.asarray(v) for name, t in trees.items()
                for p, v in jax.tree_util.tree_flatten_with_path(t)[0]}
        np.savez(Path(out) / "params.npz", **flat)
    print(json.dumps({"process": jax.process_index(), "processes": jax.process_count(),
                      "devices": jax.device_count(), "local_devices": jax.local_device_count(),
                      "cases": report, "seconds": time.perf_counter() - start}), flush=True)
    jax.distributed.shutdown()
    print(f"# shut down after {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
