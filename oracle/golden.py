"""Export reference cases as golden files, format funcnn-oracle/1 (``docs/oracle-format.md``).

    GOLDEN/manifest.json      format, created_by, conventions, the tolerance rule, the cases
    GOLDEN/<case>.npz         params/, inputs/, cotangents/, outputs/, grads/, probes/,
                              trajectory/ (plain numeric arrays, pickle-free, reproducible)

The values are ``Case.reference()``: funcnn's engine in float64, cross-checked with
``jax.vjp``, rounded to the case's dtype (see ``oracle.reference``).

Tolerances. Each case entry has ``tolerance: {rtol, atol}`` and every compared key in
``arrays`` has its own ``atol`` (format 1 allows added fields). ``verify`` passes an entry when

    |result - golden| <= atol_key + rtol * |golden|

with ``atol_key`` the key's ``atol`` (or the case's ``atol`` where a key has none). ``rtol``
comes from the dtype and the case's depth (``oracle.tolerance``: float64 1e-10 / 1e-9,
float32 1e-4 / 1e-3), times the condition number ``config["kappa"]`` of a conditioned case
(linear algebra; the entry's ``tolerance.kappa`` repeats it); ``atol_key = max(atol, rtol *
max|golden key|, 256 eps * max|golden group|)``: relative to the key's own scale, with a
floor for arrays whose true value is 0.
"""
from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from oracle.conventions import CONVENTIONS
from oracle.fileformat import FORMAT, TOLERANCE_RULE
from oracle.npzio import sha256, write_npz
from oracle.reference import ReferenceMismatch, reference
from oracle.tolerance import key_atols


def created_by() -> dict:
    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"
    return {"funcnn": version("funcnn"), "jax": jax.__version__, "numpy": np.__version__}


def case_entry(case, arrays: dict, source: str, sha: str) -> dict:
    """The manifest entry of one case (see the format file)."""
    tolerance = case.tolerance
    atols = key_atols(arrays, case.dtype, tolerance["rtol"])
    entry = {
        "name": case.name, "file": f"{case.name}.npz", "sha256": sha, "kind": case.kind,
        "description": case.description, "config": case.config,
        "spec": case.function_spec, "dtype": case.dtype,
        **({"storage_dtype": case.storage_dtype} if case.storage_dtype != case.dtype else {}),
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype),
                       **({"atol": atols[k]} if k in atols else {})}
                   for k, v in sorted(arrays.items())},
        "tolerance": dict(tolerance, depth=case.depth),
        "reference": source,
    }
    if case.probes:
        entry["probes"] = list(case.probes)
        entry["probe_graph"] = {p: list(case.probe_graph.get(p, ())) for p in case.probes}
        if case.probe_axes:
            entry["probe_axes"] = {p: list(a) for p, a in case.probe_axes.items()}
    return entry


class Exported(NamedTuple):
    """What ``export`` wrote: the manifest, and the cases it refused with the reason."""

    manifest: dict
    refused: list  # [(case name, message)]


def export(golden_dir, cases, log=None) -> Exported:
    """Write every case's archive and the manifest into ``golden_dir``.

    A case whose reference is in doubt (the engine and ``jax.vjp`` disagree, or a kink case
    contradicts the declared conventions: ``oracle.reference.ReferenceMismatch``) is not
    written; it is listed in ``refused`` and the others still are. ``log(line)`` (optional)
    is called once per case.
    """
    golden_dir = Path(golden_dir)
    golden_dir.mkdir(parents=True, exist_ok=True)
    entries, refused = [], []
    for case in cases:
        try:
            arrays = reference(case)
        except ReferenceMismatch as err:
            refused.append((case.name, str(err)))
            if log is not None:
                log(f"refused {case.name}: {err}")
            continue
        source = arrays.pop("_source")
        path = golden_dir / f"{case.name}.npz"
        write_npz(path, arrays)
        entries.append(case_entry(case, arrays, source, sha256(path)))
        if log is not None:
            log(f"wrote {path} ({len(arrays)} arrays; {source.split(' ')[0]})")
    manifest = {"format": FORMAT, "created_by": created_by(), "conventions": CONVENTIONS,
                "tolerance_rule": TOLERANCE_RULE, "cases": entries}
    tmp = golden_dir / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, default=_jsonable) + "\n")
    os.replace(tmp, golden_dir / "manifest.json")
    return Exported(manifest, refused)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {value!r}")
