"""How to call the public functions of ``jax.nn``, ``jax.scipy.special`` and ``optax.losses``.

Which functions are tested is NOT listed here: ``library_points.public_functions`` finds them.
The default call passes one float64 array of shape (3, 4) per required positional parameter
and differentiates with respect to all of them. This file only says:

- ``HOW``: how to call a function whose signature is not that (labels, axis, integer orders,
  keyword-only arguments), where to draw its random point (its domain), and extra variants of
  a call (``gelu(approximate=False)``, a masked attention). Each function maps to a tuple of
  ``Call``s;
- ``EXCLUDED``: functions that are not differentiable functions of float arrays at all, each
  with the reason.

A public function that is in neither and cannot be called the default way fails the test, with
a message saying to add it here.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tests.backprop.library_points import ARRAY_POINTS, ATOL, RTOL
from tests.backprop.sampling import Sampler, normal, uniform

SHAPE = (3, 4)  # (batch, classes) for the losses; any shape for elementwise functions


class Call(NamedTuple):
    """One way to call a library function ``f``.

    apply: ``apply(f, *diff_args) -> output``; None calls ``f(*diff_args)``.
    n_diff: how many float arguments are differentiated; None: ``f``'s required positionals.
    shapes: one shape per differentiated argument; None: ``SHAPE`` for each.
    domain: one sampler per differentiated argument for the "random" point; None: normal.
    scalar: whether the Python-float cases apply (False where the call needs arrays).
    label: names the variant in the test id.
    points: the array points (library_points.ARRAY_POINTS; fewer only with a reason).
    rtol, atol: the criterion (library_points.RTOL/ATOL; looser only with a reason).
    """

    apply: Callable | None = None
    n_diff: int | None = None
    shapes: tuple | None = None
    domain: tuple | None = None
    scalar: bool = True
    label: str = "default"
    points: tuple = ARRAY_POINTS
    rtol: float = RTOL
    atol: float = ATOL


def promoting(apply: Callable) -> Callable:
    """``apply`` with NumPy rank promotion allowed while the library function traces: some
    library code broadcasts (C,) against (B, C) implicitly, which the strict test
    configuration (tests/conftest.py) refuses. The engine's own rules still run strict."""
    def call(f, *args):
        with jax.numpy_rank_promotion("allow"):
            return apply(f, *args)

    return call


def on(*domain: Sampler, **kw) -> tuple[Call]:
    """The default call with a domain for the random point (one sampler per argument)."""
    return (Call(domain=domain, **kw),)


POS = uniform(0.2, 4.0, SHAPE)
UNIT = uniform(0.05, 0.95, SHAPE)
N = normal(SHAPE)

# --- fixed, non-differentiated arguments (labels, integer orders, paddings) -------------------
_rng = np.random.default_rng(11)
PROBS = np.asarray(jax.nn.softmax(_rng.standard_normal(SHAPE)))  # rows sum to 1
LOG_PROBS = np.log(PROBS)
INT_LABELS = np.array([0, 3, 1], np.int32)  # one class id per row of SHAPE
ONE_HOT = np.eye(SHAPE[1])[INT_LABELS]
BINARY = _rng.integers(0, 2, SHAPE).astype(np.float64)
SIGNS = 2.0 * BINARY - 1.0
DEGREES = np.array([0, 1, 2, 3], np.int32)
ORDERS = np.array([[0, 1, 2, 3], [1, 2, 0, 1], [3, 0, 2, 1]], np.int32)  # integer orders
CTC_SHAPE = (2, 5, 4)  # (batch, time, classes); class 0 is the blank
CTC_LOGIT_PAD = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 1, 1]], np.float64)
CTC_LABELS = np.array([[1, 2, 2], [3, 1, 0]], np.int32)
CTC_LABEL_PAD = np.array([[0, 0, 0], [0, 0, 1]], np.float64)
ATTN = (1, 3, 2, 4)  # (batch, time, heads, head_dim)
KEY_MASK = np.array([True, True, False])[None, None, None, :]  # (B, N, T, S): last key padded
# jax.nn.dot_product_attention casts the logits to float32 for the softmax (by design, in every
# dtype), so two correct gradients differ by float32 rounding (measured: up to 2e-6 relative,
# 1e-8 absolute): tolerance a few float32 eps. At +-30 and +-1000 the float32 logits (1.8e3,
# 2e6) leave the gradient (exactly 0 there: v is constant) pure float32 noise in both.
ATTENTION = dict(shapes=(ATTN,) * 3, scalar=False, points=("random", "zero", "ties"), rtol=1e-5,
                 atol=1e-6)


def ctc(f, logits):
    return f(logits, CTC_LOGIT_PAD, CTC_LABELS, CTC_LABEL_PAD)


JAX_NN = {
    "dot_product_attention": (
        Call(**ATTENTION),
        Call(lambda f, q, k, v: f(q, k, v, is_causal=True), 3, label="causal", **ATTENTION),
        Call(lambda f, q, k, v: f(q, k, v, mask=KEY_MASK), 3, label="mask", **ATTENTION)),
    "gelu": (Call(), Call(lambda f, x: f(x, approximate=False), 1, label="exact")),
    "glu": (Call(scalar=False),),  # splits the last axis in two halves
    "log1mexp": on(POS),
    "log_softmax": (Call(scalar=False),
                    Call(lambda f, x: f(x, where=BINARY > 0), 1, scalar=False, label="where")),
    "logmeanexp": (Call(), Call(lambda f, x: f(x, axis=-1), 1, scalar=False, label="axis")),
    "logsumexp": (Call(), Call(lambda f, x: f(x, axis=-1, b=PROBS), 1, scalar=False, label="b"),
                  Call(lambda f, x: f(x, axis=-1, return_sign=True), 1, scalar=False,
                       label="sign")),
    "one_hot": (Call(lambda f, x: f(x, SHAPE[1]), 1),),  # float ids: jax.grad gives zeros
    "scaled_dot_general": (Call(lambda f, a, b: f(a, b, (((1,), (1,)), ((), ())),
                                                  preferred_element_type=jnp.float64),
                                2, ((2, 4), (3, 4)), scalar=False),),
    # block-scaled matmul: jax.grad has no rule for it, so the engine must raise too
    "scaled_matmul": (Call(lambda f, a, b: f(a, b, np.ones((1, 2, 2)), np.ones((1, 3, 2)),
                                             preferred_element_type=jnp.float64),
                           2, ((1, 2, 4), (1, 3, 4)), scalar=False),),
    "softmax": (Call(scalar=False),
                Call(lambda f, x: f(x, where=BINARY > 0), 1, scalar=False, label="where")),
    "standardize": (Call(scalar=False),),
}

SCIPY_SPECIAL = {
    "bessel_jn": (Call(lambda f, z: f(z, v=2), 1),),
    "beta": on(POS, POS),
    "betainc": (Call(domain=(POS, POS, UNIT)),  # jax.grad: no gradient in a, b: must raise
                Call(lambda f, x: f(2.0, 3.0, x), 1, domain=(UNIT,), label="x")),
    "betaln": on(POS, POS),
    "boxcox": on(POS, N),
    "boxcox1p": on(POS, N),
    "comb": on(uniform(3.0, 6.0, SHAPE), uniform(0.5, 2.5, SHAPE)),
    "digamma": on(POS),
    "entr": on(POS),
    "erfcinv": on(uniform(0.1, 1.9, SHAPE)),  # JAX >= 0.12
    "erfinv": on(uniform(-0.9, 0.9, SHAPE)),
    "exp1": on(POS),
    "expn": (Call(lambda f, x: f(ORDERS, x), 1, domain=(POS,)),),
    "factorial": on(uniform(0.0, 5.0, SHAPE)),
    "gamma": on(POS),
    "gammainc": on(POS, POS),
    "gammaincc": on(POS, POS),
    "gammaln": on(POS),
    "hyp1f1": on(POS, POS, N),
    "hyp2f1": on(POS, POS, POS, uniform(-0.9, 0.9, SHAPE)),
    "i0": on(N), "i0e": on(N), "i1": on(N), "i1e": on(N),
    "kl_div": on(POS, POS),
    "log_softmax": (Call(scalar=False),),
    "loggamma": on(POS),
    "logit": on(UNIT),
    "multigammaln": (Call(lambda f, a: f(a, 2), 1, domain=(uniform(1.0, 4.0, SHAPE),)),),
    "ndtri": on(UNIT),
    "poch": on(POS, uniform(-1.0, 2.0, SHAPE)),
    "polygamma": (Call(lambda f, x: f(ORDERS, x), 1, domain=(POS,)),),
    "rel_entr": on(POS, POS),
    "softmax": (Call(scalar=False),),
    "spence": on(POS),
    "sph_harm_y": (Call(lambda f, theta, phi: f(DEGREES, DEGREES % 2, theta, phi, n_max=3), 2,
                        ((4,), (4,)), (uniform(0.1, 3.0, (4,)), uniform(0.0, 6.2, (4,))),
                        scalar=False),),  # 1-D arrays of angles, one per (degree, order)
    "xlog1py": on(N, POS),
    "xlogy": on(N, POS),
    "zeta": (Call(n_diff=2, domain=(uniform(1.5, 5.0, SHAPE), POS)),  # zeta(x): unimplemented
             Call(lambda f, q: f(np.full(SHAPE, 2.5), q), 1, domain=(POS,), label="q")),
}

ZERO_RESIDUE = 1e-15  # a few float64 ulps of the gradients' O(1) scale (jax.grad: up to 1e-16)

OPTAX_LOSSES = {
    "binary_dice_loss": (Call(lambda f, p: f(p, BINARY), 1, scalar=False),),
    # The gradient is exactly 0 where a row is parallel to its target (ties, +-30, +-1000):
    # both implementations return cancellation residue there (jax.grad 5e-17 or 0, the engine
    # 2e-17 or 7e-21), so entries are also compared absolutely at ZERO_RESIDUE.
    "cosine_distance": (Call(scalar=False, atol=ZERO_RESIDUE),),  # along the last axis
    "cosine_similarity": (Call(scalar=False, atol=ZERO_RESIDUE),),
    "convex_kl_divergence": (Call(lambda f, lp: f(lp, PROBS), 1, scalar=False),),
    "ctc_loss": (Call(ctc, 1, (CTC_SHAPE,), scalar=False),),
    "ctc_loss_with_forward_probs": (Call(ctc, 1, (CTC_SHAPE,), scalar=False),),
    "dice_loss": (Call(lambda f, p: f(p, ONE_HOT), 1, scalar=False),),
    "generalized_kl_divergence": (Call(lambda f, lp: f(lp, PROBS), 1, scalar=False),),
    "hinge_loss": (Call(lambda f, y: f(y, SIGNS), 1),),
    "huber_loss": (Call(), Call(lambda f, p: f(p, PROBS, delta=0.5), 1, label="targets")),
    "kl_divergence": (Call(lambda f, lp: f(lp, PROBS), 1, scalar=False),),
    "kl_divergence_with_log_targets": (Call(lambda f, lp: f(lp, LOG_PROBS), 1, scalar=False),),
    "make_fenchel_young_loss": (  # a factory: the loss it makes from logsumexp
        Call(lambda f, s: f(jax.scipy.special.logsumexp)(s, PROBS), 1, scalar=False),),
    "multiclass_generalized_dice_loss": (
        Call(promoting(lambda f, p: f(p, ONE_HOT)), 1, scalar=False),),
    "multiclass_hinge_loss": (Call(lambda f, s: f(s, INT_LABELS), 1, scalar=False),),
    "multiclass_perceptron_loss": (Call(lambda f, s: f(s, INT_LABELS), 1, scalar=False),),
    "multiclass_sparsemax_loss": (Call(lambda f, s: f(s, INT_LABELS), 1, scalar=False),),
    "ntxent": (Call(lambda f, e: f(e, np.array([0, 0, 1, 1])), 1, ((4, 3),), scalar=False,
                    atol=ZERO_RESIDUE),),  # exactly 0 at +-1000 (rows parallel), as cosine
    "perceptron_loss": (Call(lambda f, y: f(y, SIGNS), 1, scalar=False),),
    "poly_loss_cross_entropy": (Call(lambda f, x: f(x, PROBS), 1, scalar=False),),
    "ranking_softmax_loss": (Call(lambda f, x: f(x, BINARY), 1, scalar=False),),
    "safe_softmax_cross_entropy": (Call(lambda f, x: f(x, PROBS), 1, scalar=False),),
    "sigmoid_binary_cross_entropy": (Call(lambda f, x: f(x, BINARY), 1),),
    "sigmoid_focal_loss": (Call(lambda f, x: f(x, BINARY), 1, scalar=False),
                           Call(lambda f, x: f(x, BINARY, alpha=0.25), 1, scalar=False,
                                label="alpha")),
    "smooth_labels": (Call(lambda f, y: f(y, 0.1), 1, scalar=False),),
    "softmax_cross_entropy": (Call(lambda f, x: f(x, PROBS), 1, scalar=False),),
    "softmax_cross_entropy_with_integer_labels": (
        Call(lambda f, x: f(x, INT_LABELS), 1, scalar=False),),
    "sparsemax_loss": (Call(lambda f, x: f(x, BINARY), 1),),
    "triplet_margin_loss": (Call(scalar=False),),
}

HOW: dict[str, tuple[Call, ...]] = {
    **{f"jax.nn.{k}": v for k, v in JAX_NN.items()},
    **{f"jax.scipy.special.{k}": v for k, v in SCIPY_SPECIAL.items()},
    **{f"optax.losses.{k}": v for k, v in OPTAX_LOSSES.items()},
}

EXCLUDED = {
    # returns a configuration object for scaled_dot_general, not an array
    "jax.nn.get_scaled_dot_general_config": "a config builder, not a function of arrays",
    # bernoulli(n) is a table of Bernoulli numbers indexed by a static Python int
    "jax.scipy.special.bernoulli": "its only argument is a static integer",
}

# Names in HOW that only some supported JAX releases have.
NOT_IN_EVERY_RELEASE = {"jax.scipy.special.erfcinv"}

MODULES = (jax.nn, jax.scipy.special, optax.losses)
