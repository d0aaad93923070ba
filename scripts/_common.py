"""What every research script shares: its command line, its output folder, its JSON, its
figures (matplotlib on the Agg backend: no display needed), its printed table and its timer.

Each script is ``python scripts/NAME.py [--seed S] [--out DIR] [--quick]`` and exposes
``main(argv=None) -> dict`` (the numbers it also writes to ``DIR/NAME.json``), so the test suite
runs it in-process.

    >>> args = parse_args("activations", __doc__, argv)
    >>> out = out_dir(args)
    >>> fig, ax = plt.subplots(); ...; save_figure(fig, out, "activations")
    >>> write_json(out, "activations", {"seed": args.seed, ...})
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: scripts run headless (CI, ssh, the test suite)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_ROOT = Path(__file__).resolve().parents[1]

__all__ = ["parse_args", "out_dir", "write_json", "save_figure", "print_table", "min_time",
           "fit_loglog_slope", "plt", "to_jsonable"]


def parse_args(name: str, description: str | None, argv=None,
               extra=None) -> argparse.Namespace:
    """The common command line: ``--seed``, ``--out`` (default ``runs/NAME/``), ``--quick``.

    ``extra(parser)`` may add script-specific options.
    """
    parser = argparse.ArgumentParser(
        prog=f"{name}.py", description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, default=Path("runs") / name,
                        help=f"output folder for figures and JSON (default runs/{name}/)")
    parser.add_argument("--quick", action="store_true",
                        help="a reduced run of a few seconds (what the test suite runs)")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    args.name = name
    return args


def out_dir(args) -> Path:
    """Create and return ``args.out``."""
    path = Path(args.out)
    path.mkdir(parents=True, exist_ok=True)
    return path


def to_jsonable(x):
    """Arrays, numpy scalars, tuples, paths -> plain JSON values (inf/nan become strings)."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "shape") and hasattr(x, "dtype"):  # numpy or jax array / scalar
        a = np.asarray(x)
        if a.ndim:
            return [to_jsonable(v) for v in a.tolist()]
        x = a.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # "inf", "-inf", "nan": JSON has no such numbers
    return x


def write_json(out: Path, name: str, data: dict) -> Path:
    """Write ``data`` to ``out/NAME.json`` (whole or not at all) and return the path."""
    path = Path(out) / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(to_jsonable(data), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def save_figure(fig, out: Path, name: str) -> Path:
    """Save ``fig`` as ``out/NAME.png`` (tight layout, 120 dpi) and close it."""
    path = Path(out) / f"{name}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def print_table(headers, rows, title: str | None = None) -> str:
    """Print (and return) a plain-text table; floats with 4 significant digits."""
    def cell(v):
        if isinstance(v, float | np.floating):
            return f"{v:.4g}"
        return str(v)

    rows = [list(r) for r in rows]
    text = [[cell(h) for h in headers]] + [[cell(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(headers))]
    # numbers right-aligned, text left-aligned (by the first row's type in each column)
    numeric = [bool(rows) and isinstance(rows[0][i], int | float | np.number)
               for i in range(len(headers))]
    lines = ["  ".join((c.rjust(w) if num else c.ljust(w)) for c, w, num in
                       zip(r, widths, numeric, strict=True)).rstrip() for r in text]
    lines.insert(1, "-" * len(lines[0]))
    if title:
        lines.insert(0, title)
    s = "\n".join(lines)
    print(s, flush=True)
    return s


def min_time(fn, repeats: int, number: int = 1) -> float:
    """The minimum over ``repeats`` of the mean wall time of ``number`` calls of ``fn()``.

    ``fn`` must block until its result is ready (call ``.block_until_ready()``). The minimum,
    not the mean, is the estimate least disturbed by other processes on a shared machine.
    """
    fn()  # warm-up: compile, fill caches
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def fit_loglog_slope(sizes, times) -> tuple[float, float]:
    """Least-squares line through (log sizes, log times): ``(slope, intercept)``."""
    slope, intercept = np.polyfit(np.log(np.asarray(sizes, float)),
                                  np.log(np.asarray(times, float)), 1)
    return float(slope), float(intercept)
