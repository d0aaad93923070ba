"""Train a funcnn model on scikit-learn's digits; plot loss and accuracy per epoch.

Question from the notes: does stochastic gradient descent on minibatches, with gradients from
backpropagation, train every kind of network (dense, convolutional, recurrent, attention)?
And do the hand-written engine and SGD give what jax.grad and Optax give?

    python scripts/train.py --model mlp                 # hand engine, hand SGD, defaults below
    python scripts/train.py --model rnn --backprop jax --optimizer optax
    python scripts/train.py --model cnn --compare       # hand/jax x manual/optax, one figure
    python scripts/train.py --model mlp --quick         # seconds: a subset, two epochs
    python scripts/train.py --model transformer --mesh data=4,model=2 --layout 2d

Prints one line per epoch, then ``test_accuracy=<float>`` last. Writes ``metrics.json``,
``curves.png`` (train loss and test accuracy per epoch) and ``checkpoint.npz`` (per run
``checkpoint-<backprop>-<optimizer>.npz`` with --compare) into ``--out``.

``--layout dp|fsdp|tp|2d`` trains on a device mesh (``--mesh data=4,model=2``; default every
device along the layout's axis, ``"data"`` or ``"model"``) with ``funcnn.parallel``: ``dp``
through ``train(data_parallel=True)`` (batch fed split), the others through a model whose loss
constrains its parameters and batch to the layout (the batch is fed whole and split on the
devices). Simulate devices on a CPU with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``.
"""
import argparse
import json
import os
import sys
import time

import jax
import numpy as np

from funcnn import data, models, parallel
from funcnn.train import DivergedError, train

# Per-model defaults, chosen to reach the README's held-out accuracy on 2 CPU cores.
DEFAULTS = {
    "mlp": dict(epochs=30, batch_size=32, lr=0.1, momentum=0.9),
    "cnn": dict(epochs=30, batch_size=64, lr=0.05, momentum=0.9),
    "rnn": dict(epochs=40, batch_size=64, lr=0.05, momentum=0.9),
    "transformer": dict(epochs=30, batch_size=32, lr=0.05, momentum=0.9),
}
LAYOUT = {"mlp": "flat", "cnn": "image", "rnn": "sequence", "transformer": "sequence"}
QUICK = dict(train=256, test=128, epochs=2)
NUM_HEADS = {"transformer": 4}  # build_model's; the tensor-parallel split checks it divides


def build_model(name):
    """The model ``name`` sized for digits (64 pixels, 8x8x1 images, 8 rows of 8)."""
    if name == "mlp":
        return models.mlp(64, hidden=(64,), num_classes=10)
    if name == "cnn":
        return models.cnn(in_shape=(8, 8, 1), channels=(16, 32), num_classes=10)
    if name == "rnn":
        return models.rnn(8, hidden=64, num_classes=10)
    return models.transformer(8, width=32, num_heads=4, depth=1, num_classes=10, max_len=8)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(DEFAULTS), default="mlp")
    p.add_argument("--backprop", choices=("hand", "jax"), default="hand")
    p.add_argument("--optimizer", choices=("manual", "optax"), default="manual")
    p.add_argument("--epochs", type=int, help="default: per model (see DEFAULTS)")
    p.add_argument("--batch-size", type=int, help="default: per model")
    p.add_argument("--lr", type=float, help="learning rate alpha; default: per model")
    p.add_argument("--momentum", type=float, help="default: per model; 0 for plain SGD")
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join("runs", "train"))
    p.add_argument("--resume", metavar="CKPT", help="continue from this checkpoint")
    p.add_argument("--data-parallel", action="store_true",
                   help="shard each batch over all devices (jax.sharding)")
    p.add_argument("--layout", choices=parallel.LAYOUTS + ("fsdp_tp",),
                   help="train sharded on --mesh: dp (replicated), fsdp (parameters and "
                        "optimizer state split over 'data'), tp (Megatron over 'model'), "
                        "2d (both)")
    p.add_argument("--mesh", metavar="AXES",
                   help="the device mesh, e.g. data=4,model=2 (default: every device along "
                        "the layout's axis); implies --layout dp when --layout is not given")
    p.add_argument("--compare", action="store_true",
                   help="train hand/jax x manual/optax and plot all four in one figure")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke run: {QUICK['train']} train / {QUICK['test']} test "
                        f"examples, {QUICK['epochs']} epochs")
    args = p.parse_args(argv)
    if args.compare and args.resume:
        p.error("--resume continues one run; it cannot be combined with --compare")
    if args.mesh is not None:
        try:
            args.mesh = parallel.parse_mesh(args.mesh)
        except ValueError as e:
            p.error(str(e))
        args.layout = args.layout or "dp"
    if args.layout and args.data_parallel:
        p.error("--data-parallel is --layout dp on every device; give one of them")
    for field, value in DEFAULTS[args.model].items():
        if getattr(args, field) is None:
            setattr(args, field, value)
    if args.quick:
        args.epochs = min(args.epochs, QUICK["epochs"])
    return args


def load_data(args):
    # the default float of this JAX (float64 under jax_enable_x64), the parameters' dtype
    dtype = jax.dtypes.canonicalize_dtype(np.float64)
    ds = data.digits(LAYOUT[args.model], seed=0, dtype=dtype)
    if args.quick:
        ds = ds._replace(x_train=ds.x_train[:QUICK["train"]], y_train=ds.y_train[:QUICK["train"]],
                         x_test=ds.x_test[:QUICK["test"]], y_test=ds.y_test[:QUICK["test"]])
    return ds


def default_mesh(layout):
    """Every device along the layout's axis (``2d`` needs ``--mesh``)."""
    if parallel.layout_name(layout) == "2d":
        raise ValueError("--layout 2d needs the mesh's two axes: give --mesh data=D,model=M")
    axis = parallel.MODEL if layout == "tp" else parallel.DATA
    return {axis: len(jax.devices())}


def sharded(args, model, ds):
    """``(model, train keyword arguments, mesh, plan or None)`` for ``--layout``."""
    mesh = parallel.make_mesh(args.mesh or default_mesh(args.layout))
    if args.layout == "dp":
        return model, dict(data_parallel=True, mesh=mesh), mesh, None
    plan = parallel.make_plan(args.layout, mesh, jax.eval_shape(model.init, jax.random.key(0)),
                              num_heads=NUM_HEADS.get(args.model))
    keywords = {}
    if plan.data_axis is not None:
        parallel.check_divisible(args.batch_size, mesh, f"--layout {args.layout} --batch-size",
                                 axis=plan.data_axis)
        # a last partial batch that does not split over the data axis is dropped, as dp does
        keywords["drop_last"] = len(ds.x_train) % args.batch_size % mesh.shape[plan.data_axis] != 0
    return parallel.sharded_model(model, plan), keywords, mesh, plan


def layout_report(params, mesh, plan):
    """Where the trained parameters live: per leaf its sharding's spec, and whether it is the
    layout's (replicated for dp)."""
    specs = plan.param_specs if plan is not None else jax.tree.map(
        lambda _: jax.sharding.PartitionSpec(), params)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    report = {}
    for (path, leaf), spec in zip(flat, jax.tree.leaves(specs), strict=True):
        wanted = jax.sharding.NamedSharding(mesh, spec)
        report[jax.tree_util.keystr(path)] = {
            "spec": str(spec), "in_layout": leaf.sharding.is_equivalent_to(wanted, leaf.ndim),
            "devices": len(leaf.sharding.device_set)}
    return report


def run(args, ds, backprop, optimizer, checkpoint, label):
    """One training run; prints a line per epoch; returns its metrics dict."""

    def report(r):
        print(f"[{label}] epoch {r['epoch']:3d}/{args.epochs}  train_loss={r['train_loss']:.4f}"
              f"  test_accuracy={r['test_accuracy']:.4f}  ({r['seconds']:.2f}s)", flush=True)

    start = time.perf_counter()
    model, keywords = build_model(args.model), {"data_parallel": args.data_parallel}
    if args.layout:
        model, more, mesh, plan = sharded(args, model, ds)
        keywords.update(more)
    result = train(model, ds, epochs=args.epochs,
                   batch_size=args.batch_size, learning_rate=args.lr,
                   momentum=args.momentum, nesterov=args.nesterov, backprop=backprop,
                   optimizer=optimizer, seed=args.seed, checkpoint=checkpoint,
                   resume=args.resume, callback=report, **keywords)
    history = result.history
    metrics = {"backprop": backprop, "optimizer": optimizer, "history": history,
               "test_accuracy": history[-1]["test_accuracy"] if history else None,
               "wall_seconds": time.perf_counter() - start, "checkpoint": checkpoint}
    if args.layout:
        metrics.update(layout=args.layout, mesh=dict(mesh.shape),
                       params=layout_report(result.params, mesh, plan))
    return metrics


def plot(runs, path, title):
    """Train loss (left) and test accuracy (right) per epoch, one line per run."""
    matplotlib = data.require("matplotlib")
    matplotlib.use("Agg")
    plt = data.require("matplotlib.pyplot")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    styles = ["-", "--", ":", "-."]
    for i, (label, run_) in enumerate(runs.items()):
        epochs = [r["epoch"] for r in run_["history"]]
        kw = dict(label=label, linestyle=styles[i % 4], marker="o", markersize=3)
        ax_loss.plot(epochs, [r["train_loss"] for r in run_["history"]], **kw)
        ax_acc.plot(epochs, [r["test_accuracy"] for r in run_["history"]], **kw)
    ax_loss.set(xlabel="epoch", ylabel="mean train loss (cross-entropy)", yscale="log",
                title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="held-out test accuracy", title="test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    ds = load_data(args)
    if args.compare:
        combos = [(b, o) for b in ("hand", "jax") for o in ("manual", "optax")]
    else:
        combos = [(args.backprop, args.optimizer)]
    runs = {}
    for backprop, optimizer in combos:
        label = f"{backprop} engine + {optimizer} SGD"
        name = "checkpoint.npz" if not args.compare else f"checkpoint-{backprop}-{optimizer}.npz"
        runs[label] = run(args, ds, backprop, optimizer, os.path.join(args.out, name), label)
    main_run = next(iter(runs.values()))
    if args.compare:
        finals = [r["history"][-1]["train_loss"] for r in runs.values()]
        print(f"max difference of final train loss across the four runs: "
              f"{max(finals) - min(finals):.3e}")
    metrics = {"model": args.model, "dataset": ds.name, "args": vars(args),
               "devices": [str(d) for d in jax.devices()], "runs": runs,
               "test_accuracy": main_run["test_accuracy"]}
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    what = ("hand engine vs jax.grad, hand SGD vs Optax" if args.compare
            else f"{args.backprop} engine, {args.optimizer} SGD")
    plot(runs, os.path.join(args.out, "curves.png"),
         f"{args.model} on digits ({what}; lr={args.lr}, momentum={args.momentum}, "
         f"batch={args.batch_size})")
    print(f"test_accuracy={main_run['test_accuracy']:.4f}")
    return metrics


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError, DivergedError, ImportError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        sys.exit(1)
