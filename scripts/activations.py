"""The notes' four activations and their derivatives, as the hand-written engine computes them.

Question: what are sigmoid, ReLU, step and sign, what are their derivatives, and where does a
derivative not exist? Each derivative is computed by ``funcnn.backprop`` (reverse mode, one
VJP rule per primitive), checked against the formula and against ``jax.grad``, and drawn below
its function in one figure. At z = 0 ReLU has a kink and step and sign jump: no derivative
exists there; the figure marks those points and the value the engine gives (JAX's convention,
``funcnn/backprop/conventions.py``).

    python scripts/activations.py [--quick] [--out runs/activations/]
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _common import out_dir, parse_args, plt, print_table, save_figure, write_json

from funcnn import backprop
from funcnn.activations import relu, sigmoid, sign, step

NAME = "activations"


def _sigmoid_prime(z):
    s = 1 / (1 + np.exp(-z))
    return s * (1 - s)


# name -> (function, formula for its derivative where it exists, points without a derivative,
#          points where the function itself jumps, formula texts)
ACTIVATIONS = {
    "sigmoid": (sigmoid, _sigmoid_prime, [], [], r"$\sigma(z)=1/(1+e^{-z})$",
                r"$\sigma'(z)=\sigma(z)(1-\sigma(z))$"),
    "relu": (relu, lambda z: (z > 0).astype(float), [0.0], [], r"$\max(0,z)$",
             r"$\mathbb{1}[z>0]$ (none at 0)"),
    "step": (step, lambda z: np.zeros_like(z), [0.0], [0.0], r"$\mathbb{1}[z>0]$",
             r"$0$ (none at 0)"),
    "sign": (sign, lambda z: np.zeros_like(z), [0.0], [0.0],
             r"$\mathbb{1}[z>0]-\mathbb{1}[z<0]$", r"$0$ (none at 0)"),
}


def engine_derivative(f, z):
    """f'(z) elementwise by the hand-written engine: the VJP of f with a cotangent of ones."""
    _, vjp_fn = backprop.vjp(f, z)
    return vjp_fn(jnp.ones_like(z))[0]


def jax_derivative(f, z):
    return jax.vmap(jax.grad(f))(z)


def _plot_pieces(ax, z, y, breaks, **kw):
    """Plot y(z) as separate segments between the points in ``breaks`` (no false verticals)."""
    edges = [-np.inf] + sorted(breaks) + [np.inf]
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        keep = (z > lo) & (z < hi)
        ax.plot(z[keep], y[keep], label=kw.pop("label", None) if i == 0 else None, **kw)


def main(argv=None) -> dict:
    args = parse_args(NAME, __doc__.split("\n\n")[0], argv)
    out = out_dir(args)
    points = 201 if args.quick else 2001  # odd: the grid contains z = 0 exactly
    dtype = jnp.zeros(()).dtype
    half = points // 2
    z = (jnp.arange(points, dtype=dtype) - half) * (4.0 / half)  # [-4, 4], z[half] = 0
    zn = np.asarray(z, np.float64)

    results, rows = {}, []
    fig, axes = plt.subplots(2, 4, figsize=(15, 6.5), sharex=True)
    for col, (name, (f, formula, no_deriv, jumps, f_text, d_text)) in enumerate(
            ACTIVATIONS.items()):
        value = np.asarray(f(z), np.float64)
        d_engine = np.asarray(engine_derivative(f, z), np.float64)
        d_jax = np.asarray(jax_derivative(f, z), np.float64)
        d_formula = formula(zn)
        # compare with the formula only where a derivative exists
        exists = np.ones_like(zn, bool)
        for p in no_deriv:
            exists &= zn != p
        err_formula = float(np.max(np.abs(d_engine - d_formula)[exists]))
        err_jax = float(np.max(np.abs(d_engine - d_jax)))
        at = {str(p): {"engine": float(d_engine[zn == p][0]), "jax_grad": float(
            d_jax[zn == p][0]), "left_limit": float(d_formula[zn < p][-1]),
            "right_limit": float(d_formula[zn > p][0])} for p in no_deriv}
        results[name] = {"max_abs_err_vs_formula": err_formula,
                         "max_abs_err_vs_jax_grad": err_jax,
                         "no_derivative_at": at,
                         "derivative_at_minus_1_0_plus_1": [
                             float(d_engine[np.argmin(np.abs(zn - p))]) for p in (-1, 0, 1)]}
        for p, a in zip(no_deriv, at.values(), strict=True):
            if p in jumps:
                a["why"] = (f"jump from {value[zn < p][-1]:g} to {value[zn > p][0]:g}: not "
                            "continuous, so not differentiable")
            else:
                a["why"] = (f"kink: slope {a['left_limit']:g} on the left, "
                            f"{a['right_limit']:g} on the right")
        rows.append((name, err_formula, err_jax,
                     "; ".join(f"z={p:g}, {a['why']}; engine gives {a['engine']:g}"
                               for p, a in zip(no_deriv, at.values(), strict=True)) or "none"))

        ax = axes[0, col]
        _plot_pieces(ax, zn, value, jumps, color="C0", lw=2, label=f_text)
        for p in jumps:  # a jump: open circles at the one-sided limits, a dot at the value
            left, right = value[zn < p][-1], value[zn > p][0]
            ax.plot([p, p], [left, right], "o", mfc="white", mec="C0", ms=7, zorder=3)
            ax.plot([p], [value[zn == p][0]], "o", color="C0", ms=6, zorder=4,
                    label=f"{name}(0) = {value[zn == p][0]:g}")
        ax.set_title(f"{name}")
        ax.set_ylabel(f"{name}(z)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
        if name == "sign":
            ax.set_ylim(-1.15, 1.6)
        elif name != "relu":
            ax.set_ylim(-0.08, 1.3)

        ax = axes[1, col]
        _plot_pieces(ax, zn, d_engine, no_deriv, color="C1", lw=2,
                     label="engine (funcnn.backprop)")
        ax.plot(zn[::max(1, points // 40)], d_formula[::max(1, points // 40)], "k.", ms=3,
                label=f"formula {d_text}")
        for p in no_deriv:
            a = at[str(p)]
            ax.plot([p, p], [a["left_limit"], a["right_limit"]], "o", mfc="white", mec="C3",
                    ms=8, zorder=3)
            what = "jump" if p in jumps else "kink"
            ax.plot([p], [a["engine"]], "x", color="C3", ms=9, mew=2, zorder=4,
                    label=f"no derivative at z={p:g} ({what}); engine gives {a['engine']:g}")
        ax.set_xlabel("z (pre-activation, unitless)")
        ax.set_ylabel(f"d {name}/dz")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=7)
        ax.set_ylim(-0.1, 1.75)  # room above the curves for the legend
    fig.suptitle("Activations (top) and their derivatives by the hand-written engine (bottom); "
                 "x = no derivative, open circles = one-sided limits", fontsize=12)
    fig.tight_layout()
    figure = save_figure(fig, out, NAME)

    print_table(("activation", "max|engine - formula|", "max|engine - jax.grad|",
                 "where no derivative exists"), rows,
                title="Derivatives by the hand-written engine on z in [-4, 4] "
                      f"({points} points, {dtype})")
    data = {"seed": args.seed, "quick": args.quick, "points": points, "dtype": str(dtype),
            "activations": results, "figures": [figure.name]}
    write_json(out, NAME, data)
    return data


if __name__ == "__main__":
    main()
