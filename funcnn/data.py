"""Data with no download: minibatches, scikit-learn's bundled datasets, synthetic tasks.

- :func:`batches` iterates minibatches ``S ⊆ [n]`` of a dataset, reshuffled every epoch from a
  JAX key (the notes' stochastic gradient descent), keeping or dropping a last partial batch.
- :func:`digits` (classification, 1797 8x8 images, 10 classes) as flat vectors, NHWC images,
  or 8-step sequences of 8 features (rows as time steps) for the RNN and the transformer;
  :func:`diabetes` (regression, 442 patients, 10 features); both ship with scikit-learn.
- :func:`synthetic_linear` (linear data with known weights) and :func:`synthetic_sequence`
  (a sequence classification task that needs the whole sequence).

Arrays are NumPy on the host; the jitted training step moves them to the device.

    >>> data = digits("flat")                     # x_train: [1437, 64], y_train: [1437]
    >>> for x, y in batches(data.x_train, data.y_train, 32, key=jax.random.key(0)):
    ...     ...
"""
import importlib
import math
from typing import NamedTuple

import jax
import numpy as np

DIGITS_LAYOUTS = ("flat", "image", "sequence")


class Dataset(NamedTuple):
    """A train/test split. ``num_classes`` is ``None`` for regression (float targets)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    num_classes: int | None


def require(module, extra="scripts"):
    """Import an optional dependency, or raise ``ImportError`` naming the extra to install.

    Example: ``require("sklearn.datasets")``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        package = {"sklearn": "scikit-learn"}.get(top, top)
        raise ImportError(f"funcnn needs the optional dependency `{package}` (module "
                          f"`{module}`) here; install it with: pip install 'funcnn[{extra}]'"
                          ) from e


def num_batches(n, batch_size, drop_last=False):
    """How many minibatches :func:`batches` yields for ``n`` examples."""
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def check_batch_size(n, batch_size, where="batches"):
    """Raise ``ValueError`` unless ``1 <= batch_size <= n``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(f"{where}: expected an integer batch_size, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"{where}: expected batch_size >= 1, got batch_size={batch_size}")
    if batch_size > n:
        raise ValueError(f"{where}: expected batch_size <= the number of training examples "
                         f"({n}), got batch_size={batch_size}; use a batch size of at most "
                         f"{n}")


def batches(x, y, batch_size, key=None, drop_last=False):
    """Yield minibatches ``(x[S], y[S])`` covering the dataset once (one epoch).

    Args:
        x: [n, ...] inputs; y: [n, ...] targets (same first axis).
        batch_size: ``|S|``, in ``[1, n]``.
        key: a JAX PRNG key; the order is ``jax.random.permutation(key, n)``, so the same key
            gives the same batches. ``None`` keeps the data order. For a new order every
            epoch pass ``jax.random.fold_in(key, epoch)``.
        drop_last: drop a last batch smaller than ``batch_size`` (else it is yielded).

    Yields:
        ``(x_b, y_b)`` with ``x_b: [batch_size, ...]`` (the last one possibly smaller).
    """
    x = np.asarray(x)
    y = np.asarray(y)
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"batches: x and y must have the same number of examples, got x "
                         f"shape {x.shape} and y shape {y.shape}")
    check_batch_size(n, batch_size)
    order = np.arange(n) if key is None else np.asarray(jax.random.permutation(key, n))
    for b in range(num_batches(n, batch_size, drop_last)):
        idx = order[b * batch_size:(b + 1) * batch_size]
        yield x[idx], y[idx]


def split(x, y, test_fraction, seed, name, num_classes):
    """A :class:`Dataset` from a fixed random permutation (``numpy`` generator ``seed``)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"{name}: expected test_fraction in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(x.shape[0])
    n_test = int(round(test_fraction * x.shape[0]))
    test, train = order[:n_test], order[n_test:]
    return Dataset(x[train], y[train], x[test], y[test], name, num_classes)


def digits(layout="flat", test_fraction=0.2, seed=0, dtype=np.float32):
    """scikit-learn's bundled handwritten digits, pixels scaled to [0, 1].

    Args:
        layout: ``"flat"`` x: [n, 64]; ``"image"`` x: [n, 8, 8, 1] (NHWC);
            ``"sequence"`` x: [n, 8, 8] (8 time steps, one image row of 8 features each).
        test_fraction: held-out share (0.2: 1437 train, 360 test).
        seed: the split's permutation.

    Returns:
        A :class:`Dataset` with integer labels y: [n] in [0, 10).
    """
    if layout not in DIGITS_LAYOUTS:
        raise ValueError(f"digits: expected layout in {DIGITS_LAYOUTS}, got {layout!r}")
    raw = require("sklearn.datasets").load_digits()
    images = (raw.images / 16.0).astype(dtype)  # [n, 8, 8]
    x = {"flat": images.reshape(-1, 64), "image": images[..., None],
         "sequence": images}[layout]
    return split(x, raw.target.astype(np.int32), test_fraction, seed, f"digits-{layout}", 10)


def diabetes(test_fraction=0.2, seed=0, dtype=np.float32):
    """scikit-learn's bundled diabetes regression: x: [n, 10], y: [n].

    Features and target are standardised (zero mean, unit variance) with the training split's
    statistics, so one learning rate suits every feature.
    """
    raw = require("sklearn.datasets").load_diabetes()
    data = split(raw.data, raw.target, test_fraction, seed, "diabetes", None)
    mx, sx = data.x_train.mean(0), data.x_train.std(0)
    my, sy = data.y_train.mean(), data.y_train.std()
    cast = lambda a: a.astype(dtype)
    return data._replace(x_train=cast((data.x_train - mx) / sx),
                         x_test=cast((data.x_test - mx) / sx),
                         y_train=cast((data.y_train - my) / sy),
                         y_test=cast((data.y_test - my) / sy))


def synthetic_linear(key, n=256, d=5, noise=0.1, test_fraction=0.25, dtype=np.float32):
    """y = x @ w_true + b_true + noise * eps with x, eps ~ N(0, 1) and known weights.

    Returns:
        ``(dataset, w_true: [d], b_true: scalar)``.

    Example: ``data, w, b = synthetic_linear(jax.random.key(0), n=100, d=3)``.
    """
    kw, kb, kx, ke = jax.random.split(key, 4)
    w = np.asarray(jax.random.normal(kw, (d,)), np.float64)
    b = float(jax.random.normal(kb, ()))
    x = np.asarray(jax.random.normal(kx, (n, d)), np.float64)
    y = x @ w + b + noise * np.asarray(jax.random.normal(ke, (n,)), np.float64)
    data = split(x.astype(dtype), y.astype(dtype), test_fraction, 0, "synthetic-linear", None)
    return data, w.astype(dtype), np.dtype(dtype).type(b)


def synthetic_sequence(key, n=512, time=8, features=4, test_fraction=0.25, dtype=np.float32):
    """A sequence task: label = the feature with the largest sum over all time steps.

    x: [n, time, features] ~ N(0, 1); y: [n] in [0, features). No single step decides the
    label: a model must accumulate evidence over the whole sequence.
    """
    x = np.asarray(jax.random.normal(key, (n, time, features)), np.float64)
    y = np.argmax(x.sum(axis=1), axis=1).astype(np.int32)
    return split(x.astype(dtype), y, test_fraction, 0, "synthetic-sequence", features)
