"""Checkpoints: a pytree saved as ``.npz``, one entry per leaf keyed by its pytree path.

A key reads like the path in an error message: ``params/dense_0/w``,
``opt_state/momentum/dense_0/b``, ``opt_state/0/trace/conv2d_0/w``. Files are written whole
or not at all (a temporary file in the same folder, flushed, then ``os.replace``d over the
target), so a crash or a failed run never leaves half a checkpoint and never clobbers a good
one. Loading never unpickles (``allow_pickle=False``): a checkpoint is untrusted input, and
every leaf is checked against a template (the model's own ``init`` output) for its path,
shape and dtype.

    >>> save("runs/ckpt.npz", {"params": params, "epoch": np.int32(3)})
    >>> state = load("runs/ckpt.npz", like={"params": params, "epoch": np.int32(0)})
"""
import json
import os
import tempfile
import zipfile

import jax
import numpy as np

META = "__meta__"


def _key_name(entry):
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def path_name(path):
    """``(DictKey('params'), DictKey('dense_0'), DictKey('w'))`` -> ``"params/dense_0/w"``."""
    return "/".join(_key_name(entry) for entry in path) or "<root>"


def flatten(tree):
    """``{path_name: numpy array}`` for every leaf of ``tree`` (in tree order)."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    out = {}
    for path, leaf in leaves:
        name = path_name(path)
        if name in out or name == META:
            raise ValueError(f"checkpoint: two leaves share the key {name!r}; use dict keys "
                             "without '/'")
        out[name] = np.asarray(leaf)
    return out


def save(path, tree, metadata=None):
    """Write ``tree`` to ``path`` (``.npz``) atomically.

    Args:
        path: the target file; its folder is created if missing.
        tree: a pytree of arrays (dicts, lists, tuples, NamedTuples).
        metadata: an optional JSON-serialisable dict, stored as a string under ``__meta__``.
    """
    path = os.fspath(path)
    arrays = flatten(tree)
    for name, leaf in arrays.items():
        if leaf.dtype == object:
            raise TypeError(f"checkpoint: leaf {name!r} is not an array of numbers (dtype "
                            "object); only numeric arrays are saved")
    if metadata is not None:
        arrays[META] = np.asarray(json.dumps(metadata))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def read(path):
    """Every array of a checkpoint file, as ``({key: array}, metadata or None)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a complete ``.npz`` (truncated, corrupt, or holding pickled objects).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint: no such file {path!r}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise ValueError(f"checkpoint {path!r} is not a complete .npz checkpoint (truncated, "
                         f"corrupt, or holding pickled objects): {type(e).__name__}: {e}"
                         ) from e
    metadata = None
    if META in arrays:
        try:
            metadata = json.loads(str(arrays.pop(META)))
        except json.JSONDecodeError as e:
            raise ValueError(f"checkpoint {path!r}: the {META} entry is not JSON: {e}") from e
    return arrays, metadata


def load(path, like, with_metadata=False):
    """Load a checkpoint into the structure of ``like``, checking every leaf.

    Args:
        path: a file written by :func:`save`.
        like: a template pytree (e.g. ``model.init(key)``) giving the expected paths, shapes
            and dtypes.
        with_metadata: also return the metadata dict.

    Returns:
        A pytree like ``like`` with the saved values (NumPy arrays), and the metadata if asked.

    Raises:
        ValueError: a missing or unexpected key, or a leaf whose shape or dtype differs from
            the template's; the message names the file and the parameter path.
    """
    arrays, metadata = read(path)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    expected = [path_name(p) for p, _ in leaves]
    missing = [k for k in expected if k not in arrays]
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise ValueError(f"checkpoint {os.fspath(path)!r} does not fit the model: missing keys "
                         f"{missing[:8]}, unexpected keys {extra[:8]} (expected "
                         f"{len(expected)} keys, found {len(arrays)})")
    values = []
    for name, (_, template) in zip(expected, leaves, strict=True):
        value, template = arrays[name], np.asarray(template)
        if value.shape != template.shape:
            raise ValueError(f"checkpoint {os.fspath(path)!r}: parameter {name} has shape "
                             f"{value.shape}, the model expects {template.shape}")
        if value.dtype != template.dtype:
            raise ValueError(f"checkpoint {os.fspath(path)!r}: parameter {name} has dtype "
                             f"{value.dtype}, the model expects {template.dtype} (was it "
                             "saved with a different jax_enable_x64 setting?)")
        values.append(value)
    tree = jax.tree_util.tree_unflatten(treedef, values)
    return (tree, metadata) if with_metadata else tree
