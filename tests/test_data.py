"""Minibatches and the bundled/synthetic datasets."""
import jax
import numpy as np
import pytest

from funcnn import data


def _epoch(n, batch_size, key, drop_last=False):
    x = np.arange(n)[:, None] * np.ones((1, 3))
    return list(data.batches(x, np.arange(n), batch_size, key=key, drop_last=drop_last))


def test_batches_cover_every_example_once_per_epoch():
    out = _epoch(10, 4, jax.random.key(0))
    assert [len(y) for _, y in out] == [4, 4, 2]
    ids = np.concatenate([y for _, y in out])
    assert sorted(ids) == list(range(10)) and list(ids) != list(range(10))
    for x, y in out:
        np.testing.assert_array_equal(x[:, 0], y)  # x and y stay aligned


def test_drop_last_and_shuffle_per_key():
    assert [len(y) for _, y in _epoch(10, 4, None, drop_last=True)] == [4, 4]
    assert data.num_batches(10, 4) == 3 and data.num_batches(10, 4, drop_last=True) == 2
    key = jax.random.key(3)
    order = lambda k: np.concatenate([y for _, y in _epoch(50, 8, k)])
    np.testing.assert_array_equal(order(key), order(key))
    assert not np.array_equal(order(jax.random.fold_in(key, 0)),
                              order(jax.random.fold_in(key, 1)))
    np.testing.assert_array_equal(order(None), np.arange(50))


def test_bad_batch_size_is_a_clear_error():
    with pytest.raises(ValueError, match=r"batch_size <= the number of training examples "
                                         r"\(10\), got batch_size=11"):
        _epoch(10, 11, None)
    with pytest.raises(ValueError, match="batch_size >= 1"):
        _epoch(10, 0, None)
    with pytest.raises(ValueError, match="same number of examples"):
        list(data.batches(np.ones((4, 2)), np.ones(3), 2))


def test_digits_layouts():
    pytest.importorskip("sklearn", reason="scikit-learn (the scripts extra) ships the data set")
    flat = data.digits("flat")
    assert flat.x_train.shape == (1438, 64) and flat.x_test.shape == (359, 64)
    assert flat.num_classes == 10 and flat.y_train.dtype == np.int32
    assert 0.0 <= flat.x_train.min() and flat.x_train.max() <= 1.0
    image, seq = data.digits("image"), data.digits("sequence")
    assert image.x_train.shape == (1438, 8, 8, 1) and seq.x_train.shape == (1438, 8, 8)
    np.testing.assert_array_equal(image.x_train[:, :, :, 0], seq.x_train)
    np.testing.assert_array_equal(seq.x_train.reshape(-1, 64), flat.x_train)
    np.testing.assert_array_equal(seq.y_test, flat.y_test)
    with pytest.raises(ValueError, match="layout"):
        data.digits("nhwc")


def test_diabetes_is_standardised_regression():
    pytest.importorskip("sklearn", reason="scikit-learn (the scripts extra) ships the data set")
    ds = data.diabetes(dtype=np.float64)
    assert ds.num_classes is None and ds.x_train.shape[1] == 10
    np.testing.assert_allclose(ds.x_train.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(ds.x_train.std(0), 1.0, atol=1e-12)
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 442


def test_synthetic_tasks():
    ds, w, b = data.synthetic_linear(jax.random.key(0), n=100, d=3, noise=0.0,
                                     dtype=np.float64)
    np.testing.assert_allclose(ds.x_train @ w + b, ds.y_train, atol=1e-12)
    seq = data.synthetic_sequence(jax.random.key(1), n=64, time=5, features=3)
    assert seq.x_train.shape == (48, 5, 3) and seq.num_classes == 3
    np.testing.assert_array_equal(seq.y_train, seq.x_train.sum(1).argmax(1))


def test_missing_optional_dependency_names_the_extra():
    with pytest.raises(ImportError, match=r"pip install 'funcnn\[scripts\]'"):
        data.require("funcnn_no_such_module")
