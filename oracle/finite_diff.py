"""Central finite differences in float64 with a Richardson error estimate and a kink test.

Everything here is about one scalar function ``s(theta)`` of a flat float64 vector (the
oracle reduces a vector-Jacobian product to it: ``s = <cotangent, f(theta)>``) and a set of
directions ``u_d`` with steps ``h_d``. For each direction the stencil is

    s(theta),  s(theta +- t u_d)  for t in (h_d, h_d / 2, h_d / 4)          (7 values)

from which

    D_k = (s(+t_k) - s(-t_k)) / (2 t_k)        central differences, error c t_k^2 + O(t_k^4)
    R_1 = (4 D_2 - D_1) / 3,  R_2 = (4 D_3 - D_2) / 3     Richardson, error O(t^4)
    derivative = R_2,  error estimate = |R_2 - R_1| + rounding

(``|R_2 - R_1|`` bounds the O(t^4) error of R_1 and so, generously, of R_2; rounding is
``NOISE_ULPS * eps64 * (|s| + sum |cotangent * f|)`` per evaluation, divided by the step).
The derivative along ``u_d`` is ``<grad s, u_d>``: ``u_d`` a basis vector gives one
coordinate, a random ``u_d`` a directional derivative.

Kinks. A smooth function makes both ``D_k`` and the second differences
``Q_k = (s(+t_k) - 2 s(theta) + s(-t_k)) / t_k^2`` converge like t^2: each difference of
consecutive terms is a quarter of the one before. Where either sequence breaks that law by
more than half of the expected term (plus rounding), the function is not smooth within the
stencil: there is a kink or a jump within a step of theta (ReLU at 0, a max tie, a step
function), and the direction is reported as "no derivative here" instead of compared.
(``Q`` catches a kink at theta itself, where the central differences are all equal; ``D``
catches the ones between the stencil points.)

Steps: ``h = STEP_FRACTION * max(|x_i|, scale)`` per coordinate, where scale is the rms of the
leaf (1 for an all-zero leaf); a random direction gets ``h = STEP_FRACTION * scale``. A given
``step_scale`` makes every step ``STEP_FRACTION * step_scale``.

Random directions are standard normal, drawn by ``numpy.random.default_rng((seed, leaf))``
where leaf is the leaf's position among the differentiated leaves: the same call gives the
same directions on every machine.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

STEP_FRACTION = 4e-3
OFFSETS = np.array([1.0, -1.0, 0.5, -0.5, 0.25, -0.25])  # t / h for the six outer points
NOISE_ULPS = 64.0
EPS64 = float(np.finfo(np.float64).eps)


class Directions(NamedTuple):
    """Directions within one leaf: ``u: [D, size]`` (rows), ``h: [D]`` steps, and a label
    per row: the coordinate's index tuple, or ``"direction k"``."""

    u: np.ndarray
    h: np.ndarray
    labels: list
    coordinatewise: bool


class Estimate(NamedTuple):
    """Finite-difference results per direction, all ``[D]``: ``deriv`` = R_2, ``err`` its
    estimated error, ``smooth`` False where the stencil straddles a kink."""

    deriv: np.ndarray
    err: np.ndarray
    smooth: np.ndarray


def leaf_scale(x: np.ndarray) -> float:
    """The rms of the entries of ``x`` (1.0 if they are all zero)."""
    x = np.asarray(x, np.float64)
    rms = float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0
    return rms if rms > 0 else 1.0


def directions_for(x: np.ndarray, max_coords: int, num_directions: int, rng_key,
                   step_scale=None) -> Directions:
    """Every coordinate of ``x`` if ``x.size <= max_coords``, else ``num_directions`` random
    normal directions from ``numpy.random.default_rng(rng_key)``. ``step_scale`` (optional)
    replaces ``max(|x_i|, scale)`` in the step: for functions whose scale of variation is not
    the input's magnitude (softmax of logits near 1000 varies on a scale of 1)."""
    x = np.asarray(x, np.float64)
    scale = leaf_scale(x) if step_scale is None else float(step_scale)
    flat = x.reshape(-1)
    if flat.size <= max_coords:
        u = np.eye(flat.size)
        h = STEP_FRACTION * (np.maximum(np.abs(flat), scale) if step_scale is None
                             else np.full(flat.size, scale))
        labels = [tuple(int(i) for i in np.unravel_index(k, x.shape)) for k in range(flat.size)]
        return Directions(u, h, labels, True)
    rng = np.random.default_rng(rng_key)
    u = rng.standard_normal((num_directions, flat.size))
    h = np.full(num_directions, STEP_FRACTION * scale)
    return Directions(u, h, [f"direction {k}" for k in range(num_directions)], False)


def near_known_kink(x: np.ndarray, dirs: Directions, kinks) -> np.ndarray:
    """``[D]`` bool: the stencil of direction d reaches a known kink point of an input
    coordinate it moves (|x_i - k| <= h_d |u_di| for some i with u_di != 0)."""
    flat = np.asarray(x, np.float64).reshape(-1)
    hit = np.zeros(len(dirs.h), bool)
    for k in kinks:
        dist = np.abs(flat - k)[None, :]  # [1, size]
        reach = dirs.h[:, None] * np.abs(dirs.u)  # [D, size]
        hit |= np.any((reach > 0) & (dist <= reach), axis=1)
    return hit


def _breaks_square_law(a1, a2, a3, noise):
    """True where a1, a2, a3 (steps h, h/2, h/4) do not converge like h^2 beyond noise."""
    e1 = a1 - a2
    e2 = a2 - a3
    return np.abs(e2 - e1 / 4) > 0.5 * np.abs(e1) / 4 + 4 * noise


def estimate(s0: float, s_abs: float, outer: np.ndarray, h: np.ndarray) -> Estimate:
    """Richardson derivative, error and smoothness from a stencil.

    Args:
        s0: s(theta).
        s_abs: sum |cotangent * f(theta)|, the magnitude that rounding is relative to.
        outer: [D, 6] values s(theta + t u_d) for t / h_d in ``OFFSETS``.
        h: [D] steps.
    """
    outer = np.asarray(outer, np.float64)
    noise_s = NOISE_ULPS * EPS64 * (abs(s0) + s_abs + np.max(np.abs(outer), axis=1))  # [D]
    t = h[:, None] * np.array([1.0, 0.5, 0.25])[None, :]  # [D, 3]
    plus, minus = outer[:, 0::2], outer[:, 1::2]  # [D, 3] each, steps h, h/2, h/4
    d = (plus - minus) / (2 * t)
    q = (plus - 2 * s0 + minus) / np.square(t)
    noise_d = noise_s[:, None] / t
    noise_q = 4 * noise_s[:, None] / np.square(t)
    r1 = (4 * d[:, 1] - d[:, 0]) / 3
    r2 = (4 * d[:, 2] - d[:, 1]) / 3
    err = np.abs(r2 - r1) + 2 * noise_d[:, 2]
    rough = (_breaks_square_law(d[:, 0], d[:, 1], d[:, 2], noise_d.sum(axis=1))
             | _breaks_square_law(q[:, 0], q[:, 1], q[:, 2], noise_q.sum(axis=1)))
    finite = np.all(np.isfinite(outer), axis=1)
    return Estimate(np.where(finite, r2, np.nan), np.where(finite, err, np.inf), ~rough & finite)
