"""Linear regression: the GD update, the closed form, convergence and divergence."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import data, linreg
from funcnn.train import DivergedError
from tests.helpers import assert_trees_close


@pytest.fixture(scope="module")
def synthetic():
    ds, w, b = data.synthetic_linear(jax.random.key(0), n=200, d=4, noise=0.01,
                                     dtype=np.float64)
    return linreg.add_bias(ds.x_train), jnp.asarray(ds.y_train), w, b


@pytest.fixture(scope="module")
def diabetes():
    pytest.importorskip("sklearn", reason="scikit-learn (the scripts extra) ships the data set")
    ds = data.diabetes(dtype=np.float64)
    return linreg.add_bias(ds.x_train), jnp.asarray(ds.y_train)


def test_gradient_is_the_notes_formula_and_jax_grad(synthetic):
    x, y, _, _ = synthetic
    w = jnp.linspace(-1.0, 1.0, x.shape[1])
    expected = 2.0 / x.shape[0] * x.T @ (x @ w - y)
    assert_trees_close(linreg.gradient(w, x, y), expected)
    assert_trees_close(linreg.gradient(w, x, y), jax.grad(linreg.mse)(w, x, y))
    assert_trees_close(linreg.gd_step(w, x, y, 0.1), w - 0.1 * expected)


def test_closed_form_recovers_known_weights(synthetic):
    x, y, w_true, b_true = synthetic
    w = linreg.closed_form(x, y)
    np.testing.assert_allclose(w[:-1], w_true, atol=5e-3)
    np.testing.assert_allclose(w[-1], b_true, atol=5e-3)
    # the normal equations hold: the gradient vanishes at the solution
    np.testing.assert_allclose(linreg.gradient(w, x, y), 0.0, atol=1e-12)


def test_gd_converges_to_closed_form_on_synthetic(synthetic):
    x, y, _, _ = synthetic
    alpha = 0.9 * linreg.max_stable_learning_rate(x)
    w, losses = linreg.fit_gd(x, y, alpha, steps=500)
    assert_trees_close(w, linreg.closed_form(x, y), rtol=1e-9, atol=1e-10)
    assert losses.shape == (501,) and losses[-1] < losses[0]


def test_gd_converges_to_closed_form_on_diabetes(diabetes):
    x, y = diabetes
    alpha = 1.9 / (2.0 / linreg.max_stable_learning_rate(x))  # 1.9 / lambda_max
    w, losses = linreg.fit_gd(x, y, alpha, steps=20000)
    assert_trees_close(w, linreg.closed_form(x, y), rtol=1e-8, atol=1e-9)
    assert np.all(np.diff(losses) <= 1e-12)  # below 2 / lambda_max the loss never rises


def test_learning_rate_above_two_over_lambda_max_diverges(diabetes):
    x, y = diabetes
    limit = linreg.max_stable_learning_rate(x)
    with pytest.raises(DivergedError, match=r"at step \d+.*2 / lambda_max") as info:
        linreg.fit_gd(x, y, 1.5 * limit, steps=3000)
    assert 0 < info.value.step <= 3000 and not np.isfinite(info.value.loss)
    # just below the limit the same run converges
    w, _ = linreg.fit_gd(x, y, 0.99 * limit, steps=3000)
    assert np.all(np.isfinite(w))


def test_bad_input(synthetic):
    x, y, _, _ = synthetic
    with pytest.raises(ValueError, match="learning rate > 0"):
        linreg.fit_gd(x, y, 0.0, steps=3)
    with pytest.raises(ValueError, match=r"expected x \[n, d\] and y \[n\]"):
        linreg.closed_form(x, y[:-1])
