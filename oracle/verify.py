"""Verify another implementation's results against golden files (format funcnn-oracle/1).

    report = verify("GOLDEN", "RESULTS", pattern="layer.*")
    report.exit_code        # 0 all pass, 1 a mismatch or something missing
    print(report.table())

Every golden key under ``outputs/``, ``grads/``, ``probes/`` and ``trajectory/`` is compared
with the results file's key of the same name: max absolute and relative error, the worst
index (largest error / tolerance), pass or fail (``oracle.golden`` gives the tolerance rule).
A selected case without a results file, or a required key the results lack, is ``missing``.
``probes/`` and ``trajectory/`` are optional: a results file with no key under one of them
skips it; one that has some must have all.

Where a model case fails, its ``diagnosis`` names the layer: the first value probe that fails
in forward order (the forward pass goes wrong there), else the first adjoint probe that fails
in backward order, i.e. the one nearest the loss (the layer just after it in forward order
passed back a wrong adjoint: its backward pass is the one that is wrong), else the wrong
parameter gradients.

Anything unreadable raises ``InputError`` naming the file and key (the CLI's exit 2): a bad
manifest, a checksum that does not match, a missing or malformed golden archive, a results
archive that is truncated, pickled, or has a key whose shape or dtype differs from the
manifest's.
"""
from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from oracle.golden import FORMAT
from oracle.npzio import InputError, read_npz, sha256
from oracle.tolerance import COMPARED

NAME = re.compile(r"^[a-z0-9_.-]+$")
REQUIRED = ("name", "file", "sha256", "dtype", "arrays", "tolerance")
OPTIONAL_PREFIXES = ("probes/", "trajectory/")


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


@dataclass
class CaseResult:
    name: str
    keys: list = field(default_factory=list)
    status: str = "pass"  # "pass" | "FAIL" | "missing"
    diagnosis: str = ""
    first_failing_probe: str | None = None

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
        if self.diagnosis:
            lines.append(f"  diagnosis: {self.diagnosis}")
        return "\n".join(lines)


@dataclass
class VerifyReport:
    golden: str
    results: str
    cases: list = field(default_factory=list)

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
        lines.append(f"{counts['pass']} passed, {counts['FAIL']} failed, {counts['missing']} "
                     f"missing, of {len(self.cases)} cases")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "golden": self.golden, "results": self.results,
                "ok": self.ok, "exit_code": self.exit_code,
                "cases": [{"name": c.name, "status": c.status, "diagnosis": c.diagnosis,
                           "first_failing_probe": c.first_failing_probe,
                           "keys": [_key_dict(k) for k in c.keys]} for c in self.cases]}


def _key_dict(k: KeyResult) -> dict:
    d = dict(k.__dict__, worst=list(k.worst))
    return {n: (v if not isinstance(v, float) or np.isfinite(v) else str(v))
            for n, v in d.items()}


def compare_key(key, result, golden, rtol, atol) -> KeyResult:
    g = np.asarray(golden, np.float64)
    r = np.asarray(result, np.float64)
    diff = np.abs(r - g)
    diff = np.where(np.isnan(diff), np.inf, diff)
    tol = atol + rtol * np.abs(g)
    if g.size == 0:
        return KeyResult(key, "pass")
    denom = np.maximum(np.abs(g), np.abs(np.where(np.isfinite(r), r, 0)))
    rel = np.where(diff == 0, 0.0, diff / np.where(denom > 0, denom, 1.0))
    w = np.unravel_index(int(np.argmax(diff / tol)), g.shape) if g.ndim else ()
    return KeyResult(key, "pass" if np.all(diff <= tol) else "FAIL", float(diff.max()),
                     float(rel.max()), tuple(int(i) for i in w), float(r[w]), float(g[w]),
                     float(tol[w]))


def _order(keys, probes):
    """Compared keys: outputs, grads, probes in forward order, trajectory by step."""
    rank = {p: i for i, p in enumerate(probes)}

    def sort_key(k):
        parts = k.split("/")
        if parts[0] == "probes":
            return (2, rank.get(parts[1], len(rank)), parts[-1] != "value", k)
        if parts[0] == "trajectory":
            return (3, int(parts[1]) if parts[1].isdigit() else 0, k)
        return (0 if parts[0] == "outputs" else 1, k)
    return sorted((k for k in keys if k.startswith(COMPARED)), key=sort_key)


def compare_case(name, golden: dict, results: dict, tolerance: dict, atols=None,
                 probes=()) -> CaseResult:
    """Compare one case's results with its golden arrays (both ``{key: array}``)."""
    atols = atols or {}
    out = CaseResult(name)
    present = {p for p in OPTIONAL_PREFIXES if any(k.startswith(p) for k in results)}
    for key in _order(golden, probes):
        optional = next((p for p in OPTIONAL_PREFIXES if key.startswith(p)), None)
        if key not in results:
            out.keys.append(KeyResult(key, "skipped" if optional and optional not in present
                                      else "missing"))
            continue
        atol = atols.get(key, tolerance["atol"])
        out.keys.append(compare_key(key, results[key], golden[key], tolerance["rtol"], atol))
    if any(k.status == "FAIL" for k in out.keys):
        out.status = "FAIL"
    elif any(k.status == "missing" for k in out.keys):
        out.status = "missing"
    if out.status != "pass" and probes:
        out.diagnosis, out.first_failing_probe = diagnose(out.keys, probes)
    return out


def diagnose(keys, probes):
    """(sentence, probe key) naming the layer where a model's forward or backward pass first
    goes wrong (see the module docstring)."""
    failed = {k.key for k in keys if k.status == "FAIL"}
    for p in probes:
        key = f"probes/{p}/value"
        if key in failed:
            return (f"the forward pass first goes wrong at layer {p} ({key} is the first "
                    f"failing value in forward order)", key)
    wrong = [i for i, p in enumerate(probes) if f"probes/{p}/adjoint" in failed]
    if wrong:
        j = max(wrong)
        key = f"probes/{probes[j]}/adjoint"
        if j == len(probes) - 1:
            return (f"the backward pass starts wrong: {key}, the gradient of the loss with "
                    f"respect to the model's output, is wrong (the loss's backward)", key)
        return (f"the backward pass first goes wrong in layer {probes[j + 1]}: "
                f"probes/{probes[j + 1]}/adjoint is right but the adjoint it passes back, "
                f"{key}, is wrong ({key} is the first wrong adjoint in backward order)", key)
    grads = [k for k in sorted(failed) if k.startswith("grads/params/")]
    if grads:
        layer = grads[0].split("/")[2]
        return (f"every probe is right but {', '.join(grads)} is wrong: layer {layer} "
                f"computes its parameter gradient wrongly", None)
    return "", None


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


def verify(golden_dir, results_dir, pattern=None) -> VerifyReport:
    """Compare every selected case (``pattern``: a glob on names, or a list of globs) of
    ``golden_dir`` with
    ``results_dir/<case>.npz``. Raises ``InputError`` for anything unreadable."""
    manifest = load_manifest(golden_dir)
    patterns = [pattern] if isinstance(pattern, str) else pattern
    entries = [e for e in manifest["cases"] if not patterns
               or any(fnmatch.fnmatchcase(e["name"], p) for p in patterns)]
    if not entries:
        raise InputError(Path(golden_dir) / "manifest.json", "cases",
                         f"no case matches {pattern!r}")
    report = VerifyReport(str(golden_dir), str(results_dir))
    for entry in entries:
        golden = load_golden(golden_dir, entry)
        path = Path(results_dir) / f"{entry['name']}.npz"
        if not path.exists():
            report.cases.append(CaseResult(entry["name"], status="missing",
                                           diagnosis=f"no results file {path}"))
            continue
        results = read_npz(path)
        _check_arrays(path, results, entry["arrays"], required=False)
        atols = {k: v["atol"] for k, v in entry["arrays"].items() if "atol" in v}
        report.cases.append(compare_case(entry["name"], golden, results, entry["tolerance"],
                                         atols, probes=tuple(entry.get("probes", ()))))
    return report
