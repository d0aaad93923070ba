"""One small example per layer kind of the notes: dense, convolutional, recurrent, residual,
attention.

Question: what does each layer compute, and does the hand-written engine differentiate it?
For each kind: a toy input, what comes out, a picture, and ``oracle.check_grads`` on the
layer's output with respect to its parameters and its input (the engine against jax.vjp and
float64 finite differences, a random cotangent on the output).

- dense: y = x W + b: each output is a row-by-column dot product (the notes' W x).
- convolutional: two hand-set 3x3 edge kernels slid over an 8x8 digit: feature maps that light
  up on vertical and horizontal strokes.
- recurrent: an Elman RNN reads the digit one row per time step, h_t = tanh(x_t W_xh +
  h_{t-1} W_hh + b); its hidden state over time (backward through it = backprop through time).
- residual: y = x + f(x); its Jacobian is I + df/dx: the identity path carries the gradient.
- attention: causal self-attention on a toy sequence: the attention matrix, zero above the
  diagonal where the causal mask forbids looking ahead.

    python scripts/layers_tour.py [--quick] [--out runs/layers_tour/]
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _common import out_dir, parse_args, plt, print_table, save_figure, write_json

import oracle
from funcnn import backprop, data
from funcnn.layers import conv2d as conv2d_layer
from funcnn.layers import (
    dense,
    elman_rnn,
    multi_head_self_attention,
    residual,
    scaled_dot_product_attention,
    serial,
    tanh_layer,
)

NAME = "layers_tour"


def _check(name, apply, params, x):
    """oracle.check_grads of apply(params, x) w.r.t. params and x: a summary dict."""
    report = oracle.check_grads(apply, params, x, argnums=(0, 1), name=name)
    worst_ej = max((p.max_abs for leaf in report.leaves for p in leaf.pairs
                    if p.pair == "engine vs jax"), default=0.0)
    # engine against finite differences: the worst |error| / tolerance (<= 1 passes)
    worst_ef = max((abs(p.a_at_worst - p.b_at_worst) / p.tol_at_worst
                    for leaf in report.leaves for p in leaf.pairs
                    if p.pair == "engine vs fd" and p.tol_at_worst > 0), default=0.0)
    return {"ok": report.ok, "leaves": [leaf.path for leaf in report.leaves],
            "engine_vs_jax_max_abs": worst_ej, "engine_vs_fd_worst_err_over_tol": worst_ef,
            "report": report.to_dict(), "table": report.table()}


def _heat(ax, a, title, cmap="RdBu_r", annotate=True, sym=True, fmt="{:.2f}", **kw):
    a = np.asarray(a, float)
    lim = np.max(np.abs(a)) or 1.0
    im = ax.imshow(a, cmap=cmap, vmin=-lim if sym else None, vmax=lim if sym else None, **kw)
    if annotate:
        for (i, j), v in np.ndenumerate(a):
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7)
    ax.set_title(title, fontsize=10)
    return im


# ---------------------------------------------------------------- the five layers

def _init(layer, key, in_shape):
    """layer.init (eagerly: its small random ops share compilations across the layers)."""
    return layer.init(key, in_shape)


def tour_dense(key, out):
    layer = dense(2)
    kx, kp = jax.random.split(key)
    _, params = _init(layer, kp, (-1, 3))
    params["b"] = jnp.asarray([0.5, -0.5], params["w"].dtype)
    x = jax.random.normal(kx, (4, 3))
    y = jax.jit(layer.apply)(params, x)
    by_hand = np.asarray(x) @ np.asarray(params["w"]) + np.asarray(params["b"])
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.4),
                             gridspec_kw={"width_ratios": [3, 2, 2, 2]})
    _heat(axes[0], x, "x: [batch 4, in 3]")
    _heat(axes[1], params["w"], "W: [in 3, out 2]")
    _heat(axes[2], params["b"][None, :], "b: [out 2]")
    _heat(axes[3], y, "y = x W + b: [4, 2]")
    for ax, (xl, yl) in zip(axes, [("input feature", "example"), ("output unit", "input feature"),
                                   ("output unit", ""), ("output unit", "example")],
                            strict=True):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_xticks(range(ax.get_images()[0].get_array().shape[1]))
        ax.set_yticks(range(ax.get_images()[0].get_array().shape[0]))
    fig.suptitle("Dense layer: y[i, k] = sum_j x[i, j] W[j, k] + b[k] (values annotated; "
                 "color = sign and size)")
    fig.tight_layout()
    fig_name = save_figure(fig, out, f"{NAME}_dense").name
    return {"computes": "y = x W + b", "in_shape": x.shape, "out_shape": y.shape,
            "max_abs_vs_numpy": float(np.max(np.abs(np.asarray(y) - by_hand))),
            "check": _check("dense", layer.apply, params, x), "figure": fig_name}


def tour_conv(key, out, image):
    layer = conv2d_layer(2, 3, padding="SAME")
    _, params = _init(layer, key, (-1, 8, 8, 1))
    sobel = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = np.stack([sobel, sobel.T], axis=-1)[:, :, None, :]  # [3, 3, 1, 2] HWIO
    dtype = params["w"].dtype
    edges = {"w": jnp.asarray(kernels, dtype), "b": jnp.zeros(2, dtype)}
    x = jnp.asarray(image, dtype)[None, :, :, None]  # [1, 8, 8, 1]
    y = jax.jit(layer.apply)(edges, x)  # [1, 8, 8, 2]
    fig, axes = plt.subplots(1, 5, figsize=(15, 3.4),
                             gridspec_kw={"width_ratios": [3, 1.3, 1.3, 3, 3]})
    axes[0].imshow(np.asarray(image), cmap="gray_r")
    axes[0].set_title("input: an 8x8 digit (a 4)")
    _heat(axes[1], kernels[:, :, 0, 0], "kernel 0:\nvertical edges", fmt="{:.0f}")
    _heat(axes[2], kernels[:, :, 0, 1], "kernel 1:\nhorizontal edges", fmt="{:.0f}")
    for i, title in ((0, "feature map 0 (vertical strokes)"),
                     (1, "feature map 1 (horizontal strokes)")):
        im = _heat(axes[3 + i], y[0, :, :, i], title, annotate=False)
        fig.colorbar(im, ax=axes[3 + i], fraction=0.046, label="response (a.u.)")
    for ax in axes:
        ax.set_xlabel("column (pixel)")
        ax.set_ylabel("row (pixel)")
    fig.suptitle("Convolutional layer: each 3x3 kernel slides over the image (SAME padding); "
                 "red = positive response, blue = negative")
    fig.tight_layout()
    fig_name = save_figure(fig, out, f"{NAME}_conv").name
    # the gradient check uses the layer's own random init (every weight nonzero)
    return {"computes": "y[i, j, o] = b[o] + sum_{di, dj, c} x[i+di, j+dj, c] w[di, dj, c, o]",
            "in_shape": x.shape, "out_shape": y.shape,
            "vertical_response_max": float(jnp.max(jnp.abs(y[..., 0]))),
            "check": _check("conv2d", layer.apply, params, x), "figure": fig_name}


def tour_recurrent(key, out, image, hidden):
    layer = elman_rnn(hidden)
    _, params = _init(layer, key, (-1, 8, 8))
    dtype = params["w_xh"].dtype
    x = jnp.asarray(image, dtype)[None]  # [1, time 8, features 8]: one image row per step
    hs = jax.jit(layer.apply)(params, x)  # [1, 8, hidden]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1, 1.6]})
    axes[0].imshow(np.asarray(image), cmap="gray_r")
    axes[0].set_title("input: a digit 4; its row t is x_t")
    axes[0].set_xlabel("feature (pixel column)")
    axes[0].set_ylabel("time step t (image row)")
    im = _heat(axes[1], np.asarray(hs[0]).T, f"hidden state h_t ({hidden} units) over time",
               annotate=False)
    axes[1].set_xlabel("time step t")
    axes[1].set_ylabel("hidden unit")
    fig.colorbar(im, ax=axes[1], label="h_t (tanh, in [-1, 1])")
    fig.suptitle("Recurrent layer (Elman): h_t = tanh(x_t W_xh + h_{t-1} W_hh + b), h_0 = 0")
    fig.tight_layout()
    fig_name = save_figure(fig, out, f"{NAME}_recurrent").name
    return {"computes": "h_t = tanh(x_t W_xh + h_{t-1} W_hh + b)", "in_shape": x.shape,
            "out_shape": hs.shape, "h_range": [float(hs.min()), float(hs.max())],
            "check": _check("elman_rnn", layer.apply, params, x), "figure": fig_name}


def tour_residual(key, out, width):
    branch = serial(dense(width), tanh_layer, dense(width))
    layer = residual(branch)
    kp, _ = jax.random.split(key)
    _, params = _init(layer, kp, (-1, width))
    dtype = params["dense_0"]["w"].dtype
    x = jnp.sin(jnp.linspace(0.0, 2 * np.pi, width, dtype=dtype))[None, :]  # [1, width]

    @jax.jit
    def run(params, x):
        y, fx = layer.apply(params, x), branch.apply(params, x)
        # the Jacobians dy/dx and df/dx by the engine: one VJP per output coordinate (vmap)
        def jacobian(fn):
            _, vjp_fn = backprop.vjp(lambda v: fn(params, v[None, :])[0], x[0])
            return jax.vmap(lambda row: vjp_fn(row)[0])(jnp.eye(width, dtype=dtype))
        return y, fx, jacobian(layer.apply), jacobian(branch.apply)  # jacobians [out, in]

    y, fx, jac, jac_branch = run(params, x)
    identity_part = float(jnp.max(jnp.abs(jac - jac_branch - jnp.eye(width, dtype=dtype))))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    axes[0].plot(np.asarray(x[0]), "o-", label="x (input)")
    axes[0].plot(np.asarray(fx[0]), "s--", label="f(x) (the branch: dense, tanh, dense)")
    axes[0].plot(np.asarray(y[0]), "^-", label="y = x + f(x)")
    axes[0].set_xlabel("feature index")
    axes[0].set_ylabel("value (a.u.)")
    axes[0].set_title("What it computes")
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    im = _heat(axes[1], jac, "dy/dx = I + df/dx (engine): the identity on the diagonal",
               annotate=False)
    axes[1].set_xlabel("input feature j")
    axes[1].set_ylabel("output feature i")
    fig.colorbar(im, ax=axes[1], label="dy_i / dx_j")
    fig.suptitle("Residual layer: y = x + f(x); the skip path passes the gradient straight "
                 "through")
    fig.tight_layout()
    fig_name = save_figure(fig, out, f"{NAME}_residual").name
    return {"computes": "y = x + f(x), f = dense -> tanh -> dense", "in_shape": x.shape,
            "out_shape": y.shape, "max_abs_jacobian_minus_branch_minus_identity": identity_part,
            "check": _check("residual", layer.apply, params, x), "figure": fig_name}


def tour_attention(key, out, time_steps, width):
    layer = multi_head_self_attention(1, causal=True)
    kp, kx = jax.random.split(key)
    _, params = _init(layer, kp, (-1, time_steps, width))
    x = jax.random.normal(kx, (1, time_steps, width))
    mask = np.tril(np.ones((time_steps, time_steps), bool))

    @jax.jit
    def run(params, x):
        # the attention matrix the layer uses: the same q, k and mask, with v = I (then the
        # output row t is row t of the weights)
        q = x[0] @ params["wq"] + jnp.broadcast_to(params["bq"], (time_steps, width))
        k = x[0] @ params["wk"] + jnp.broadcast_to(params["bk"], (time_steps, width))
        eye = jnp.eye(time_steps, dtype=x.dtype)
        return layer.apply(params, x), scaled_dot_product_attention(q, k, eye, mask)

    y, weights = run(params, x)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    axes[0].imshow(~mask, cmap="Greys", vmin=0, vmax=2.5)  # allowed white, masked gray
    axes[0].set_title("causal mask (1: query t may attend to key <= t; 0: masked)",
                      fontsize=10)
    for (i, j), m in np.ndenumerate(mask):
        axes[0].text(j, i, "1" if m else "0", ha="center", va="center", fontsize=8)
    masked = np.ma.masked_where(~np.asarray(mask), np.asarray(weights))
    im = axes[1].imshow(masked, cmap="viridis", vmin=0, vmax=1)
    axes[1].imshow(np.where(np.asarray(mask), np.nan, 1.0), cmap="Greys", vmin=0, vmax=3)
    for (i, j), v in np.ndenumerate(np.asarray(weights)):
        if mask[i, j]:
            axes[1].text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                         color="white" if v < 0.55 else "black")
    axes[1].set_title("attention weights softmax(q k^T / sqrt(d)); masked = gray")
    fig.colorbar(im, ax=axes[1], label="weight (each row sums to 1)")
    for ax in axes:
        ax.set_xlabel("key position (time)")
        ax.set_ylabel("query position (time)")
    fig.suptitle("Attention layer (1 head, causal): each position mixes the values of the "
                 "positions it may see")
    fig.tight_layout()
    fig_name = save_figure(fig, out, f"{NAME}_attention").name
    row_sums = jnp.sum(weights, axis=-1)
    return {"computes": "y = softmax(mask(q k^T / sqrt(d))) v, then W_o",
            "in_shape": x.shape, "out_shape": y.shape,
            "weights_above_diagonal_max": float(np.max(np.where(mask, 0.0, weights))),
            "weights_row_sum_max_error": float(jnp.max(jnp.abs(row_sums - 1))),
            "check": _check("attention", layer.apply, params, x), "figure": fig_name}


# ---------------------------------------------------------------- main

def main(argv=None) -> dict:
    args = parse_args(NAME, __doc__.split("\n\n")[0], argv)
    out = out_dir(args)
    keys = jax.random.split(jax.random.key(args.seed), 5)
    digits = data.digits("sequence", seed=args.seed)
    image = digits.x_train[int(np.argmax(digits.y_train == 4))]  # [8, 8], a "4"
    hidden, width, time_steps = (8, 8, 6) if args.quick else (16, 16, 10)

    results = {
        "dense": tour_dense(keys[0], out),
        "convolutional": tour_conv(keys[1], out, image),
        "recurrent": tour_recurrent(keys[2], out, image, hidden),
        "residual": tour_residual(keys[3], out, width),
        "attention": tour_attention(keys[4], out, time_steps, width),
    }
    print_table(("layer", "computes", "x shape", "y shape", "engine vs jax (max abs)",
                 "engine vs fd (err/tol)", "oracle"),
                [(k, r["computes"], tuple(r["in_shape"]), tuple(r["out_shape"]),
                  r["check"]["engine_vs_jax_max_abs"],
                  r["check"]["engine_vs_fd_worst_err_over_tol"],
                  "ok" if r["check"]["ok"] else "FAIL") for k, r in results.items()],
                title="One example per layer kind; gradients w.r.t. parameters and input by "
                      "oracle.check_grads")
    for r in results.values():
        if not r["check"]["ok"]:
            print(r["check"]["table"])
    data_out = {"seed": args.seed, "quick": args.quick, "dtype": str(jnp.zeros(()).dtype),
                "layers": results, "all_ok": all(r["check"]["ok"] for r in results.values()),
                "figures": [r["figure"] for r in results.values()]}
    write_json(out, NAME, data_out)
    return data_out


if __name__ == "__main__":
    main()
