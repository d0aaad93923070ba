"""Verify another implementation's results against golden files (format funcnn-oracle/1).

    report = verify("GOLDEN", "RESULTS", pattern=["layer.*"], skip=())
    report.exit_code        # 0 all pass, 1 a mismatch or something missing
    print(report.table())

Every golden key under ``outputs/``, ``grads/``, ``probes/`` and ``trajectory/`` is compared
with the results file's key of the same name (``oracle.comparison``: the tolerance rule, max
absolute and relative error, the worst index, pass or fail). A selected case without a results
file, or a compared key the results lack, is ``missing``; probes and trajectories are part of
the case unless ``skip`` names them (``"probes"``, ``"trajectory"``), and the report then says
they were not checked. Where a case with probes fails, its diagnosis names the layer at fault
(``oracle.diagnosis``).

Anything unusable raises ``InputError`` naming the file and key (the CLI's exit 2): a golden or
results directory that does not exist, a bad manifest, a checksum that does not match, a
missing or malformed golden archive, a results archive that is truncated, pickled, or has a
key whose shape or dtype differs from the manifest's, a results key under a compared prefix
that the case does not have (with a "did you mean"), a selection glob that matches no case.
"""
from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from oracle.comparison import SKIPPABLE, CaseResult, KeyResult, UnknownKey, compare_case
from oracle.diagnosis import ProbeGraph
from oracle.fileformat import FORMAT
from oracle.npzio import InputError, read_npz, sha256

NAME = re.compile(r"^[a-z0-9_.-]+$")
REQUIRED = ("name", "file", "sha256", "dtype", "arrays", "tolerance")

__all__ = ["verify", "VerifyReport", "CaseResult", "KeyResult", "load_manifest",
           "load_golden", "SKIPPABLE"]


@dataclass
class VerifyReport:
    golden: str
    results: str
    cases: list = field(default_factory=list)
    skip: tuple = ()

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cases)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def table(self) -> str:
        rows = [("case", "status", "keys", "worst key", "max_abs", "max_rel")]
        for c in self.cases:
            compared = [k for k in c.keys if k.status in ("pass", "FAIL")]
            worst = max(compared, key=lambda k: (k.status == "FAIL", k.max_abs / k.tol
                                                 if k.tol else 0.0), default=None)
            rows.append((c.name, c.status, str(len(compared)),
                         worst.key if worst else "-",
                         f"{worst.max_abs:.2e}" if worst else "-",
                         f"{worst.max_rel:.2e}" if worst else "-"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                 for r in rows]
        lines += [c.table() for c in self.cases if not c.ok]
        counts = {s: sum(c.status == s for c in self.cases) for s in ("pass", "FAIL", "missing")}
        last = (f"{counts['pass']} passed, {counts['FAIL']} failed, {counts['missing']} "
                f"missing, of {len(self.cases)} cases")
        for group in SKIPPABLE:
            n = sum(group in c.not_checked for c in self.cases)
            if n:
                last += f"; {group}/ of {n} cases not checked (--skip {group})"
        lines.append(last)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "golden": self.golden, "results": self.results,
                "ok": self.ok, "exit_code": self.exit_code, "skip": list(self.skip),
                "cases": [{"name": c.name, "status": c.status, "diagnosis": c.diagnosis,
                           "layer_at_fault": c.layer_at_fault,
                           "first_failing_probe": c.first_failing_probe,
                           "not_checked": list(c.not_checked),
                           "keys": [_key_dict(k) for k in c.keys]} for c in self.cases]}


def _key_dict(k: KeyResult) -> dict:
    d = dict(k.__dict__, worst=list(k.worst))
    if not d["slices_ok"]:
        del d["slices_ok"]
    return {n: (v if not isinstance(v, float) or np.isfinite(v) else str(v))
            for n, v in d.items()}


# ---------------------------------------------------------------------------- reading files

def load_manifest(golden_dir) -> dict:
    path = Path(golden_dir) / "manifest.json"
    if not path.is_file():
        raise InputError(path, None, "no manifest.json in the golden directory")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(path, None, f"not valid JSON: {err}") from None
    if not isinstance(manifest, dict):
        raise InputError(path, None, "expected a JSON object at the top level")
    if manifest.get("format") != FORMAT:
        raise InputError(path, "format", f"expected {FORMAT!r}, got {manifest.get('format')!r}")
    cases = manifest.get("cases")
    if not isinstance(cases, list):
        raise InputError(path, "cases", "expected a list of cases")
    for i, entry in enumerate(cases):
        _check_entry(path, i, entry)
    return manifest


def _check_entry(path, i, entry):
    if not isinstance(entry, dict):
        raise InputError(path, f"cases[{i}]", "expected an object")
    for name in REQUIRED:
        if name not in entry:
            raise InputError(path, f"cases[{i}].{name}", "missing key")
    name, file = entry["name"], entry["file"]
    if not isinstance(name, str) or not NAME.match(name):
        raise InputError(path, f"cases[{i}].name", f"expected [a-z0-9_.-]+, got {name!r}")
    if not isinstance(file, str) or file != Path(file).name or not NAME.match(file):
        raise InputError(path, f"cases[{i}].file", f"expected a plain file name, got {file!r}")
    if not isinstance(entry["arrays"], dict):
        raise InputError(path, f"cases[{i}].arrays", "expected an object")
    for key, spec in entry["arrays"].items():
        if not (isinstance(spec, dict) and isinstance(spec.get("shape"), list)
                and isinstance(spec.get("dtype"), str)
                and isinstance(spec.get("atol", 0.0), int | float)):
            raise InputError(path, f"cases[{i}].arrays[{key!r}]",
                             "expected {\"shape\": [...], \"dtype\": \"...\"} and a number "
                             "atol if any")
    tol = entry["tolerance"]
    if not (isinstance(tol, dict) and all(isinstance(tol.get(k), int | float)
                                          for k in ("rtol", "atol"))):
        raise InputError(path, f"cases[{i}].tolerance", "expected numbers rtol and atol")


def _check_arrays(path, arrays, spec, required):
    """Shapes and dtypes of ``arrays`` against the manifest's ``spec``."""
    for key, want in spec.items():
        if key not in arrays:
            if required:
                raise InputError(path, key, "missing key (listed in the manifest)")
            continue
        got = arrays[key]
        if list(got.shape) != want["shape"] or str(got.dtype) != want["dtype"]:
            raise InputError(path, key, f"expected shape {want['shape']} dtype "
                                        f"{want['dtype']} (as the manifest says), got shape "
                                        f"{list(got.shape)} dtype {got.dtype}")


def load_golden(golden_dir, entry) -> dict:
    path = Path(golden_dir) / entry["file"]
    if not path.is_file():
        raise InputError(path, None, "golden archive listed in the manifest is missing")
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise InputError(path, "sha256", f"checksum does not match the manifest: manifest "
                                         f"{entry['sha256']}, file {digest}")
    arrays = read_npz(path)
    _check_arrays(path, arrays, entry["arrays"], required=True)
    extra = sorted(set(arrays) - set(entry["arrays"]))
    if extra:
        raise InputError(path, extra[0], "key not listed in the manifest's arrays")
    return arrays


def verify(golden_dir, results_dir, pattern=None, skip=()) -> VerifyReport:
    """Compare every selected case of ``golden_dir`` with ``results_dir/<case>.npz``.

    Args:
        pattern: None (every case), a glob on names, or a list of globs; each must match.
        skip: groups not to check, a subset of ``SKIPPABLE`` (``"probes"``, ``"trajectory"``).

    Raises ``InputError`` for anything unusable (see the module docstring).
    """
    manifest = load_manifest(golden_dir)
    manifest_path = Path(golden_dir) / "manifest.json"
    bad = sorted(set(skip) - set(SKIPPABLE))
    if bad:
        raise ValueError(f"skip: expected {' or '.join(SKIPPABLE)}, got {bad}")
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise InputError(results_dir, None, "results directory does not exist (or is not a "
                                            "directory)")
    patterns = [pattern] if isinstance(pattern, str) else list(pattern or ())
    names = [e["name"] for e in manifest["cases"]]
    for p in patterns:
        if not any(fnmatch.fnmatchcase(n, p) for n in names):
            raise InputError(manifest_path, "--cases", f"{p!r} matches no case (of "
                                                       f"{len(names)} in the manifest)")
    entries = [e for e in manifest["cases"] if not patterns
               or any(fnmatch.fnmatchcase(e["name"], p) for p in patterns)]
    if not entries:
        raise InputError(manifest_path, "cases", "the manifest has no cases")
    report = VerifyReport(str(golden_dir), str(results_dir), skip=tuple(skip))
    for entry in entries:
        golden = load_golden(golden_dir, entry)
        path = results_dir / f"{entry['name']}.npz"
        if not path.exists():
            report.cases.append(CaseResult(entry["name"], status="missing",
                                           diagnosis=f"no results file {path}"))
            continue
        results = read_npz(path)
        _check_arrays(path, results, entry["arrays"], required=False)
        atols = {k: v["atol"] for k, v in entry["arrays"].items() if "atol" in v}
        graph = ProbeGraph.from_entry(entry)
        try:
            verdict = compare_case(entry["name"], golden, results, entry["tolerance"], atols,
                                   probes=graph.order, skip=skip, graph=graph)
        except UnknownKey as err:
            raise InputError(path, err.key, str(err).split(": ", 1)[1]) from None
        report.cases.append(verdict)
    return report
