"""The learning rate: "small alpha guarantees improvement but slowly; big alpha moves quickly
but can overshoot".

Question: which learning rates alpha make gradient descent, w <- w - alpha grad L(w), improve
the loss, and which overshoot or diverge? Two sweeps, full-batch GD from the same start:

1. Linear regression on diabetes (standardised, with an intercept). Its loss is quadratic with
   a constant Hessian H = (2/n) X^T X, so the answer is exact: the error along H's eigenvector
   with eigenvalue lambda is multiplied by (1 - alpha lambda) every step, and GD converges if
   and only if alpha < 2 / lambda_max. The sweep is in multiples of that threshold; the loss
   falls monotonically below it and grows without bound above it.
2. An MLP (64 -> 32 relu -> 10) on the digits, cross-entropy, gradients by the hand-written
   engine. Its Hessian changes as it trains, so 2 / lambda_max at the start (by power
   iteration on Hessian-vector products) is only a local guide; the sweep shows where in
   practice alpha stops helping and starts to overshoot.

    python scripts/learning_rate.py [--quick] [--out runs/learning_rate/]
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _common import out_dir, parse_args, plt, print_table, save_figure, write_json
from jax import lax
from jax.flatten_util import ravel_pytree

from funcnn import backprop, data, linreg, models

NAME = "learning_rate"
LINREG_MULTIPLES = (0.02, 0.1, 0.5, 0.9, 0.98, 1.02, 1.1, 1.5)  # of 2 / lambda_max
MLP_ALPHAS = (0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def classify(losses):
    """Verdicts on one loss curve ``[steps + 1]`` (float64 NumPy, may hold inf/nan)."""
    finite = np.isfinite(losses)
    start = losses[0]
    first_bad = int(np.argmin(finite)) if not finite.all() else None
    last = losses[finite][-1] if finite.any() else np.inf
    up = np.diff(losses[finite])
    return {
        "diverged": bool(first_bad is not None or last > start),
        "non_finite_at_step": first_bad,
        "overshot": bool(first_bad is not None or np.max(losses[finite]) > start),
        "monotone": bool(first_bad is None and np.all(up <= 1e-6 * np.abs(start))),
        "improved": bool(np.isfinite(last) and last < start),
        "final_loss": float(last) if first_bad is None else float("inf"),
        "best_loss": float(np.min(losses[finite])),
        "start_loss": float(start),
    }


# ---------------------------------------------------------------- linear regression

def linreg_sweep(x, y, alphas, steps):
    """Loss curves [len(alphas), steps + 1] of GD from w = 0, one compiled run for all."""

    def run(alpha):
        def body(w, _):
            return linreg.gd_step(w, x, y, alpha), linreg.mse(w, x, y)

        w, losses = lax.scan(body, jnp.zeros(x.shape[1], x.dtype), None, length=steps)
        return jnp.append(losses, linreg.mse(w, x, y))

    return np.asarray(jax.jit(jax.vmap(run))(alphas), np.float64)


# ---------------------------------------------------------------- MLP

def mlp_sweep(model, params, batch, alphas, steps):
    """Full-batch GD with the engine's gradients, every alpha at once (vmap over alpha)."""
    value_and_grad = backprop.value_and_grad(model.loss)

    def run(alpha):
        def body(p, _):
            loss, g = value_and_grad(p, batch)
            return jax.tree.map(lambda w, d: w - alpha * d, p, g), loss

        p, losses = lax.scan(body, params, None, length=steps)
        return jnp.append(losses, model.loss(p, batch))

    return np.asarray(jax.jit(jax.vmap(run))(alphas), np.float64)


def sharpness(loss_fn, params, key, iters):
    """lambda_max of the Hessian of ``loss_fn`` at ``params`` by power iteration on
    Hessian-vector products (``jax.jvp`` of ``jax.grad``: a measuring tool here)."""
    flat, unravel = ravel_pytree(params)
    f = lambda v: loss_fn(unravel(v))
    hvp = jax.jit(lambda v: jax.jvp(jax.grad(f), (flat,), (v,))[1])
    v = jax.random.normal(key, flat.shape, flat.dtype)
    v = v / jnp.linalg.norm(v)
    lam = 0.0
    for _ in range(iters):
        hv = hvp(v)
        lam = float(v @ hv)
        v = hv / jnp.linalg.norm(hv)
    return lam


# ---------------------------------------------------------------- figure

def _curves(ax, alphas, curves, verdicts, threshold, title, alpha_fmt, optimum=None):
    """Loss per step; with ``optimum`` the excess loss L - L* (log scale shows the rates)."""
    cmap = plt.get_cmap("tab10")
    if optimum is not None:
        floor = 1e-7 * optimum
        curves = np.maximum(curves - optimum, floor)
    start = curves[0, 0]
    for i, (a, c, v) in enumerate(zip(alphas, curves, verdicts, strict=True)):
        t = np.arange(c.size)
        c = np.where(np.isfinite(c), c, np.nan)
        color = cmap(i % 10)
        tag = "diverged" if v["diverged"] else ("overshot" if v["overshot"] else "ok")
        ax.plot(t, c, "--" if a > threshold else "-", color=color, lw=1.8,
                label=f"alpha={alpha_fmt(a)} ({tag})")
    ax.set_yscale("log")
    finite = curves[np.isfinite(curves)]
    ax.set_ylim(max(finite.min() * 0.5, 1e-12), start * 30)
    ax.set_xlabel("GD step")
    ax.set_ylabel("training loss" if optimum is None else
                  "excess training loss L(w_t) - L(w*)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2, loc="lower left")


def _final(ax, alphas, verdicts, threshold, threshold_label, xlabel, optimum=None):
    alphas = np.asarray(alphas, float)
    start = verdicts[0]["start_loss"]
    shown = np.array([min(v["final_loss"], start * 1e3) for v in verdicts])
    if optimum is not None:
        start = start - optimum
        shown = np.maximum(shown - optimum, 1e-7 * optimum)
    bad = np.array([v["diverged"] for v in verdicts])
    ax.loglog(alphas[~bad], shown[~bad], "o-", color="C0", label="final loss (improved)")
    ax.loglog(alphas[bad], shown[bad], "X", color="C3", ms=10,
              label="diverged (final > start; capped at 1000x start)")
    ax.axhline(start, color="gray", ls=":", label="starting loss")
    ax.axvline(threshold, color="C3", ls="--", lw=1.5, label=threshold_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("final training loss" if optimum is None else
                  "final excess loss L(w) - L(w*)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left")


def plot(lin, mlp, out):
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    thr = lin["threshold"]
    _curves(axes[0, 0], lin["alphas"], lin["curves"], lin["verdicts"], thr,
            f"Linear regression (diabetes): excess loss per step; dashed: alpha > "
            f"2/lambda_max = {thr:.3g}", lambda a: f"{a / thr:.2f} x 2/lmax",
            optimum=lin["loss_closed_form"])
    _final(axes[0, 1], lin["alphas"], lin["verdicts"], thr,
           f"2 / lambda_max = {thr:.3g} (exact threshold)", "learning rate alpha",
           optimum=lin["loss_closed_form"])
    axes[0, 1].set_title(f"Linear regression: final loss after {lin['steps']} steps against "
                         "alpha", fontsize=10)
    mthr = mlp["threshold_at_init"]
    _curves(axes[1, 0], mlp["alphas"], mlp["curves"], mlp["verdicts"], mthr,
            f"MLP on digits (engine gradients): loss per step; dashed: alpha > "
            f"2/lambda_max(init) = {mthr:.3g}", lambda a: f"{a:g}")
    _final(axes[1, 1], mlp["alphas"], mlp["verdicts"], mthr,
           f"2 / lambda_max at init = {mthr:.3g} (local guide)", "learning rate alpha")
    axes[1, 1].set_title(f"MLP: final loss after {mlp['steps']} steps against alpha",
                         fontsize=10)
    fig.suptitle("Small alpha improves slowly; big alpha overshoots (full-batch gradient "
                 "descent, same start for every alpha)")
    fig.tight_layout()
    return save_figure(fig, out, NAME)


# ---------------------------------------------------------------- main

def main(argv=None) -> dict:
    args = parse_args(NAME, __doc__.split("\n\n")[0], argv)
    out = out_dir(args)
    key = jax.random.key(args.seed)
    dtype = jnp.zeros(()).dtype

    # 1. linear regression: the exact threshold
    ds = data.diabetes(seed=args.seed, dtype=np.dtype(dtype).type)
    x = linreg.add_bias(jnp.asarray(ds.x_train))
    y = jnp.asarray(ds.y_train)
    eig = np.linalg.eigvalsh(np.asarray(linreg.hessian(x), np.float64))
    threshold = 2.0 / eig[-1]
    steps = 200 if args.quick else 1000
    alphas = np.array([m * threshold for m in LINREG_MULTIPLES])
    curves = linreg_sweep(x, y, jnp.asarray(alphas, dtype), steps)
    verdicts = [classify(c) for c in curves]
    lin = {"dataset": "diabetes", "n": int(x.shape[0]), "d": int(x.shape[1]),
           "lambda_max": float(eig[-1]), "lambda_min": float(eig[0]),
           "threshold": float(threshold), "steps": steps, "alphas": alphas,
           "multiples_of_threshold": LINREG_MULTIPLES, "curves": curves, "verdicts": verdicts,
           "diverged_alphas": [float(a) for a, v in zip(alphas, verdicts, strict=True)
                               if v["diverged"]],
           "loss_closed_form": float(linreg.mse(linreg.closed_form(x, y), x, y))}
    print_table(("alpha", "alpha / (2/lambda_max)", "monotone", "diverged",
                 "non-finite at step", f"loss after {steps}"),
                [(float(a), m, v["monotone"], v["diverged"], v["non_finite_at_step"] or "-",
                  v["final_loss"]) for a, m, v in zip(alphas, LINREG_MULTIPLES, verdicts,
                                                       strict=True)],
                title=f"Linear regression (diabetes, n={lin['n']}, d={lin['d']}): "
                      f"lambda_max = {eig[-1]:.4g}, 2/lambda_max = {threshold:.4g}; "
                      f"closed-form loss {lin['loss_closed_form']:.4g}")

    # 2. an MLP on the digits
    digits = data.digits("flat", seed=args.seed, dtype=np.dtype(dtype).type)
    n = 512 if args.quick else digits.x_train.shape[0]
    batch = (jnp.asarray(digits.x_train[:n]), jnp.asarray(digits.y_train[:n]))
    model = models.mlp(64, hidden=(32,), num_classes=10)
    params = model.init(jax.random.fold_in(key, 1))
    lam0 = sharpness(lambda p: model.loss(p, batch), params, jax.random.fold_in(key, 2),
                     iters=20 if args.quick else 60)
    mlp_steps = 150 if args.quick else 500
    mlp_alphas = np.array(MLP_ALPHAS)
    mlp_curves = mlp_sweep(model, params, batch, jnp.asarray(mlp_alphas, dtype), mlp_steps)
    mlp_verdicts = [classify(c) for c in mlp_curves]
    mlp = {"dataset": "digits", "n": n, "hidden": [32], "steps": mlp_steps,
           "lambda_max_at_init": lam0, "threshold_at_init": 2.0 / lam0, "alphas": mlp_alphas,
           "curves": mlp_curves, "verdicts": mlp_verdicts,
           "diverged_alphas": [float(a) for a, v in zip(mlp_alphas, mlp_verdicts, strict=True)
                               if v["diverged"]],
           "overshot_alphas": [float(a) for a, v in zip(mlp_alphas, mlp_verdicts, strict=True)
                               if v["overshot"]]}
    best = int(np.argmin([v["final_loss"] for v in mlp_verdicts]))
    mlp["best_alpha"] = float(mlp_alphas[best])
    print_table(("alpha", "alpha / (2/lambda_max(init))", "overshot", "diverged",
                 "best loss", f"loss after {mlp_steps}"),
                [(float(a), a * lam0 / 2, v["overshot"], v["diverged"], v["best_loss"],
                  v["final_loss"]) for a, v in zip(mlp_alphas, mlp_verdicts, strict=True)],
                title=f"MLP (digits, n={n}, 64-32-10, engine gradients): lambda_max at init "
                      f"= {lam0:.4g}, 2/lambda_max = {2 / lam0:.4g}")
    answer = (f"Linear regression: alpha < 2/lambda_max = {threshold:.4g} converged "
              f"(monotone), alpha > it diverged: {lin['diverged_alphas']}. MLP: best alpha "
              f"{mlp['best_alpha']:g}; overshot (loss rose above its start): "
              f"{mlp['overshot_alphas']}; diverged (ended above its start): "
              f"{mlp['diverged_alphas']}; 2/lambda_max at init = {2 / lam0:.3g}.")
    print(answer)
    figure = plot(lin, mlp, out)
    result = {"seed": args.seed, "quick": args.quick, "dtype": str(dtype),
              "linear_regression": lin, "mlp": mlp, "answer": answer,
              "figures": [figure.name]}
    write_json(out, NAME, result)
    return result


if __name__ == "__main__":
    main()
