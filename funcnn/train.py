"""The training loop: minibatch SGD over any funcnn model, with either engine and optimizer.

    >>> from funcnn import data, models, train
    >>> ds = data.digits("flat")
    >>> result = train.train(models.mlp(64), ds, epochs=5, batch_size=32, learning_rate=0.1,
    ...                      momentum=0.9, backprop="hand", optimizer="manual")
    >>> result.history[-1]["test_accuracy"]

One argument picks the gradient (``backprop="hand"``: :mod:`funcnn.backprop`; ``"jax"``:
``jax.value_and_grad``), one the optimizer (``"manual"``: :func:`funcnn.optim.sgd`;
``"optax"``: ``optax.sgd``; or any ``GradientTransformation``). The step
``(params, opt_state, batch) -> (params, opt_state, loss)`` is jitted once.

Each epoch visits the training set in a new order (``jax.random.fold_in(data_key, epoch)``),
records the mean train loss and the test accuracy (or test loss for regression), and, given
``checkpoint=PATH``, saves params and optimizer state there atomically. ``resume=PATH``
continues from such a file exactly where it stopped (the same batches, the same numbers as
an uninterrupted run). A non-finite loss stops training with :class:`DivergedError` naming
the step; the checkpoint then still holds the last good epoch.
"""
import functools
import math
import os
import sys
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import backprop as hand_backprop
from funcnn import checkpoint as ckpt
from funcnn import parallel
from funcnn.data import batches, check_batch_size, num_batches, require
from funcnn.optim import apply_updates, make_optimizer

BACKPROPS = ("hand", "jax")


class DivergedError(FloatingPointError):
    """Training produced a non-finite loss.

    Attributes: ``step`` (0-based index of the update, counted over the whole run, whose
    minibatch loss was not finite), ``loss``, ``epoch`` (1-based), ``checkpoint`` (the last
    good checkpoint's path, left unchanged, or None), ``last_good`` (the ``(params,
    opt_state)`` at the start of the failing epoch, or None).
    """

    def __init__(self, step, loss, epoch=None, checkpoint=None, detail="", last_good=None):
        self.step, self.loss, self.epoch, self.checkpoint = step, loss, epoch, checkpoint
        self.last_good = last_good
        where = f"step {step}" + ("" if epoch is None else f" (epoch {epoch})")
        kept = ("" if checkpoint is None else
                f"; the last good checkpoint is kept unchanged at {checkpoint!r}")
        super().__init__(f"training diverged: the loss is {loss} at {where}"
                         + (f"; {detail}" if detail else "") + kept
                         + ". Try a smaller learning rate.")


class TrainResult(NamedTuple):
    """``params``, ``opt_state`` after the last epoch; ``history``: one dict per epoch with
    ``epoch``, ``step``, ``train_loss``, ``test_accuracy`` (or ``test_loss``), ``seconds``."""

    params: Any
    opt_state: Any
    history: list


def value_and_grad_fn(loss_fn, backprop="hand"):
    """``(params, batch) -> (loss, grads)`` by the hand-written engine or by ``jax``."""
    if backprop == "hand":
        return hand_backprop.value_and_grad(loss_fn)
    if backprop == "jax":
        return jax.value_and_grad(loss_fn)
    raise ValueError(f"expected backprop in {BACKPROPS}, got {backprop!r}")


def make_step(loss_fn, optimizer, backprop="hand"):
    """The (unjitted) SGD step ``(params, opt_state, batch) -> (params, opt_state, loss)``.

    ``loss`` is the minibatch loss at the incoming ``params`` (before the update).
    """
    vg = value_and_grad_fn(loss_fn, backprop)

    def step(params, opt_state, batch):
        loss, grads = vg(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return apply_updates(params, updates), opt_state, loss

    return step


@functools.lru_cache(maxsize=16)
def make_evaluate(apply_fn, loss_fn, classification):
    """Jitted ``(params, x, y) -> accuracy`` (classification) or ``-> loss`` (regression)."""
    if classification:
        def evaluate(params, x, y):
            return jnp.mean(jnp.argmax(apply_fn(params, x), axis=-1) == y)
    else:
        def evaluate(params, x, y):
            return loss_fn(params, (x, y))
    return jax.jit(evaluate)


@functools.lru_cache(maxsize=16)
def _jitted_step(loss_fn, spec, backprop, mesh):
    """The jitted step for one (loss, optimizer spec, engine, mesh), compiled once and reused
    by later ``train`` calls with the same configuration (repeated runs, notebooks, tests)."""
    kind, *args = spec
    optimizer = make_optimizer(*args) if kind == "named" else args[0]
    return _jit(make_step(loss_fn, optimizer, backprop), mesh)


def _jit(step, mesh):
    return jax.jit(step) if mesh is None else parallel.jit_data_parallel(step, mesh)


def _step_for(loss_fn, opt, spec, backprop, mesh):
    try:
        hash((loss_fn, spec))
    except TypeError:  # an unhashable user optimizer: compile without the cache
        return _jit(make_step(loss_fn, opt, backprop), mesh)
    return _jitted_step(loss_fn, spec, backprop, mesh)


def all_finite(tree):
    """True when every leaf of ``tree`` is finite (checked on the host)."""
    return all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in jax.tree.leaves(tree)
               if np.issubdtype(np.asarray(leaf).dtype, np.inexact))


def _progress_bar(enabled, total, initial):
    if enabled is None:
        enabled = sys.stderr.isatty()
        if enabled:
            try:
                require("tqdm")
            except ImportError:
                enabled = False
    if not enabled:
        return None
    return require("tqdm").tqdm(total=total, initial=initial, unit="step", leave=False)


def _check_args(data, epochs, batch_size, backprop):
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"train: expected epochs to be an integer >= 1, got {epochs!r}")
    if backprop not in BACKPROPS:
        raise ValueError(f"train: expected backprop in {BACKPROPS}, got {backprop!r}")
    check_batch_size(data.x_train.shape[0], batch_size, "train")


def _kept(checkpoint):
    """The checkpoint a diverged run leaves untouched, if there is one on disk."""
    return checkpoint if checkpoint is not None and os.path.isfile(checkpoint) else None


def _resume(path, params, opt_state):
    state, meta = ckpt.load(path, like={"params": params, "opt_state": opt_state},
                            with_metadata=True)
    if not meta or "epochs_done" not in meta:
        raise ValueError(f"checkpoint {path!r} has no training metadata (epochs_done); was it "
                         "written by funcnn.train?")
    return state["params"], state["opt_state"], meta


def train(model, data, *, epochs, batch_size, learning_rate=None, momentum=0.0,
          nesterov=False, backprop="hand", optimizer="manual", seed=0, params=None,
          drop_last=False, checkpoint=None, resume=None, data_parallel=False, mesh=None,
          progress=None, callback=None):
    """Train ``model`` on ``data`` by minibatch SGD; return a :class:`TrainResult`.

    Args:
        model: a ``funcnn.models.Model`` (``init``, ``apply``, ``loss``).
        data: a :class:`funcnn.data.Dataset`; x_train: [n, ...], y_train: [n] (integer labels
            for classification, floats for regression).
        epochs: passes over the training set (in all, counting resumed ones).
        batch_size: ``|S|``, in ``[1, n]``.
        learning_rate, momentum, nesterov: for ``optimizer="manual"|"optax"``.
        backprop: ``"hand"`` (funcnn.backprop) or ``"jax"`` (jax.value_and_grad).
        optimizer: ``"manual"``, ``"optax"`` or a ``GradientTransformation``.
        seed: ``jax.random.key(seed)`` splits into the init key and the data-order key.
        params: start from these instead of ``model.init``.
        drop_last: drop each epoch's last partial batch.
        checkpoint: a ``.npz`` path written atomically after every epoch.
        resume: a checkpoint to continue from (its shapes must fit the model).
        data_parallel: shard each batch across ``mesh``'s ``"data"`` axis (default mesh: all
            devices) and replicate the parameters; the batch size must divide evenly over that
            axis, and a last batch that does not is dropped.
        progress: a tqdm bar (``None``: only when stderr is a terminal).
        callback: called with each epoch's history record.

    Raises:
        ValueError: bad arguments, or a resume checkpoint that does not fit (before anything
            is written).
        DivergedError: a non-finite loss (the checkpoint keeps the last good epoch).
    """
    _check_args(data, epochs, batch_size, backprop)
    opt = make_optimizer(optimizer, learning_rate, momentum, nesterov)
    spec = (("object", opt) if opt is optimizer else
            ("named", optimizer, learning_rate, momentum, nesterov))
    init_key, data_key = jax.random.split(jax.random.key(seed))
    params = model.init(init_key) if params is None else params
    opt_state = opt.init(params)
    history, start_epoch = [], 0
    if resume is not None:
        params, opt_state, meta = _resume(resume, params, opt_state)
        params, opt_state = jax.tree.map(jnp.asarray, (params, opt_state))
        history, start_epoch = list(meta.get("history", [])), int(meta["epochs_done"])

    classification = data.num_classes is not None
    evaluate = make_evaluate(model.apply, model.loss, classification)
    n = data.x_train.shape[0]
    x_test, y_test = data.x_test, data.y_test
    if data_parallel:
        mesh = parallel.make_mesh() if mesh is None else mesh
        parallel.check_divisible(batch_size, mesh, "train(data_parallel=True)")
        step = _step_for(model.loss, opt, spec, backprop, mesh)
        params, opt_state = parallel.replicate((params, opt_state), mesh)
        x_test, y_test = parallel.replicate((x_test, y_test), mesh)
        # the batch splits over the "data" axis only: a last batch that axis cannot divide
        drop_last = drop_last or (n % batch_size) % parallel.axis_size(
            mesh, parallel.DATA, "train(data_parallel=True)") != 0
    else:
        step = _step_for(model.loss, opt, spec, backprop, None)

    per_epoch = num_batches(n, batch_size, drop_last)
    global_step = start_epoch * per_epoch
    bar = _progress_bar(progress, epochs * per_epoch, global_step)
    try:
        for epoch in range(start_epoch, epochs):
            start, epoch_start = time.perf_counter(), (params, opt_state)
            total, seen = 0.0, 0
            for batch in batches(data.x_train, data.y_train, batch_size,
                                 key=jax.random.fold_in(data_key, epoch), drop_last=drop_last):
                params, opt_state, loss = step(params, opt_state, batch)
                loss = float(loss)
                if not math.isfinite(loss):
                    raise DivergedError(global_step, loss, epoch + 1, _kept(checkpoint),
                                        last_good=epoch_start)
                total, seen = total + loss * len(batch[1]), seen + len(batch[1])
                global_step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.4f}")
            if not all_finite(params):
                raise DivergedError(global_step, float("nan"), epoch + 1, _kept(checkpoint),
                                    detail="the parameters became non-finite after the "
                                    "last update", last_good=epoch_start)
            score = float(evaluate(params, x_test, y_test))
            record = {"epoch": epoch + 1, "step": global_step, "train_loss": total / seen,
                      ("test_accuracy" if classification else "test_loss"): score,
                      "seconds": time.perf_counter() - start}
            history.append(record)
            if checkpoint is not None:
                ckpt.save(checkpoint, {"params": params, "opt_state": opt_state},
                          metadata={"epochs_done": epoch + 1, "step": global_step,
                                    "seed": seed, "backprop": backprop,
                                    "history": history})
            if callback is not None:
                callback(record)
    finally:
        if bar is not None:
            bar.close()
    return TrainResult(params, opt_state, history)
