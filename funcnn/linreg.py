"""Linear regression (the notes' Activity 3): gradient descent and the closed form.

Model ``y_hat = X w`` with ``X: [n, d]`` (append a column of ones with :func:`add_bias` for an
intercept), loss ``L(w) = (1/n) ||X w - y||^2``. Its gradient and Hessian are

    grad L(w) = (2/n) X^T (X w - y)          H = (2/n) X^T X   (constant)

Gradient descent, the blank of Activity 3:

    w(t+1) <- w(t) - alpha * (2/n) X^T (X w(t) - y)

Costs (``n`` examples, ``d`` features):

- one GD update: ``X w`` then ``X^T r``, two matrix-vector products: **O(n d)**;
- the closed form ``w* = argmin ||X w - y||^2``: forming ``X^T X`` is O(n d^2) and solving the
  d x d system O(d^3), **O(n d^2 + d^3)** in all. We solve by least squares (an SVD of ``X``,
  also O(n d^2 + d^3) for n >= d), which never forms an explicit inverse and does not square
  the condition number as the normal equations do.

GD converges to ``w*`` for ``0 < alpha < 2 / lambda_max(H)``; above that the component of the
error along the top eigenvector grows by ``|1 - alpha lambda_max| > 1`` each step, the loss
overflows, and :func:`fit_gd` raises :class:`funcnn.train.DivergedError` naming the step.

    >>> x1 = add_bias(x)                                   # [n, d + 1]
    >>> w_star = closed_form(x1, y)
    >>> w, losses = fit_gd(x1, y, 0.9 * max_stable_learning_rate(x1), steps=5000)
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from funcnn.optim.base import check_learning_rate
from funcnn.train import DivergedError


def _check(x, y, where):
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{where}: expected x [n, d] and y [n], got x shape {x.shape} and y "
                         f"shape {y.shape}")


def add_bias(x):
    """``[x, 1]``: x: [n, d] -> [n, d + 1], so that the last weight is the intercept."""
    x = jnp.asarray(x)
    return jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)


def mse(w, x, y):
    """``L(w) = (1/n) ||x w - y||^2``. w: [d], x: [n, d], y: [n] -> scalar."""
    r = x @ w - y  # [n]
    return jnp.mean(r * r)


def gradient(w, x, y):
    """``(2/n) x^T (x w - y)``: w: [d], x: [n, d], y: [n] -> [d]. Cost O(n d)."""
    return (2.0 / x.shape[0]) * (x.T @ (x @ w - y))


def gd_step(w, x, y, learning_rate):
    """One gradient-descent update ``w - alpha (2/n) x^T (x w - y)``; cost O(n d)."""
    return w - learning_rate * gradient(w, x, y)


def closed_form(x, y):
    """The least-squares solution ``argmin_w ||x w - y||^2``: x: [n, d], y: [n] -> [d].

    Solved by ``jnp.linalg.lstsq`` (SVD), no explicit inverse; cost O(n d^2 + d^3).
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    _check(x, y, "closed_form")
    return jnp.linalg.lstsq(x, y)[0]


def hessian(x):
    """``H = (2/n) x^T x``: x: [n, d] -> [d, d] (the loss is quadratic: H is constant)."""
    x = jnp.asarray(x)
    return (2.0 / x.shape[0]) * (x.T @ x)


def max_stable_learning_rate(x):
    """``2 / lambda_max(H)``: GD converges for any smaller positive learning rate."""
    return 2.0 / float(jnp.linalg.eigvalsh(hessian(x))[-1])


@jax.jit
def _run(w0, x, y, alphas):
    def body(w, alpha):
        return gd_step(w, x, y, alpha), mse(w, x, y)

    w, losses = lax.scan(body, w0, alphas)
    return w, losses, mse(w, x, y)


def fit_gd(x, y, learning_rate, steps, w0=None):
    """Run ``steps`` gradient-descent updates from ``w0`` (zeros by default).

    Args:
        x: [n, d]; y: [n]; learning_rate: ``alpha > 0``; steps: number of updates.

    Returns:
        ``(w: [d], losses: [steps + 1])``: the loss before every update and after the last.

    Raises:
        DivergedError: the loss became inf or NaN; names the first such step (0 = before
            any update) and the last finite loss.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    _check(x, y, "fit_gd")
    alpha = check_learning_rate(learning_rate, "fit_gd")
    w0 = jnp.zeros(x.shape[1], x.dtype) if w0 is None else jnp.asarray(w0, x.dtype)
    w, losses, final = _run(w0, x, y, jnp.full((int(steps),), alpha, x.dtype))
    losses = np.append(np.asarray(losses), np.asarray(final))
    bad = ~np.isfinite(losses)
    if bad.any():
        step = int(np.argmax(bad))
        last = float(losses[step - 1]) if step else float("nan")
        raise DivergedError(step, float(losses[step]), detail=(
            f"linear-regression gradient descent with learning_rate={alpha:g}; the largest "
            f"stable rate is 2 / lambda_max(H) = {max_stable_learning_rate(x):.6g} (last "
            f"finite loss {last:.6g})"))
    return w, losses
