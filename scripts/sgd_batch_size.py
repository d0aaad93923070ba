"""Stochastic gradient descent: the trade of speed for "representativeness".

Question: how well does a minibatch gradient, (1/|S|) sum_{i in S} grad l_i(w), stand for the
full gradient grad L(w) = (1/n) sum_i grad l_i(w), and what does a smaller batch buy in speed?
On an MLP (64 -> 32 relu -> 10) on the digits, with per-example gradients from the
hand-written engine (``jax.vmap`` of ``funcnn.backprop.grad``), for batch sizes from 1 to n:

- the cosine between the minibatch and the full gradient, and the relative error
  |g_S - g| / |g|, over many random minibatches drawn without replacement, beside the
  sampling prediction E|g_S - g|^2 = (tr Sigma / |S|) (n - |S|) / (n - 1) (Sigma: the
  covariance of the per-example gradients);
- the cost of one SGD update (engine gradient + the hand-written SGD, jitted), timed;
- training curves for a few batch sizes with the same learning rate: the full training loss
  against the number of updates and against wall-clock time.

    python scripts/sgd_batch_size.py [--quick] [--out runs/sgd_batch_size/]
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from _common import min_time, out_dir, parse_args, plt, print_table, save_figure, write_json
from jax.flatten_util import ravel_pytree

from funcnn import backprop, data, models, optim, train

NAME = "sgd_batch_size"
LEARNING_RATE = 0.1


def per_example_gradients(model, params, x, y):
    """[n, P]: the flattened gradient of each example's loss, by the engine, vmapped."""
    grad = backprop.grad(lambda p, xi, yi: model.loss(p, (xi[None], yi[None])))
    flat = lambda g: ravel_pytree(g)[0]
    return jax.jit(jax.vmap(lambda xi, yi: flat(grad(params, xi, yi))))(x, y)


def minibatch_errors(per_example, sizes, samples, key):
    """For each batch size: cosine and relative error of minibatch means against the mean.

    Sample j's minibatch of size B is the first B entries of a random permutation of [n]
    (without replacement); as a 0/1 mask over the examples every size has the same shapes,
    so one compiled function serves them all.
    """
    n = per_example.shape[0]
    g = per_example.mean(axis=0)  # the full gradient [P]
    g_norm = jnp.linalg.norm(g)
    trace_sigma = float(jnp.mean(jnp.sum((per_example - g[None, :]) ** 2, axis=1)))  # tr Sigma
    # rank[j, i]: the position of example i in sample j's permutation
    rank = jax.vmap(lambda k: jnp.argsort(jax.random.permutation(k, n)))(
        jax.random.split(key, samples))  # [samples, n]

    @jax.jit
    def stats(b):
        mask = (rank < b).astype(per_example.dtype)  # [samples, n]
        gs = mask @ per_example / b  # [samples, P]
        cos = gs @ g / (jnp.linalg.norm(gs, axis=1) * g_norm)
        rel = jnp.linalg.norm(gs - g[None, :], axis=1) / g_norm
        return cos, rel

    out = []
    for b in sizes:
        cos, rel = stats(jnp.asarray(b, per_example.dtype))
        predicted = np.sqrt(trace_sigma / b * (n - b) / (n - 1)) / float(g_norm)
        out.append({"batch_size": int(b), "cosine_mean": float(cos.mean()),
                    "cosine_min": float(cos.min()), "rel_error_mean": float(rel.mean()),
                    "rel_error_rms": float(jnp.sqrt(jnp.mean(rel ** 2))),
                    "rel_error_max": float(rel.max()), "rel_error_predicted_rms": predicted})
    return out, trace_sigma, float(g_norm)


def update_cost(step, params, opt_state, x, y, sizes, repeats):
    """Min wall time of one jitted SGD update at each batch size (seconds)."""
    costs = []
    for b in sizes:
        batch = (x[:b], y[:b])

        def one(batch=batch):
            p, _, loss = step(params, opt_state, batch)
            jax.block_until_ready(p)

        costs.append(min_time(one, repeats))
    return costs


def train_curve(step, loss_all, params, opt_state, x, y, batch_size, updates, every, key):
    """SGD with ``batch_size``: full training loss every ``every`` updates, with the wall
    time spent in the updates alone (evaluation excluded)."""
    n = x.shape[0]
    record = [(0, 0.0, float(loss_all(params)))]
    done, seconds, epoch = 0, 0.0, 0
    while done < updates:
        for xb, yb in data.batches(x, y, batch_size, key=jax.random.fold_in(key, epoch),
                                   drop_last=batch_size < n):
            start = time.perf_counter()
            params, opt_state, _ = step(params, opt_state, (xb, yb))
            jax.block_until_ready(params)
            seconds += time.perf_counter() - start
            done += 1
            if done % every == 0 or done == updates:
                record.append((done, seconds, float(loss_all(params))))
            if done == updates:
                break
        epoch += 1
    return record


def plot(errors, sizes, curves, n, out):
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    b = np.array([e["batch_size"] for e in errors], float)
    rel = np.array([e["rel_error_mean"] for e in errors])
    timed = [e for e in errors if e["seconds_per_update"] is not None]
    cost = np.array([e["seconds_per_update"] for e in timed]) * 1e3
    ax = axes[0, 0]
    ax.loglog(b[:-1], rel[:-1], "o-", label="measured: mean |g_S - g| / |g|")
    ax.loglog(b[:-1], [e["rel_error_predicted_rms"] for e in errors[:-1]], "k--",
              label="predicted (rms): sqrt(tr Sigma / B (n-B)/(n-1)) / |g|")
    ax.axvline(n, color="gray", ls=":", label=f"B = n = {n}: error {rel[-1]:.1g} (exact)")
    ax.set_xlabel("batch size B (examples)")
    ax.set_ylabel("relative error of the minibatch gradient")
    ax.set_title("Representativeness: error falls like 1/sqrt(B), to 0 at B = n", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ax.semilogx(b, [e["cosine_mean"] for e in errors], "o-", label="mean over the samples")
    ax.semilogx(b, [e["cosine_min"] for e in errors], "v:", label="worst sample")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xlabel("batch size B (examples)")
    ax.set_ylabel("cos(minibatch gradient, full gradient)")
    ax.set_title("Direction: cosine with the full gradient", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    ax = axes[0, 2]
    ax.loglog([e["batch_size"] for e in timed], cost, "s-", color="C2",
              label="one SGD update (engine + hand SGD, jit)")
    ax.set_xlabel("batch size B (examples)")
    ax.set_ylabel("time per update (ms, wall clock, min of repeats)")
    ax.set_title("Speed: cost per update (flat while fixed costs dominate)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    for i, (bs, rec) in enumerate(curves.items()):
        rec = np.asarray(rec, float)
        axes[1, 0].semilogx(rec[1:, 0], rec[1:, 2], "o-", ms=3, color=f"C{i}", label=f"B={bs}")
        axes[1, 1].semilogx(np.maximum(rec[1:, 1], 1e-5), rec[1:, 2], "o-", ms=3,
                            color=f"C{i}", label=f"B={bs}")
    for ax, xl, title in ((axes[1, 0], "SGD updates", "Loss against updates"),
                          (axes[1, 1], "wall-clock seconds spent in updates",
                           "Loss against wall-clock time")):
        ax.set_xlabel(xl)
        ax.set_ylabel("full training loss (cross-entropy)")
        ax.set_title(f"{title} (alpha = {LEARNING_RATE}, same start)", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    ax = axes[1, 2]
    t_b = [e["batch_size"] for e in timed][:-1]
    t_rel = [e["rel_error_mean"] for e in timed][:-1]
    ax.loglog(cost[:-1], t_rel, "o-", color="C4")
    for bb, c, r in zip(t_b, cost[:-1], t_rel, strict=True):
        ax.annotate(f"B={int(bb)}", (c, r), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)
    ax.set_xlabel("time per update (ms)")
    ax.set_ylabel("relative error of the minibatch gradient")
    ax.set_title("The trade-off: speed for representativeness (B = n: error 0)",
                 fontsize=10)
    ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"SGD on an MLP (digits, n={n}): smaller batches are cheaper per update "
                 "but noisier")
    fig.tight_layout()
    return save_figure(fig, out, NAME)


def main(argv=None) -> dict:
    args = parse_args(NAME, __doc__.split("\n\n")[0], argv)
    out = out_dir(args)
    key = jax.random.key(args.seed)
    dtype = jnp.zeros(()).dtype
    digits = data.digits("flat", seed=args.seed, dtype=np.dtype(dtype).type)
    n = 512 if args.quick else digits.x_train.shape[0]
    x = jnp.asarray(digits.x_train[:n])
    y = jnp.asarray(digits.y_train[:n])
    model = models.mlp(64, hidden=(32,), num_classes=10)
    params = model.init(jax.random.fold_in(key, 1))

    # 1. representativeness at the initial parameters
    sizes = [1, 4, 16, 64, 256, n] if args.quick else [1, 2, 4, 8, 16, 32, 64, 128, 256, 512,
                                                        1024, n]
    timed = [1, 16, 256, n] if args.quick else sizes  # each size compiles its own step
    samples = 40 if args.quick else 200
    per_example = per_example_gradients(model, params, x, y)  # [n, P]
    errors, trace_sigma, g_norm = minibatch_errors(per_example, sizes, samples,
                                                   jax.random.fold_in(key, 2))
    # 2. cost per update
    opt = optim.sgd(LEARNING_RATE)
    opt_state = opt.init(params)
    step = jax.jit(train.make_step(model.loss, opt, backprop="hand"))
    costs = update_cost(step, params, opt_state, x, y, timed, repeats=5 if args.quick else 20)
    cost_of = dict(zip(timed, costs, strict=True))
    for e in errors:
        e["seconds_per_update"] = cost_of.get(e["batch_size"])  # None: not timed
    print_table(("batch size", "cos (mean)", "cos (min)", "rel. error (mean)",
                 "predicted (rms)", "ms per update"),
                [(e["batch_size"], e["cosine_mean"], e["cosine_min"], e["rel_error_mean"],
                  e["rel_error_predicted_rms"], "-" if e["seconds_per_update"] is None else
                  f"{e['seconds_per_update'] * 1e3:.4g}") for e in errors],
                title=f"Minibatch gradient against the full gradient (MLP on digits, n={n}, "
                      f"{samples} random batches per size, engine per-example gradients)")

    # 3. training curves
    train_sizes = [1, 16, n] if args.quick else [1, 8, 64, n]  # compiled above
    updates = 150 if args.quick else 1500
    loss_all = jax.jit(lambda p: model.loss(p, (x, y)))
    curves = {}
    for bs in train_sizes:
        curves[bs] = train_curve(step, loss_all, params, opt.init(params), x, y, bs, updates,
                                 every=max(1, updates // 30), key=jax.random.fold_in(key, 3))
    print_table(("batch size", "updates", "seconds in updates", "final training loss"),
                [(bs, rec[-1][0], rec[-1][1], rec[-1][2]) for bs, rec in curves.items()],
                title=f"SGD, alpha = {LEARNING_RATE}, same start")
    rel = [e["rel_error_mean"] for e in errors]
    answer = (f"The minibatch gradient's relative error falls from {rel[0]:.3g} at B=1 to "
              f"{rel[-2]:.3g} at B={sizes[-2]} and {rel[-1]:.1g} at B=n={n} (cosine "
              f"{errors[0]['cosine_mean']:.3g} -> {errors[-1]['cosine_mean']:.6g}), while an "
              f"update costs {costs[0] * 1e3:.3g} ms at B=1 and {costs[-1] * 1e3:.3g} ms at "
              f"B=n.")
    print(answer)
    figure = plot(errors, timed, curves, n, out)
    result = {"seed": args.seed, "quick": args.quick, "dtype": str(dtype), "n": n,
              "learning_rate": LEARNING_RATE, "samples_per_size": samples,
              "trace_sigma": trace_sigma, "full_gradient_norm": g_norm,
              "batch_sizes": sizes, "errors": errors,
              "training": {str(bs): {"updates": [r[0] for r in rec],
                                     "seconds": [r[1] for r in rec],
                                     "loss": [r[2] for r in rec]} for bs, rec in curves.items()},
              "answer": answer, "figures": [figure.name]}
    write_json(out, NAME, result)
    return result


if __name__ == "__main__":
    main()
