"""The one tree-comparison helper every test uses: structure first, then each leaf, with the
failing path in the message."""
import jax
import numpy as np


def assert_trees_close(actual, expected, rtol=1e-10, atol=1e-12, what=""):
    """Assert two pytrees have the same structure and leaf-wise close values.

    Compares in float64 (complex128 for complex leaves) on the host; NaN equals NaN. The
    message names the first failing leaf's path, the largest error among the entries that are
    not close, and the index where it happens.
    """
    a_leaves, a_tree = jax.tree_util.tree_flatten_with_path(actual)
    e_leaves, e_tree = jax.tree_util.tree_flatten_with_path(expected)
    if a_tree != e_tree:
        raise AssertionError(f"{what}tree structures differ:\n  actual:   {a_tree}\n"
                             f"  expected: {e_tree}")
    for (path, a), (_, e) in zip(a_leaves, e_leaves, strict=True):
        name = jax.tree_util.keystr(path) or "<root>"
        a = np.asarray(a)
        e = np.asarray(e)
        if a.shape != e.shape:
            raise AssertionError(f"{what}{name}: shape {a.shape} != expected {e.shape}")
        wide = np.complex128 if "c" in (a.dtype.kind, e.dtype.kind) else np.float64
        a64 = a.astype(wide) if a.dtype.kind != "V" else a
        e64 = e.astype(wide) if e.dtype.kind != "V" else e
        close = np.isclose(a64, e64, rtol=rtol, atol=atol, equal_nan=True)
        if not close.all():
            err = np.where(close, 0.0, np.abs(a64 - e64))
            err = np.where(np.isnan(err), np.inf, err)  # NaN on one side only
            idx = np.unravel_index(np.argmax(err), err.shape) if err.ndim else ()
            raise AssertionError(
                f"{what}{name}: max abs error {err.max():.3e} at index {idx} "
                f"(actual {a64[idx]!r}, expected {e64[idx]!r}; rtol={rtol}, atol={atol})")
