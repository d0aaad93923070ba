"""The registry of reference cases: every activation (and kink), loss, layer kind with its
variants, the models with per-layer probes, the notes' example, a training trajectory, the
linear-algebra family (solve, Cholesky, log-determinant, singular values, eigh: their
conditioning in the config), an FFT filter and a top_k router, each in float64 and float32
(and, when asked for, float16 and bfloat16).

Names are lowercase and dot-separated, from general to specific, ending in the dtype:
``layer.conv2d.stride2_same.f32``.

Use from another project's pytest suite:

    >>> import pytest, oracle
    >>> @pytest.mark.parametrize("case", oracle.cases.all("layer.*"), ids=str)
    ... def test_my_backward(case):
    ...     results = my_implementation(case.params, case.inputs, case.cotangents())
    ...     case.assert_matches(results)      # {"outputs/y": ..., "grads/params/w": ...}
"""
import fnmatch

from oracle.cases import (
    activations,
    examples,
    fft,
    layers,
    linalg,
    losses,
    models,
    top_k,
    training,
)
from oracle.cases.base import DEFAULT_DTYPES, DTYPES, LOW_PRECISION, Case, Spec

SPECS = (activations.SPECS + losses.SPECS + layers.SPECS + models.SPECS + examples.SPECS
         + training.SPECS + linalg.SPECS + fft.SPECS + top_k.SPECS)

_names = [s.base for s in SPECS]
assert len(set(_names)) == len(_names), "duplicate case names"


def _dtypes(dtypes):
    if dtypes is None:
        return DEFAULT_DTYPES
    out = []
    for d in dtypes:
        d = DTYPES.get(d, d)
        if d not in DTYPES.values():
            raise ValueError(f"unknown dtype {d!r}; expected one of {', '.join(DTYPES)} (or "
                             f"{', '.join(DTYPES.values())})")
        out.append(d)
    return tuple(out)


def all(pattern=None, dtypes=None) -> list:  # noqa: A001 (the registry's public name)
    """Every case (float64 first, then float32, per spec), optionally filtered by a glob on
    the name (``"layer.conv2d.*"``, ``"*.f32"``) and by dtype (``("f64",)``). The float16 and
    bfloat16 cases exist only when asked for: ``dtypes=("f16", "bf16")``."""
    cases = [Case(spec, d) for spec in SPECS for d in _dtypes(dtypes)]
    if pattern is not None:
        cases = [c for c in cases if fnmatch.fnmatchcase(c.name, pattern)]
    return cases


def names(pattern=None, dtypes=None) -> list:
    return [c.name for c in all(pattern, dtypes)]


def get(name: str) -> Case:
    """The case called ``name`` (e.g. ``"model.mlp.f64"``)."""
    for case in all(dtypes=list(DTYPES)):
        if case.name == name:
            return case
    raise KeyError(f"no reference case {name!r}; `python -m oracle list` shows them all")


__all__ = ["Case", "Spec", "all", "names", "get", "SPECS", "DTYPES", "LOW_PRECISION"]
