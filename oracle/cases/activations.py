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
from oracle.cases.written import kink as kink_entry
from oracle.cases.written import spec
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
    "abs": "y = |x| (jnp.abs); abs'(0) = +1 (JAX's convention; torch and np.sign give 0)",
}

# The function and its VJP as pseudocode (spec.function); v is cotangents/y.
LINES = {
    "sigmoid": ["y = 1 / (1 + exp(-x))", "dx = v * y * (1 - y)"],
    "relu": ["y = where(x > 0, x, 0)", "dx = v * where(x > 0, 1, 0)"],
    "step": ["y = where(x > 0, 1, 0)   (step(0) = 0)", "dx = 0 everywhere"],
    "sign": ["y = where(x > 0, 1, where(x < 0, -1, 0))", "dx = 0 everywhere"],
    "tanh": ["y = tanh(x)", "dx = v * (1 - y^2)"],
    "softplus": ["y = log(1 + exp(x)), computed as logaddexp(x, 0)", "dx = v * sigmoid(x)"],
    "gelu": ["y = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))   (tanh approximation; "
             "torch: F.gelu(x, approximate='tanh'))"],
    "gelu.exact": ["y = 0.5 x (1 + erf(x / sqrt(2)))   (torch's default F.gelu)"],
    "leaky_relu": ["y = where(x >= 0, x, 0.1 x)", "dx = v * where(x >= 0, 1, 0.1)"],
    "softmax": ["m = max(x, axis=-1, keepdims)   (subtract it: exp of a large logit overflows)",
                "y = exp(x - m) / sum(exp(x - m), axis=-1, keepdims)",
                "dx = y * (v - sum(v * y, axis=-1, keepdims))"],
    "log_softmax": ["m = max(x, axis=-1, keepdims)",
                    "y = x - m - log(sum(exp(x - m), axis=-1, keepdims))",
                    "dx = v - exp(y) * sum(v, axis=-1, keepdims)"],
    "abs": ["y = |x|", "dx = v * where(x >= 0, 1, -1)"],
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
    written = spec(LINES[name], inputs={"inputs/x": "elementwise input" if config["elementwise"]
                                        else "rows normalised along the last axis"},
                   outputs={"outputs/y": f"{list(SHAPE)}, f(x)"}, kinks=_kinks(base_name, kink))
    return Spec(f"activation.{name}{'.kink' if kink else ''}", "activation", desc, config,
                build, written=written)


def _kinks(base_name, kink):
    if base_name not in KINK_CONVENTION:
        return []
    key = KINK_CONVENTION[base_name]
    if kink:
        zeros = ", ".join(str(tuple(int(i) for i in ix)) for ix in np.argwhere(KINK_X == 0))
        return [kink_entry(key, f"inputs/x entries exactly 0: {zeros}; grads/inputs/x there "
                                f"is cotangents/y * {CONVENTIONS[key]}")]
    if base_name in ("step", "sign"):
        return [kink_entry(key, "everywhere (the function is piecewise constant)")]
    return [kink_entry(key, f"x = 0: not sampled here (every entry is at least {KINK_MARGIN} "
                            "away; the .kink case samples it)")]


# Large-magnitude inputs: exp without subtracting the row maximum overflows (x > 709 in
# float64, x > 88 in float32) or underflows to 0 / 0, and sigmoid' written as
# exp(-x) / (1 + exp(-x))^2 is inf / inf. Finite differences step by 4e-3 (step_scale 1):
# these functions vary on a scale of 1 whatever the logits' magnitude.
LARGE_X = {
    "softmax": np.array([[40.0, 39.0, -35.0, 38.5],
                         [1000.0, 970.0, -1000.0, 0.0],
                         [-1000.0, -1000.5, -1001.5, -999.25]]),
    "sigmoid": np.array([[30.0, -30.0, 50.0, -50.0],
                         [100.0, -100.0, 700.0, -700.0],
                         [1000.0, -1000.0, 2.5, -3.0]]),
}
LARGE_X["log_softmax"] = LARGE_X["softmax"]


def _large(name):
    act = getattr(activations, name)
    x = LARGE_X[name]

    def fn(params, inputs):
        return {"y": act(inputs["x"])}

    def build(rng):
        return Built(fn, {}, {"x": x.copy()}, step_scale=1.0)

    what = "logits" if name != "sigmoid" else "inputs"
    config = dict(CONFIGS.get(name, {}), shape=list(SHAPE), elementwise=name == "sigmoid",
                  magnitudes="+-30 to +-1000")
    desc = (f"{FORMULAS[name]}, on large-magnitude {what} (+-30 to +-1000): a naive exp "
            "overflows or underflows to 0 / 0")
    written = spec(LINES[name] + [f"x = {x.tolist()}"],
                   inputs={"inputs/x": "fixed large-magnitude values (the function line above)"},
                   outputs={"outputs/y": f"{list(SHAPE)}, f(x), finite everywhere"},
                   notes=["compute stably: subtract the row max before exp (softmax, "
                          "log_softmax); sigmoid from exp(-|x|) on the side where it cannot "
                          "overflow"])
    return Spec(f"activation.{name}.large_{what}", "activation", desc, config, build,
                written=written)


SPECS = [_spec(name, False) for name in FORMULAS]
SPECS += [_spec(name, True) for name in ("relu", "step", "sign", "leaky_relu", "abs")]
SPECS += [_large(name) for name in ("sigmoid", "softmax", "log_softmax")]
