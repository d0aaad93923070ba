"""Comparing one case's results with its golden arrays: per key, then per case.

The tolerance rule (``docs/oracle-format.md``): an entry passes when

    |result - golden| <= atol_key + rtol * |golden|

and a key passes when every entry does (a NaN fails). ``max_rel`` is the relative error with
that rule's own denominator, ``|result - golden| / (|golden| + atol_key / rtol)``: a key passes
exactly when ``max_rel <= rtol``.

Every golden key under ``outputs/``, ``grads/``, ``probes/`` and ``trajectory/`` is required;
``skip`` (a subset of ``SKIPPABLE``) names groups not to check, which are then reported as
``skipped`` and listed in ``CaseResult.not_checked``. A results key under a compared prefix
that the golden case lacks is an ``UnknownKey`` error (with a "did you mean").

Example:
    >>> verdict = compare_case("layer.dense.f64", golden, results, {"rtol": 1e-10,
    ...                        "atol": 1e-13})
    >>> verdict.status, verdict.table()
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np

from oracle.diagnosis import Diagnosis, ProbeGraph, diagnose
from oracle.tolerance import COMPARED

SKIPPABLE = ("probes", "trajectory")
SLICED_AXES = ("time", "head")  # probe axes along which verify also judges each slice


class UnknownKey(ValueError):
    """A results key under a compared prefix that the golden case does not have."""

    def __init__(self, key, suggestion):
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        super().__init__(f"{key}: not a key of this case{hint}; compared keys must be spelled "
                         "as in the golden archive")
        self.key = key
        self.suggestion = suggestion


@dataclass
class KeyResult:
    key: str
    status: str  # "pass" | "FAIL" | "missing" | "skipped"
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst: tuple = ()
    result: float = 0.0
    golden: float = 0.0
    tol: float = 0.0
    slices_ok: dict = field(default_factory=dict)  # {axis name: [pass per index]} for probes


@dataclass
class CaseResult:
    name: str
    keys: list = field(default_factory=list)
    status: str = "pass"  # "pass" | "FAIL" | "missing"
    diagnosis: str = ""
    first_failing_probe: str | None = None
    layer_at_fault: str | None = None
    not_checked: list = field(default_factory=list)  # groups skipped: "probes", "trajectory"

    @property
    def ok(self) -> bool:
        return self.status == "pass"

    def table(self) -> str:
        lines = [f"{self.name}: {self.status}"]
        for k in self.keys:
            if k.status in ("pass", "skipped"):
                continue
            if k.status == "missing":
                lines.append(f"  {k.key}: missing from the results")
                continue
            lines.append(f"  {k.key}: {k.status} max_abs {k.max_abs:.3e} max_rel "
                         f"{k.max_rel:.3e}; worst at {k.worst}: result {k.result:.9g}, "
                         f"golden {k.golden:.9g}, tol {k.tol:.2e}")
        missing_groups = sorted({k.key.split("/")[0] for k in self.keys
                                 if k.status == "missing"} & set(SKIPPABLE))
        for group in missing_groups:
            lines.append(f"  (all of {group}/ is part of the case; --skip {group} verifies "
                         "without it)")
        if self.not_checked:
            lines.append("  not checked: " + ", ".join(f"{g}/ (--skip {g})"
                                                       for g in self.not_checked))
        if self.diagnosis:
            lines.append(f"  diagnosis: {self.diagnosis}")
        return "\n".join(lines)


def compare_key(key, result, golden, rtol, atol, axes=()) -> KeyResult:
    """One key: the rule above; ``axes`` names the golden array's axes (probes), and every
    axis in ``SLICED_AXES`` is also judged slice by slice (``KeyResult.slices_ok``)."""
    g = np.asarray(golden, np.float64)
    r = np.asarray(result, np.float64)
    if g.size == 0:
        return KeyResult(key, "pass")
    diff = np.abs(r - g)
    diff = np.where(np.isnan(diff), np.inf, diff)
    tol = atol + rtol * np.abs(g)
    rel = diff / (np.abs(g) + atol / rtol)
    ok = diff <= tol
    w = np.unravel_index(int(np.argmax(diff / tol)), g.shape) if g.ndim else ()
    slices = {}
    for axis, name in enumerate(axes or ()):
        if name in SLICED_AXES and axis < g.ndim:
            per = np.moveaxis(ok, axis, 0).reshape(g.shape[axis], -1)
            slices[name] = [bool(v) for v in per.all(axis=1)]
    return KeyResult(key, "pass" if ok.all() else "FAIL", float(diff.max()), float(rel.max()),
                     tuple(int(i) for i in w), float(r[w]), float(g[w]), float(tol[w]), slices)


def unknown_keys(golden, results) -> list:
    """``[UnknownKey]`` for every results key under a compared prefix the golden lacks."""
    known = [k for k in golden if k.startswith(COMPARED)]
    out = []
    for key in sorted(results):
        if key.startswith(COMPARED) and key not in golden:
            near = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
            out.append(UnknownKey(key, near[0] if near else None))
    return out


def _order(keys, probes):
    """Compared keys: outputs, grads, probes in forward order, trajectory by step."""
    rank = {p: i for i, p in enumerate(probes)}

    def sort_key(k):
        parts = k.split("/")
        if parts[0] == "probes":
            name = "/".join(parts[1:-1])
            return (2, rank.get(name, len(rank)), parts[-1] != "value", k)
        if parts[0] == "trajectory":
            return (3, int(parts[1]) if parts[1].isdigit() else 0, k)
        return (0 if parts[0] == "outputs" else 1, k)
    return sorted((k for k in keys if k.startswith(COMPARED)), key=sort_key)


def compare_case(name, golden: dict, results: dict, tolerance: dict, atols=None, probes=(),
                 skip=(), graph: ProbeGraph | None = None) -> CaseResult:
    """Compare one case's results with its golden arrays (both ``{key: array}``).

    Raises ``UnknownKey`` for the first results key under a compared prefix that the golden
    case does not have; ``ValueError`` for a ``skip`` outside ``SKIPPABLE``.
    """
    bad = sorted(set(skip) - set(SKIPPABLE))
    if bad:
        raise ValueError(f"skip: expected a subset of {list(SKIPPABLE)}, got {bad}")
    unknown = unknown_keys(golden, results)
    if unknown:
        raise unknown[0]
    atols = atols or {}
    graph = graph or ProbeGraph.chain(probes)
    out = CaseResult(name)
    for key in _order(golden, probes):
        group = key.split("/")[0]
        if group in skip:
            out.keys.append(KeyResult(key, "skipped"))
            if group not in out.not_checked:
                out.not_checked.append(group)
            continue
        if key not in results:
            out.keys.append(KeyResult(key, "missing"))
            continue
        atol = atols.get(key, tolerance["atol"])
        axes = graph.axes.get("/".join(key.split("/")[1:-1]), ()) if group == "probes" else ()
        out.keys.append(compare_key(key, results[key], golden[key], tolerance["rtol"], atol,
                                    axes))
    if any(k.status == "FAIL" for k in out.keys):
        out.status = "FAIL"
    elif any(k.status == "missing" for k in out.keys):
        out.status = "missing"
    if out.status != "pass" and probes:
        found: Diagnosis = diagnose(out.keys, graph)
        out.diagnosis, out.first_failing_probe, out.layer_at_fault = found
    return out
