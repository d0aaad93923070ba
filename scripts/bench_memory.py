"""Per-device memory of a sharded training step, from XLA's memory analysis of the compiled
step: how much of the parameters, gradients and optimizer state each device holds under
each layout of ``funcnn.parallel``, against one device.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python scripts/bench_memory.py
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python scripts/bench_memory.py --quick
    python scripts/bench_memory.py --devices 4 --json memory.json     # on 4 GPUs

For each layout: the step ``(params, opt_state, batch) -> (params, opt_state, loss)`` (hand
engine, hand SGD with momentum, buffers donated) is compiled for the layout's shardings, and
``compiled.memory_analysis()`` gives its per-device argument, output, alias and temp bytes.

- parameters + optimizer state = the step's argument bytes minus the batch's shard;
- gradients = the output bytes of the gradient alone, compiled with the parameters'
  shardings out (in the step they are temporaries, which the analysis does not itemise);
- ``state`` = their sum, and its ratio to one device's (FSDP on N devices: about 1/N; the
  leaves FSDP leaves whole, biases under ``min_shard_elements``, keep it a little above);
- ``peak`` = arguments + outputs - aliased + temps: what the step needs at most at once,
  which includes the weights FSDP all-gathers for the forward and backward pass.

This is a measurement, not a timing: the numbers do not depend on the machine's load.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import platform

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import models, optim, parallel
from funcnn.train import make_step, value_and_grad_fn

SIZES = {False: dict(features=1024, hidden=(1024, 1024, 1024), classes=16, batch=64),
         True: dict(features=256, hidden=(256, 256), classes=16, batch=32)}


def layouts(n):
    """layout name -> mesh axes over ``n`` devices (2d: ``n/2 x 2``)."""
    table = {"dp": {"data": n}, "fsdp": {"data": n}, "tp": {"model": n}}
    if n % 2 == 0 and n > 2:
        table["2d"] = {"data": n // 2, "model": 2}
    return table


def shard_bytes(shapes, shardings):
    """Bytes one device holds of ``shapes`` under ``shardings`` (from the shard shapes)."""
    return sum(math.prod(s.shard_shape(x.shape)) * np.dtype(x.dtype).itemsize
               for x, s in zip(jax.tree.leaves(shapes), jax.tree.leaves(shardings), strict=True))


def analyse(compiled):
    mem = compiled.memory_analysis()
    fields = ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes",
              "temp_size_in_bytes")
    return {f.replace("_size_in_bytes", ""): int(getattr(mem, f)) for f in fields}


def measure(model, opt, batch, plan, min_shard):
    """One layout's per-device bytes (``plan`` None: one device, nothing sharded)."""
    params = jax.eval_shape(model.init, jax.random.key(0))
    state = jax.eval_shape(opt.init, params)
    if plan is None:
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        step = jax.jit(make_step(model.loss, opt, "hand"), donate_argnums=(0, 1))
        loss_fn, grad_out, batch_sh = model.loss, device, device
        in_sh = (device, device)
    else:
        loss_fn = parallel.sharded_loss(model.loss, plan)
        step = parallel.jit_step(make_step(loss_fn, opt, "hand"), plan, state, donate=True)
        grad_out, batch_sh = parallel.param_shardings(plan), parallel.batch_sharding(plan)
        in_sh = (grad_out, batch_sh)
    step_mem = analyse(step.lower(params, state, batch).compile())
    grads = jax.jit(lambda p, b: value_and_grad_fn(loss_fn, "hand")(p, b)[1],
                    in_shardings=in_sh, out_shardings=grad_out)
    grad_mem = analyse(grads.lower(params, batch).compile())
    batch_bytes = shard_bytes(batch, jax.tree.map(lambda _: batch_sh, batch))
    row = {"params_and_opt_state": step_mem["argument"] - batch_bytes,
           "gradients": grad_mem["output"], "batch": batch_bytes, **step_mem}
    row["state"] = row["params_and_opt_state"] + row["gradients"]
    row["peak"] = step_mem["argument"] + step_mem["output"] - step_mem["alias"] \
        + step_mem["temp"]
    if plan is not None:  # the same from the shard shapes, as a check of the analysis
        row["params_and_opt_state_from_shapes"] = (
            shard_bytes(params, parallel.param_shardings(plan))
            + shard_bytes(state, parallel.state_shardings(plan, state)))
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small MLP (seconds)")
    ap.add_argument("--devices", type=int, default=None, help="use the first N (default all)")
    ap.add_argument("--min-shard-elements", type=int, default=parallel.MIN_SHARD_ELEMENTS)
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args(argv)
    n = args.devices or len(jax.devices())
    if not 2 <= n <= len(jax.devices()):
        raise SystemExit(f"bench_memory.py: expected 2 <= --devices <= {len(jax.devices())} "
                         f"(the devices there are), got {n}; on a CPU simulate more with "
                         f"XLA_FLAGS=--xla_force_host_platform_device_count=8")
    size = SIZES[args.quick]
    model = models.mlp(size["features"], hidden=size["hidden"], num_classes=size["classes"])
    opt = optim.sgd(0.1, momentum=0.9)
    dtype = jnp.zeros(()).dtype  # the parameters' dtype: float32 unless jax_enable_x64
    batch = (jax.ShapeDtypeStruct((size["batch"], size["features"]), dtype),
             jax.ShapeDtypeStruct((size["batch"],), jnp.int32))
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    rows = {"one device": measure(model, opt, batch, None, args.min_shard_elements)}
    for layout, axes in layouts(n).items():
        mesh = parallel.make_mesh(axes, jax.devices()[:n])
        plan = parallel.make_plan(layout, mesh, shapes, min_shard_elements=args.min_shard_elements)
        rows[layout] = measure(model, opt, batch, plan, args.min_shard_elements)
        rows[layout]["mesh"] = axes
    one = rows["one device"]
    for row in rows.values():
        row["state_ratio"] = row["state"] / one["state"]
        row["peak_ratio"] = row["peak"] / one["peak"]

    mib = 2.0 ** 20
    print(f"per-device bytes, {n} devices ({jax.devices()[0].platform}), mlp "
          f"{size['features']}-{'-'.join(map(str, size['hidden']))}-{size['classes']}, "
          f"batch {size['batch']}, {np.dtype(dtype).name}; ideal FSDP state ratio 1/{n} = "
          f"{1 / n:.4f}")
    print(f"{'layout':<11} {'mesh':<22} {'params+opt MiB':>14} {'grads MiB':>10} "
          f"{'state ratio':>11} {'temp MiB':>9} {'peak MiB':>9} {'peak ratio':>10}")
    for name, row in rows.items():
        print(f"{name:<11} {json.dumps(row.get('mesh', {})):<22} "
              f"{row['params_and_opt_state'] / mib:14.3f} {row['gradients'] / mib:10.3f} "
              f"{row['state_ratio']:11.4f} {row['temp'] / mib:9.3f} {row['peak'] / mib:9.3f} "
              f"{row['peak_ratio']:10.4f}")
    report = {"devices": n, "platform": jax.devices()[0].platform,
              "device_kind": jax.devices()[0].device_kind, "jax": jax.__version__,
              "machine": platform.machine(), "date": datetime.date.today().isoformat(),
              "model": size, "dtype": np.dtype(dtype).name,
              "min_shard_elements": args.min_shard_elements, "layouts": rows}
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
