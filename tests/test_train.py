"""The training loop: engines and optimizers agree, determinism, resume, divergence, bad input."""
import jax
import numpy as np
import optax
import pytest

from funcnn import checkpoint, data, linreg, models
from funcnn import train as train_module
from funcnn.train import DivergedError, train
from tests.helpers import assert_trees_close

MLP = models.mlp(64, hidden=(16,), num_classes=10)
SETTINGS = dict(batch_size=32, learning_rate=0.1, momentum=0.9)


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn", reason="scikit-learn (the scripts extra) ships the data set")
    ds = data.digits("flat", dtype=np.float64)
    return ds._replace(x_train=ds.x_train[:200], y_train=ds.y_train[:200],
                       x_test=ds.x_test[:100], y_test=ds.y_test[:100])


@pytest.fixture(scope="module")
def reference(digits):
    """jax.grad + optax.sgd: the trajectory everything else is compared with."""
    return train(MLP, digits, epochs=3, backprop="jax", optimizer="optax", **SETTINGS)


def _histories_close(a, b, rtol):
    for ra, rb in zip(a, b, strict=True):
        np.testing.assert_allclose(ra["train_loss"], rb["train_loss"], rtol=rtol)
        assert ra["test_accuracy"] == rb["test_accuracy"]


def test_hand_engine_and_hand_sgd_follow_jax_and_optax(digits, reference):
    hand = train(MLP, digits, epochs=3, backprop="hand", optimizer="manual", **SETTINGS)
    assert_trees_close(hand.params, reference.params, rtol=1e-9, atol=1e-11)
    _histories_close(hand.history, reference.history, rtol=1e-10)
    assert hand.history[-1]["train_loss"] < hand.history[0]["train_loss"]
    assert [r["step"] for r in hand.history] == [7, 14, 21]


def test_same_seed_gives_bit_identical_parameters(digits):
    runs = []
    for _ in range(2):
        train_module._jitted_step.cache_clear()  # a fresh trace and compile each time
        runs.append(train(MLP, digits, epochs=2, seed=3, **SETTINGS))
    for a, b in zip(jax.tree.leaves(runs[0].params), jax.tree.leaves(runs[1].params),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = train(MLP, digits, epochs=2, seed=4, **SETTINGS)
    assert not np.array_equal(other.params["dense_0"]["w"], runs[0].params["dense_0"]["w"])


def test_resume_continues_exactly(digits, reference, tmp_path):
    path = tmp_path / "ckpt.npz"
    first = train(MLP, digits, epochs=2, backprop="jax", optimizer="optax", checkpoint=path,
                  **SETTINGS)
    assert len(first.history) == 2
    resumed = train(MLP, digits, epochs=3, backprop="jax", optimizer="optax", resume=path,
                    checkpoint=path, progress=True, **SETTINGS)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(reference.params),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    saved = checkpoint.load(path, like={"params": resumed.params,
                                        "opt_state": resumed.opt_state})
    assert_trees_close(saved["params"], resumed.params, rtol=0, atol=0)


def test_any_optax_transformation(digits):
    result = train(MLP, digits, epochs=3, batch_size=50, optimizer=optax.adam(1e-2),
                   backprop="jax")
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert set(result.opt_state[0]._fields) == {"count", "mu", "nu"}


@pytest.fixture(scope="module")
def regression():
    ds, _, _ = data.synthetic_linear(jax.random.key(0), n=64, d=3, noise=0.1,
                                     dtype=np.float64)
    return ds


def test_full_batch_training_reaches_the_closed_form(regression):
    n = regression.x_train.shape[0]
    lr = 0.9 * linreg.max_stable_learning_rate(linreg.add_bias(regression.x_train))
    result = train(models.linear_regression(3), regression, epochs=200, batch_size=n,
                   learning_rate=lr, backprop="hand")
    w = linreg.closed_form(linreg.add_bias(regression.x_train), regression.y_train)
    fitted = np.append(result.params["dense_0"]["w"][:, 0], result.params["dense_0"]["b"])
    np.testing.assert_allclose(fitted, w, rtol=1e-8, atol=1e-10)
    assert "test_loss" in result.history[-1]


def test_divergence_names_the_step_and_keeps_the_last_good_checkpoint(regression, tmp_path):
    path = tmp_path / "ckpt.npz"
    n = regression.x_train.shape[0]
    limit = linreg.max_stable_learning_rate(linreg.add_bias(regression.x_train))
    model = models.linear_regression(3)
    train(model, regression, epochs=2, batch_size=n, learning_rate=0.5 * limit,
          checkpoint=path)
    before = path.read_bytes()
    with pytest.raises(DivergedError, match=r"the loss is (inf|nan) at step \d+ \(epoch \d+\)"
                                            r".*last good checkpoint is kept") as info:
        train(model, regression, epochs=2000, batch_size=n, learning_rate=20 * limit,
              resume=path, checkpoint=path)
    assert info.value.step > 2 and info.value.checkpoint == path
    # the checkpoint holds the last epoch that ended with a finite loss and parameters
    saved, meta = checkpoint.load(path, like=jax.tree.map(np.asarray, {
        "params": model.init(jax.random.key(0)), "opt_state": ()}), with_metadata=True)
    assert meta["epochs_done"] == info.value.epoch - 1 >= 2
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(saved))
    assert path.read_bytes() != before  # epochs 3.. were still finite, and were saved


def test_bad_input_is_a_clear_error_and_writes_nothing(digits, tmp_path):
    path = tmp_path / "ckpt.npz"
    with pytest.raises(ValueError, match=r"batch_size <= the number of training examples "
                                         r"\(200\), got batch_size=201"):
        train(MLP, digits, epochs=1, batch_size=201, learning_rate=0.1, checkpoint=path)
    with pytest.raises(ValueError, match="learning rate > 0"):
        train(MLP, digits, epochs=1, batch_size=32, learning_rate=-0.1, checkpoint=path)
    with pytest.raises(ValueError, match="backprop in"):
        train(MLP, digits, epochs=1, batch_size=32, learning_rate=0.1, backprop="torch")
    assert not path.exists()

    other = models.mlp(64, hidden=(8,), num_classes=10)
    checkpoint.save(path, {"params": other.init(jax.random.key(0)), "opt_state": ()},
                    metadata={"epochs_done": 1})
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"parameter params/dense_0/b has shape \(8,\), "
                                         r"the model expects \(16,\)"):
        train(MLP, digits, epochs=2, batch_size=32, learning_rate=0.1, resume=path,
              checkpoint=path)
    path.write_bytes(before[: len(before) // 3])
    with pytest.raises(ValueError, match=r"ckpt.npz' is not a complete .npz checkpoint"):
        train(MLP, digits, epochs=2, batch_size=32, learning_rate=0.1, resume=path,
              checkpoint=path)
    assert path.read_bytes() == before[: len(before) // 3]
