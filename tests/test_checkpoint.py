"""Checkpoints: path keys, atomic writes, no pickle, and clear errors for bad files."""
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import checkpoint, optim
from tests.helpers import assert_trees_close


def _tree():
    params = {"dense_0": {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.zeros(3)},
              "flatten_0": {}}
    return {"params": params, "opt_state": optim.SGDState(momentum=jax.tree.map(jnp.copy, params)),
            "step": jnp.array(7, jnp.int32)}


def test_round_trip_and_readable_keys(tmp_path):
    path = tmp_path / "ckpt.npz"
    checkpoint.save(path, _tree(), metadata={"epochs_done": 2})
    with zipfile.ZipFile(path) as z:
        names = {n.removesuffix(".npy") for n in z.namelist()}
    assert names == {"params/dense_0/w", "params/dense_0/b", "opt_state/momentum/dense_0/w",
                     "opt_state/momentum/dense_0/b", "step", "__meta__"}
    tree, meta = checkpoint.load(path, like=_tree(), with_metadata=True)
    assert_trees_close(tree, _tree())
    assert isinstance(tree["opt_state"], optim.SGDState) and meta == {"epochs_done": 2}
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary file left behind


def test_shape_mismatch_names_the_parameter_path(tmp_path):
    path = tmp_path / "ckpt.npz"
    checkpoint.save(path, _tree())
    like = _tree()
    like["params"]["dense_0"]["w"] = jnp.zeros((2, 4))
    with pytest.raises(ValueError, match=r"ckpt.npz.*parameter params/dense_0/w has shape "
                                         r"\(2, 3\), the model expects \(2, 4\)"):
        checkpoint.load(path, like=like)
    like = _tree()
    like["params"]["dense_1"] = {"w": jnp.zeros(1)}
    with pytest.raises(ValueError, match=r"missing keys \['params/dense_1/w'\]"):
        checkpoint.load(path, like=like)
    like = _tree()
    like["step"] = jnp.array(7.0)
    with pytest.raises(ValueError, match="parameter step has dtype int32, the model expects "
                                         "float64"):
        checkpoint.load(path, like=like)


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "ckpt.npz"
    checkpoint.save(path, _tree())
    blob = path.read_bytes()
    for cut in (len(blob) // 2, 10, 0):
        path.write_bytes(blob[:cut])
        with pytest.raises(ValueError, match=r"ckpt.npz' is not a complete .npz checkpoint"):
            checkpoint.load(path, like=_tree())
    with pytest.raises(FileNotFoundError, match="no such file"):
        checkpoint.load(tmp_path / "missing.npz", like=_tree())


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, **{"step": np.array([{"x": 1}], dtype=object)})
    with pytest.raises(ValueError, match="pickled objects"):
        checkpoint.load(path, like={"step": np.zeros(1)})


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    checkpoint.save(path, _tree())
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, _tree())
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]
