"""Benchmark: one jitted training step (loss, gradient, SGD update) with funcnn's hand-written
engine against jax.grad (and PyTorch eager when torch is installed), side by side in one
process, alternating systems so that drift in the machine hits all of them alike.

    python scripts/bench.py                 # the four reference models at their fixed sizes
    python scripts/bench.py --quick         # tiny sizes, a few repeats (CI keeps it from rotting)
    python scripts/bench.py --json out.json
    python scripts/bench.py --xla-option xla_cpu_experimental_ynn_fusion_type=\
        LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE   # both systems alike

For each model and system: median / min / max milliseconds per step over repeated runs after
warm-up, the ratio to jax.grad, compile seconds, and XLA's memory analysis of the compiled step
(temp and argument bytes). On a GPU it also runs a large bf16 MLP and reports TFLOP/s.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import backprop, models

LR = 1e-3


def reference_models(quick: bool):
    """name -> (Model, x, y) at the issue's fixed sizes (tiny ones with --quick)."""
    s = 8 if quick else 1
    key = jax.random.PRNGKey(0)
    kx, ky = jax.random.split(key)

    def labels(n):
        return jax.random.randint(ky, (n,), 0, 10)

    mlp_batch, cnn_batch, rnn_batch, tf_batch = 256 // s, 64 // s, 32 // s, 16 // s
    return {
        "mlp": (models.mlp(784, hidden=(1024 // s, 1024 // s), num_classes=10),
                jax.random.normal(kx, (mlp_batch, 784)), labels(mlp_batch)),
        "cnn": (models.cnn(in_shape=(28, 28, 1), channels=(32 // s, 64 // s), num_classes=10),
                jax.random.normal(kx, (cnn_batch, 28, 28, 1)), labels(cnn_batch)),
        "rnn": (models.rnn(32, hidden=256 // s, num_classes=10),
                jax.random.normal(kx, (rnn_batch, 64 // s, 32)), labels(rnn_batch)),
        "transformer": (models.transformer(256 // s, width=256 // s, num_heads=4, depth=1,
                                           num_classes=10, max_len=128 // s, causal=True),
                        jax.random.normal(kx, (tf_batch, 128 // s, 256 // s)), labels(tf_batch)),
    }


def make_step(loss, value_and_grad):
    def step(params, x, y):
        value, grads = value_and_grad(loss)(params, (x, y))
        params = jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads)
        return params, value

    return step


SYSTEMS = {"funcnn": backprop.value_and_grad, "jax.grad": jax.value_and_grad}


def compile_step(step, *args, options=None):
    """Trace, lower and compile ``step`` with XLA compiler ``options`` (a dict, or None):
    compile_s counts all three (the engine's own work happens while tracing)."""
    t0 = time.perf_counter()
    compiled = jax.jit(step).lower(*args).compile(compiler_options=options or None)
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    temp = getattr(mem, "temp_size_in_bytes", None) if mem is not None else None
    arg = getattr(mem, "argument_size_in_bytes", None) if mem is not None else None
    return compiled, compile_s, temp, arg


def program_lines(compiled):
    """The optimized program's instructions with names, metadata and source tables dropped,
    sorted: equal for two steps that XLA compiled to the same program."""
    text = compiled.as_text() or ""
    text = re.sub(r", metadata=\{[^}]*\}", "", text[text.find("\n%"):])
    text = re.sub(r"[\w.\-]+: ", "", re.sub(r"%[\w.\-]+", "%", text))  # and signatures'
    return sorted(line.strip() for line in text.splitlines() if line.strip())


def time_calls(fn, args, number, sync=jax.block_until_ready):
    """Milliseconds per call of ``fn(*args)``, waiting for the device at the end."""
    t0 = time.perf_counter()
    for _ in range(number):
        out = fn(*args)
    sync(out)
    return (time.perf_counter() - t0) / number * 1e3


def bench_model(name, model, x, y, repeats, number, torch_step=None, torch_sync=None,
                options=None):
    params = model.init(jax.random.PRNGKey(1))
    runners, rows, stepped, programs = {}, {}, {}, {}
    for vg in SYSTEMS.values():  # warm the compiler's caches (GPU autotuning) for both alike
        compile_step(make_step(model.loss, vg), params, x, y, options=options)
    for system, vg in SYSTEMS.items():
        compiled, compile_s, temp, arg = compile_step(make_step(model.loss, vg), params, x, y,
                                                      options=options)
        stepped[system] = jax.block_until_ready(compiled(params, x, y))  # warm-up
        programs[system] = program_lines(compiled)
        runners[system] = lambda c=compiled: time_calls(c, (params, x, y), number)
        rows[system] = {"model": name, "system": system, "compile_s": compile_s,
                        "temp_bytes": temp, "argument_bytes": arg, "times": []}
    if torch_step is not None:
        torch_step()  # warm-up
        runners["torch"] = lambda: time_calls(torch_step, (), number, lambda _: torch_sync())
        rows["torch"] = {"model": name, "system": "torch", "compile_s": None,
                         "temp_bytes": None, "argument_bytes": None, "times": []}
    order = list(runners)
    for r in range(repeats):  # alternate systems, rotating which goes first: no system always
        for system in order[r % len(order):] + order[:r % len(order)]:  # follows torch's
            rows[system]["times"].append(runners[system]())  # spinning threads
    # What is timed is the same step: parameters after one step, funcnn against jax.grad.
    diffs = jax.tree_util.tree_map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                                   stepped["funcnn"][0], stepped["jax.grad"][0])
    rows["funcnn"]["max_param_diff_vs_jax_grad"] = max(jax.tree_util.tree_leaves(diffs))
    rows["funcnn"]["same_program_as_jax_grad"] = programs["funcnn"] == programs["jax.grad"]
    base = statistics.median(rows["jax.grad"]["times"])
    for row in rows.values():
        t = row.pop("times")
        row.update(ms_median=statistics.median(t), ms_min=min(t), ms_max=max(t),
                   ratio_to_jax_grad=statistics.median(t) / base)
    return list(rows.values())


def bf16_mlp(width=8192, layers=4, batch=8192, repeats=5, number=10, options=None):
    """Large bf16 MLP on an accelerator: achieved TFLOP/s of a training step."""
    key = jax.random.PRNGKey(0)
    keys = jax.random.split(key, layers + 1)
    params = [jax.random.normal(k, (width, width), jnp.bfloat16) * (width ** -0.5)
              for k in keys[:layers]]
    x = jax.random.normal(keys[-1], (batch, width), jnp.bfloat16)

    def loss(ps, x):
        for w in ps:
            x = jax.nn.relu(x @ w)
        return jnp.mean(x.astype(jnp.float32) ** 2)

    flops = 3 * 2 * batch * width * width * layers  # forward + two products per layer backward
    rows, compiled = {}, {}
    for system, vg in SYSTEMS.items():
        def step(ps, x, vg=vg):
            v, g = vg(loss)(ps, x)
            return [p - (LR * gi).astype(p.dtype) for p, gi in zip(ps, g, strict=True)], v

        compiled[system], compile_s, temp, arg = compile_step(step, params, x, options=options)
        jax.block_until_ready(compiled[system](params, x))
        rows[system] = {"model": f"mlp_bf16_{width}x{layers}", "system": system,
                        "compile_s": compile_s, "temp_bytes": temp, "argument_bytes": arg,
                        "times": []}
    for r in range(repeats):  # alternating, as the other models
        for system in list(rows)[r % 2:] + list(rows)[:r % 2]:
            rows[system]["times"].append(time_calls(compiled[system], (params, x), number))
    out = list(rows.values())
    for row in out:
        t = row.pop("times")
        row.update(ms_median=statistics.median(t), ms_min=min(t), ms_max=max(t),
                   tflops=flops / (statistics.median(t) * 1e-3) / 1e12)
    base = next(r["ms_median"] for r in out if r["system"] == "jax.grad")
    for r in out:
        r["ratio_to_jax_grad"] = r["ms_median"] / base
    return out


def option_value(text):
    """An ``--xla-option`` value as XLA's option parser wants it: true/false as a bool, numbers
    as numbers, anything else (enum names) as the string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, few repeats (seconds)")
    ap.add_argument("--models", default=None,
                    help="comma-separated, of mlp,cnn,rnn,transformer,mlp_bf16 (default: the "
                         "four, and mlp_bf16 on an accelerator unless --quick)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--number", type=int, default=None, help="calls per timed run")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--json", dest="json_path", default=None)
    ap.add_argument("--xla-option", action="append", default=[], metavar="KEY=VALUE",
                    help="an XLA compiler option for every compiled step, both systems alike "
                         "(repeatable)")
    args = ap.parse_args(argv)
    options = {}
    for item in args.xla_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            ap.error(f"--xla-option: expected KEY=VALUE, got {item!r}")
        options[key] = option_value(value)
    repeats = args.repeats or (2 if args.quick else 15)
    number = args.number or (2 if args.quick else 10)

    torch_steps, torch_sync = {}, None
    if not args.no_torch:
        try:  # optional: the same models in PyTorch eager
            from bench_torch import sync as torch_sync
            from bench_torch import torch_steps as make_torch
            torch_steps = make_torch(args.quick)
        except ImportError:
            torch_steps = {}

    device = jax.devices()[0]
    desc = f"{device.platform}:{device.device_kind} ({platform.machine()}, jax {jax.__version__})"
    print(f"device: {desc}")
    if options:
        print("xla options: " + " ".join(f"{k}={v}" for k, v in options.items()))
    results = []
    header = f"{'model':<12} {'system':<9} {'median ms':>10} {'min':>8} {'max':>8} " \
             f"{'/jax.grad':>9} {'compile s':>9} {'temp MiB':>9}"
    print(header)
    table = reference_models(args.quick)
    names = (args.models or ",".join(list(table) + (
        [] if device.platform == "cpu" or args.quick else ["mlp_bf16"]))).split(",")
    unknown = sorted(set(names) - set(table) - {"mlp_bf16"})
    if unknown:
        ap.error(f"--models: unknown {unknown}; expected some of {list(table) + ['mlp_bf16']}")
    for name in (n for n in names if n != "mlp_bf16"):
        model, x, y = table[name]
        rows = bench_model(name, model, x, y, repeats, number, torch_steps.get(name),
                           torch_sync, options)
        for r in rows:
            temp = "-" if r["temp_bytes"] is None else f"{r['temp_bytes'] / 2**20:.2f}"
            comp = "-" if r["compile_s"] is None else f"{r['compile_s']:.2f}"
            print(f"{r['model']:<12} {r['system']:<9} {r['ms_median']:>10.3f} "
                  f"{r['ms_min']:>8.3f} {r['ms_max']:>8.3f} {r['ratio_to_jax_grad']:>9.3f} "
                  f"{comp:>9} {temp:>9}"
                  + ("  (XLA program identical to jax.grad's)"
                     if r.get("same_program_as_jax_grad") else ""))
        results.extend(rows)
    if "mlp_bf16" in names:
        sizes = dict(width=256, batch=256, repeats=2, number=2) if args.quick else {}
        for r in bf16_mlp(options=options, **sizes):
            print(f"{r['model']:<12} {r['system']:<9} {r['ms_median']:>10.3f} ms  "
                  f"{r['tflops']:.1f} TFLOP/s ({r['ratio_to_jax_grad']:.3f} of jax.grad's time)")
            results.append(r)
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump({"device": desc, "xla_options": options, "results": results}, f,
                      indent=1)
    return results


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
