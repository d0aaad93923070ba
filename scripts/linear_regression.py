"""Activity 3: gradient descent on linear regression against the closed-form solution, and the
time complexity of each, answered by measurement.

Questions: does GD, w <- w - alpha (2/n) X^T (X w - y), reach the least-squares solution w*?
What does the closed form cost, and what does one GD update cost? The notes' answer is
O(n d^2 + d^3) for the closed form (form X^T X, solve a d x d system; funcnn solves by an SVD
of X, also O(n d^2 + d^3)) and O(n d) for one update (two matrix-vector products). Here both are
timed across n and d and the slopes of log time against log size are fitted.

How the timing survives a shared, loaded machine: the timings run in a child process with
one thread (XLA's and the BLAS/LAPACK's thread pools off: on a loaded machine their spinning
workers made a 1024 x 64 solve cost 20x more CPU time than the work itself), and every
operation is timed by that process's CPU time (``time.process_time``: time other processes
hold the core is not counted; wall time is recorded too). Each size is measured many times,
interleaved with the other sizes, and the minimum is kept; GD updates are timed in a jitted
loop of about 3 ms, so Python's dispatch cost does not flatten the small sizes; the timings
are in float32 whatever JAX's x64 mode; slopes are fitted on the largest sizes only (where the
leading term dominates, see ``sweeps``), and repeats continue until the fitted slopes stop
moving (or a time budget ends).

    python scripts/linear_regression.py [--quick] [--out runs/linear_regression/]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from _common import (
    fit_loglog_slope,
    out_dir,
    parse_args,
    plt,
    print_table,
    save_figure,
    to_jsonable,
    write_json,
)
from jax import lax

from funcnn import data, linreg

NAME = "linear_regression"
GD_CALL_SECONDS = 0.003  # GD updates are timed in jitted loops of about this length
SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                     "MKL_NUM_THREADS": "1", "JAX_PLATFORMS": "cpu"}
SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

# The bands the test suite asserts on the fitted slopes (also written to the JSON). Predicted:
# closed form 2 in d while n d^2 leads (toward 3 as d nears n), 1 in n; one GD update 1 in
# both. Measured on a loaded 2-core machine (quick and full runs): closed form in d 1.71-1.94
# (below 2: at these sizes LAPACK's flop rate still grows with d), in n 0.76-1.06; GD in n
# 0.90-1.19, in d 0.98-1.27.
BANDS = {"closed_form_vs_d": (1.5, 3.5), "closed_form_vs_n": (0.5, 1.5),
         "gd_update_vs_n": (0.6, 1.4), "gd_update_vs_d": (0.6, 1.4)}


# ---------------------------------------------------------------- GD vs the closed form

def gd_against_closed_form(name, x, y, steps):
    """Run GD with alpha = 1 / lambda_max from w = 0; compare with the closed form."""
    x1 = linreg.add_bias(jnp.asarray(x))
    y = jnp.asarray(y)
    w_star = linreg.closed_form(x1, y)
    eig = np.linalg.eigvalsh(np.asarray(linreg.hessian(x1), np.float64))
    alpha = 1.0 / eig[-1]
    w, losses = linreg.fit_gd(x1, y, alpha, steps)
    loss_star = float(linreg.mse(w_star, x1, y))
    w_err = float(jnp.linalg.norm(w - w_star) / jnp.linalg.norm(w_star))
    gap = (np.asarray(losses, np.float64) - loss_star) / loss_star
    curve = np.asarray(_weight_error_curve(x1, y, w_star, jnp.asarray(alpha, x1.dtype), steps))
    # the slowest error component shrinks by (1 - alpha lambda_min) per update: steps to 1e-3
    rate = 1.0 - alpha * eig[0]
    return {"dataset": name, "n": int(x1.shape[0]), "d": int(x1.shape[1]),
            "lambda_min": float(eig[0]), "lambda_max": float(eig[-1]),
            "condition_number": float(eig[-1] / eig[0]), "learning_rate": float(alpha),
            "steps": steps, "loss_closed_form": loss_star, "loss_gd": float(losses[-1]),
            "relative_loss_gap": float(gap[-1]), "relative_weight_error": w_err,
            "predicted_steps_to_1e-3": float(np.log(1e-3) / np.log(rate)),
            "gap_curve": gap, "weight_error_curve": curve, "rate": float(rate),
            "machine_epsilon": float(jnp.finfo(x1.dtype).eps)}


def _weight_error_curve(x, y, w_star, alpha, steps):
    """|w_t - w*| / |w*| for t = 0..steps, by the same update as ``linreg.fit_gd``."""
    def body(w, _):
        w = linreg.gd_step(w, x, y, alpha)
        return w, jnp.linalg.norm(w - w_star)

    w0 = jnp.zeros(x.shape[1], x.dtype)
    _, errs = lax.scan(body, w0, None, length=steps)
    return jnp.concatenate([jnp.linalg.norm(w_star)[None], errs]) / jnp.linalg.norm(w_star)


# ---------------------------------------------------------------- timing

_closed_form = jax.jit(linreg.closed_form)


@jax.jit
def _gd_updates(w, x, y, steps):
    """``steps`` GD updates in one compiled loop (``steps`` traced: no recompile per count)."""
    return lax.fori_loop(0, steps, lambda i, w: linreg.gd_step(w, x, y, 1e-3), w)


def _op(kind, n, d, pool):
    """A timed call of ``kind`` at size (n, d); x and y are read from the random ``pool``."""
    dtype = jnp.zeros(()).dtype
    x = jnp.asarray(pool[:n * d].reshape(n, d), dtype)
    y = jnp.asarray(pool[-n:], dtype)
    if kind == "closed_form":
        fn = lambda: _closed_form(x, y).block_until_ready()
        per_call = 1
    else:
        w = jnp.zeros(d, x.dtype)
        once = lambda: _gd_updates(w, x, y, 1).block_until_ready()
        once()  # compile
        t = min(_cpu_seconds(once) for _ in range(3))
        # enough updates per call for the call to last ~GD_CALL_SECONDS: dispatch negligible
        per_call = int(np.clip(np.ceil(GD_CALL_SECONDS / max(t, 1e-6)), 1, 10000))
        fn = lambda: _gd_updates(w, x, y, per_call).block_until_ready()
    fn()  # compile and warm up
    return fn, per_call


def _cpu_seconds(fn):
    c0 = time.process_time()
    fn()
    return time.process_time() - c0


def time_sweep(kind, sizes, vary, seed, fit_last, round_repeats, max_seconds):
    """Min CPU and wall time per call of ``kind`` at each (n, d); slope over ``vary``.

    Rounds of ``round_repeats`` interleaved repeats (at least three rounds) continue until the
    fitted CPU-time slope moves by less than 0.05 between rounds, or ``max_seconds`` have
    passed.
    """
    # one pool of numbers for every size: numpy's generator, uniform float32, is fast for 10^7
    # numbers (the values do not change the cost; x in [0, 1) keeps GD with alpha = 1e-3
    # stable for every d here)
    pool = np.random.default_rng(seed).random(max(n * d for n, d in sizes) + max(
        n for n, _ in sizes), dtype=np.float32)
    ops = [_op(kind, n, d, pool) for n, d in sizes]
    del pool
    cpu = np.full(len(sizes), np.inf)
    wall = np.full(len(sizes), np.inf)
    x = np.array([s[0] if vary == "n" else s[1] for s in sizes], float)
    start, repeats, slopes = time.perf_counter(), 0, []
    while True:
        for _ in range(round_repeats):
            for i, (fn, per_call) in enumerate(ops):
                w0, c0 = time.perf_counter(), time.process_time()
                fn()
                c1, w1 = time.process_time(), time.perf_counter()
                cpu[i] = min(cpu[i], (c1 - c0) / per_call)
                wall[i] = min(wall[i], (w1 - w0) / per_call)
            repeats += 1
        slopes.append(fit_loglog_slope(x[-fit_last:], cpu[-fit_last:])[0])
        stable = len(slopes) >= 3 and abs(slopes[-1] - slopes[-2]) < 0.05
        if stable or time.perf_counter() - start > max_seconds:
            break
    slope, intercept = fit_loglog_slope(x[-fit_last:], cpu[-fit_last:])
    wall_slope = fit_loglog_slope(x[-fit_last:], wall[-fit_last:])[0]
    if kind == "closed_form":
        model = np.array([n * d * d + d ** 3 for n, d in sizes], float)
        formula = "n d^2 + d^3"
    else:
        model = np.array([n * d for n, d in sizes], float)
        formula = "n d"
    predicted = fit_loglog_slope(x[-fit_last:], model[-fit_last:])[0]
    return {"kind": kind, "vary": vary, "sizes": [list(s) for s in sizes], "x": x,
            "cpu_seconds": cpu, "wall_seconds": wall, "fit_on_last": fit_last,
            "slope": slope, "intercept": intercept, "wall_slope": wall_slope,
            "predicted_slope": predicted, "predicted_formula": formula,
            "repeats": repeats, "slope_per_round": slopes,
            "calls_per_measurement": [per_call for _, per_call in ops]}


def sweeps(quick):
    """(name, kind, vary, sizes, fit_last), chosen where the leading term dominates.

    Closed form: n >= 2d, so n d^2 (with d^3) leads; d from 128 up in the quick run, where
    LAPACK's blocked kernels are past their start-up costs (below that the time grows slower
    than d^2 because the flop rate itself still grows with d). GD update: X of 32 MB and more
    (8M float32 and up): the update streams X twice from main memory; smaller X sits partly in
    cache and a sweep across the cache sizes bends the slope (measured: 0.04 to 1.7 between
    neighbouring sizes under 2 MB, 1.0 above 64 MB).
    """
    if quick:
        return [("closed_form_vs_d", "closed_form", "d", [(1024, d) for d in (128, 256, 512)],
                 3),
                ("closed_form_vs_n", "closed_form", "n",  # X of 4 MB and up: out of cache
                 [(n, 64) for n in (16384, 32768, 65536)], 3),
                ("gd_update_vs_n", "gd_update", "n",
                 [(n, 64) for n in (131072, 262144, 524288)], 3),
                ("gd_update_vs_d", "gd_update", "d", [(65536, d) for d in (128, 256, 512)], 3)]
    return [("closed_form_vs_d", "closed_form", "d",
             [(2048, d) for d in (16, 32, 64, 128, 256, 512, 1024)], 4),
            ("closed_form_vs_n", "closed_form", "n",
             [(n, 32) for n in (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)], 4),
            ("gd_update_vs_n", "gd_update", "n",
             [(n, 64) for n in (1024, 4096, 16384, 65536, 131072, 262144, 524288, 1048576)],
             4),
            ("gd_update_vs_d", "gd_update", "d",
             [(65536, d) for d in (1, 4, 16, 64, 128, 256, 512, 1024)], 4)]


# ---------------------------------------------------------------- figures

def plot_convergence(runs, out):
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    floor = max(r["machine_epsilon"] for r in runs)
    for i, r in enumerate(runs):
        err = np.asarray(r["weight_error_curve"], float)
        t = np.arange(err.size)
        ax.loglog(t + 1, np.maximum(err, floor / 10), color=f"C{i}", lw=2,
                  label=f"{r['dataset']} (n={r['n']}, d={r['d']}, "
                        f"condition number {r['condition_number']:.0f})")
        # the slowest error component shrinks by (1 - alpha lambda_min) per update
        pred = err[0] * r["rate"] ** t
        keep = pred > floor
        ax.loglog(t[keep] + 1, pred[keep], "--", color=f"C{i}", lw=1,
                  label=f"{r['dataset']}: bound (1 - alpha lambda_min)^t")
    ax.axhline(floor, color="gray", lw=1, ls=":", label=f"machine epsilon ({floor:.1e})")
    ax.set_xlabel("GD update t + 1 (alpha = 1 / lambda_max)")
    ax.set_ylabel("|w_t - w*| / |w*|  (relative weight error)")
    ax.set_title("Gradient descent reaches the closed-form least-squares solution w*")
    ax.set_ylim(floor / 10, 2)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="center", bbox_to_anchor=(0.45, 0.45))
    return save_figure(fig, out, f"{NAME}_gd_vs_closed_form")


def plot_complexity(results, out):
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, vary in zip(axes, ("n", "d"), strict=True):
        for r in (x for x in results if x["vary"] == vary):
            color = "C0" if r["kind"] == "closed_form" else "C1"
            x = np.asarray(r["x"], float)
            cpu = np.asarray(r["cpu_seconds"], float) * 1e3
            fixed = r["sizes"][0][1] if vary == "n" else r["sizes"][0][0]
            other = "d" if vary == "n" else "n"
            label = "closed form (lstsq)" if r["kind"] == "closed_form" else "one GD update"
            ax.loglog(x, cpu, "o", color=color, ms=7,
                      label=f"{label}, {other}={fixed}: CPU time (min)")
            ax.loglog(x, np.asarray(r["wall_seconds"], float) * 1e3, "o", mfc="none",
                      color=color, ms=7, alpha=0.5, label=f"{label}: wall time (min)")
            xf = x[-r["fit_on_last"]:]
            ax.loglog(xf, 1e3 * np.exp(r["intercept"]) * xf ** r["slope"], "-", color=color,
                      lw=2, label=f"fit: slope {r['slope']:.2f}")
            mid = np.exp(np.mean(np.log(xf)))
            ymid = 1e3 * np.exp(r["intercept"]) * mid ** r["slope"]
            ax.loglog(xf, ymid * (xf / mid) ** r["predicted_slope"], ":", color="k", lw=1.5,
                      label=f"predicted O({r['predicted_formula']}): slope "
                            f"{r['predicted_slope']:.2f}")
        ax.set_xlabel(f"{vary} ({'examples' if vary == 'n' else 'features'})")
        ax.set_ylabel("time per operation (ms)")
        ax.set_title(f"Cost against {vary} (log-log; slopes fitted on the largest sizes)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Closed form O(n d^2 + d^3) against one GD update O(n d), measured")
    fig.tight_layout()
    return save_figure(fig, out, f"{NAME}_complexity")


def timing_worker(quick, seed):
    """Run every sweep here (meant for the single-threaded child) and return the results."""
    budget = 1.0 if quick else 30.0
    results = []
    for i, (name, kind, vary, sizes, fit_last) in enumerate(sweeps(quick)):
        r = time_sweep(kind, sizes, vary, seed * 1000 + 100 * i, fit_last,
                       round_repeats=1 if quick else 5, max_seconds=budget)
        r["name"] = name
        results.append(r)
    return results


def run_timing_worker(quick, seed):
    """Run :func:`timing_worker` in a child Python with one thread everywhere, in float32.
    Returns its results."""
    env = dict(os.environ, **SINGLE_THREAD_ENV)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + SINGLE_THREAD_XLA).strip()
    env["JAX_ENABLE_X64"] = "0"  # time float32 whatever the caller's mode: half the bytes
    cmd = [sys.executable, os.path.abspath(__file__), "--timing-worker", "--seed", str(seed)]
    if quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the timing child process failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- main

def _extra(parser):
    parser.add_argument("--timing-worker", action="store_true", help=argparse.SUPPRESS)


def main(argv=None) -> dict:
    args = parse_args(NAME, __doc__.split("\n\n")[0], argv, extra=_extra)
    if args.timing_worker:  # the child process: print the timings as one JSON line
        print(json.dumps(to_jsonable(timing_worker(args.quick, args.seed))))
        return {}
    out = out_dir(args)
    key = jax.random.key(args.seed)
    dtype = jnp.zeros(()).dtype

    # 1. GD against the closed form
    diabetes = data.diabetes(seed=args.seed, dtype=np.dtype(dtype).type)
    synthetic, w_true, b_true = data.synthetic_linear(jax.random.fold_in(key, 1), n=256, d=5,
                                                      dtype=np.dtype(dtype).type)
    steps = 10000  # a scan of matrix-vector products on ~350 x 11: milliseconds
    runs = [gd_against_closed_form("diabetes", diabetes.x_train, diabetes.y_train, steps),
            gd_against_closed_form("synthetic", synthetic.x_train, synthetic.y_train, steps)]
    print_table(("dataset", "n", "d", "kappa", "alpha", "steps", "L(w_gd)", "L(w*)",
                 "rel. loss gap", "|w_gd - w*| / |w*|"),
                [(r["dataset"], r["n"], r["d"], r["condition_number"], r["learning_rate"],
                  r["steps"], r["loss_gd"], r["loss_closed_form"], r["relative_loss_gap"],
                  r["relative_weight_error"]) for r in runs],
                title=f"GD (alpha = 1/lambda_max, from w = 0) against the closed form ({dtype})")

    # 2. time complexity by measurement, in a single-threaded child process
    timings = run_timing_worker(args.quick, args.seed)
    for r in timings:
        r["band"] = BANDS[r["name"]]
        r["in_band"] = bool(BANDS[r["name"]][0] <= r["slope"] <= BANDS[r["name"]][1])
    print_table(("operation", "vary", "sizes (n, d)", "CPU ms (min)", "slope (CPU)",
                 "slope (wall)", "predicted", "band", "repeats"),
                [(r["kind"], r["vary"], " ".join(f"{n}x{d}" for n, d in r["sizes"]),
                  " ".join(f"{t * 1e3:.3g}" for t in r["cpu_seconds"]), r["slope"],
                  r["wall_slope"], f"{r['predicted_slope']:.2f} O({r['predicted_formula']})",
                  f"[{r['band'][0]}, {r['band'][1]}]", r["repeats"]) for r in timings],
                title="Time complexity, measured (log-log slope on the largest "
                      f"{timings[0]['fit_on_last']} sizes)")

    figures = [plot_convergence(runs, out).name, plot_complexity(timings, out).name]
    result = {"seed": args.seed, "quick": args.quick, "dtype": str(dtype),
              "gd_vs_closed_form": {r["dataset"]: r for r in runs},
              "synthetic_true_weights": {"w": w_true, "b": b_true},
              "timing": {r["name"]: r for r in timings}, "bands": BANDS,
              "timing_method": "single-threaded child process; min over interleaved repeats "
                               "of process CPU time; GD updates timed in jitted loops of "
                               f"~{GD_CALL_SECONDS * 1e3:g} ms; slopes by least squares in "
                               "log-log on the largest sizes",
              "figures": figures}
    write_json(out, NAME, result)
    return result


if __name__ == "__main__":
    main()
