"""Activation cases: every activation of ``funcnn.activations`` (plus ``jnp.abs``), and
``kink`` cases that sample exactly the points where the derivative does not exist, pinning the
declared conventions (``oracle.conventions``).

Keys: ``inputs/x`` [3, 4] -> ``outputs/y`` [3, 4]; ``cotangents/y`` seeded normal;
``grads/inputs/x``. Non-kink cases sample at least ``KINK_MARGIN`` away from every kink.
"""
import functools

import jax.numpy as jnp
import numpy as np

from funcnn import activations
from oracle.cases.base import Built, Spec, away_from
from oracle.conventions import CONVENTIONS, KINK_CONVENTION, KINK_MARGIN, KINKS

SHAPE = (3, 4)
# The kink cases' inputs: four exact zeros among ordinary values.
KINK_X = np.array([[-1.5, -0.5, 0.0, 0.5],
                   [0.0, 1.0, -2.0, 0.0],
                   [2.5, 0.0, -0.25, 0.75]])

FORMULAS = {
    "sigmoid": "y = 1 / (1 + exp(-x))",
    "relu": "y = max(x, 0); relu'(0) = 0",
    "step": "y = 1 if x > 0 else 0; derivative 0 everywhere",
    "sign": "y = sign(x) (sign(0) = 0); derivative 0 everywhere",
    "tanh": "y = tanh(x)",
    "softplus": "y = log(1 + exp(x))",
    "gelu": "y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))",
    "gelu.exact": "y = 0.5 x (1 + erf(x / sqrt(2)))",
    "leaky_relu": "y = x if x >= 0 else 0.1 x; derivative 1 at 0",
    "softmax": "y = exp(x) / sum(exp(x)) along the last axis",
    "log_softmax": "y = x - log(sum(exp(x))) along the last axis",
    "abs": "y = |x| (jnp.abs); abs'(0) = 0",
}

FUNCTIONS = {
    "gelu.exact": functools.partial(activations.gelu, approximate=False),
    "leaky_relu": functools.partial(activations.leaky_relu, negative_slope=0.1),
    "abs": jnp.abs,
}

CONFIGS = {
    "gelu": {"approximate": True},
    "gelu.exact": {"approximate": False},
    "leaky_relu": {"negative_slope": 0.1},
    "softmax": {"axis": -1},
    "log_softmax": {"axis": -1},
}


def _spec(name, kink):
    act = FUNCTIONS.get(name) or getattr(activations, name)
    base_name = name.split(".")[0]
    kinks = KINKS.get(base_name, ())

    def fn(params, inputs):
        return {"y": act(inputs["x"])}

    def build(rng):
        if kink:
            return Built(fn, {}, {"x": KINK_X.copy()}, kinks=kinks,
                         convention=KINK_CONVENTION[base_name])
        else:
            scale = 2.0 if base_name in ("softmax", "log_softmax") else 1.0
            x = away_from(rng, SHAPE, kinks, KINK_MARGIN, scale)
        return Built(fn, {}, {"x": x}, kinks=kinks)

    config = dict(CONFIGS.get(name, {}), shape=list(SHAPE), elementwise=base_name not in
                  ("softmax", "log_softmax"))
    if kink:
        key = KINK_CONVENTION[base_name]
        config["conventions"] = {key: CONVENTIONS[key]}
        config["kink_points"] = list(kinks)
    desc = FORMULAS[name] + (" -- at exactly x = 0 (pins the convention)" if kink else "")
    return Spec(f"activation.{name}{'.kink' if kink else ''}", "activation", desc, config,
                build)


SPECS = [_spec(name, False) for name in FORMULAS]
SPECS += [_spec(name, True) for name in ("relu", "step", "sign", "leaky_relu", "abs")]
