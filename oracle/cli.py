"""The command line: ``python -m oracle list | check | export | verify``.

    python -m oracle list   [--cases GLOB] [--dtypes f64 f32 f16 bf16]
    python -m oracle check  [--cases GLOB] [--dtypes ...] [--json PATH] [-v]
    python -m oracle export GOLDEN [--cases GLOB] [--dtypes ...]
    python -m oracle verify GOLDEN RESULTS [--cases GLOB ...] [--skip probes|trajectory]
                            [--json PATH]

``check`` runs every selected case through the engine, ``jax.vjp`` and float64 finite
differences and exits 0 only if all agree. ``verify`` exits 0 when every compared key passes,
1 on a mismatch or something missing, 2 on input that cannot be used (a missing directory, a
``--cases`` glob that matches nothing, an unknown results key, an unreadable file: the message
names the file and key). The format: ``docs/oracle-format.md``. ``main(argv)`` returns the
exit status, for use in-process.

The command line runs with float64 on (``jax_enable_x64``) and float32 matmuls at full
precision (``jax.default_matmul_precision("highest")``: no TF32 on GPUs).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax

EXAMPLES = """examples:
  python -m oracle check --cases 'layer.conv2d.*'
  python -m oracle export golden/ --dtypes f64
  python scripts/verify_numpy_reference.py golden/ results/
  python -m oracle verify golden/ results/ --json report.json
"""


def _parser():
    p = argparse.ArgumentParser(prog="python -m oracle", description="funcnn's gradient-"
                                "verification oracle", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def selection(q):
        q.add_argument("--cases", metavar="GLOB", help="only cases whose name matches, "
                       "e.g. 'layer.*' or '*.f32'")
        q.add_argument("--dtypes", nargs="+", metavar="DTYPE", help="any of f64 f32 f16 "
                       "bf16 (default f64 f32; the float16 and bfloat16 cases only when asked)")

    selection(sub.add_parser("list", help="list the reference cases"))
    q = sub.add_parser("check", help="engine vs jax.grad vs finite differences on every case")
    selection(q)
    q.add_argument("--json", metavar="PATH", help="also write every report as JSON")
    q.add_argument("-v", "--verbose", action="count", default=0,
                   help="-v: the full table of each failing case; -vv: of every case")
    q = sub.add_parser("export", help="write golden files (format funcnn-oracle/1)")
    q.add_argument("golden", metavar="GOLDEN")
    selection(q)
    q = sub.add_parser("verify", help="compare RESULTS/<case>.npz with the golden files")
    q.add_argument("golden", metavar="GOLDEN")
    q.add_argument("results", metavar="RESULTS")
    q.add_argument("--cases", metavar="GLOB", action="append",
                   help="only cases whose name matches (repeat for several globs)")
    q.add_argument("--skip", choices=("probes", "trajectory"), action="append", default=[],
                   help="do not check the probes (or trajectories) of the cases: the report "
                        "says they were not checked (default: both are part of each case)")
    q.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    return p


def _select(args):
    from oracle import cases
    selected = cases.all(args.cases, args.dtypes)
    if not selected:
        raise ValueError(f"no case matches --cases {args.cases!r} --dtypes {args.dtypes}")
    return selected


def cmd_list(args, out):
    selected = _select(args)
    width = max(len(c.name) for c in selected)
    for c in selected:
        out(f"{c.name.ljust(width)}  {c.kind:<10}  {c.description}")
    out(f"{len(selected)} cases")
    return 0


def cmd_check(args, out):
    selected = _select(args)
    start = time.perf_counter()
    reports, width = [], max(len(c.name) for c in selected)
    out(f"{'case'.ljust(width)}  status  no-deriv  worst (pair: leaf, max_abs / tol)  seconds")
    for case in selected:
        report = case.check()
        reports.append(report)
        leaf, pair = report.worst()
        worst = (f"{pair.pair}: {leaf.path}, {pair.max_abs:.1e} / {pair.tol_at_worst:.1e}"
                 if pair else "-")
        status = "ok" if report.ok else ("ERROR" if report.errors else "FAIL")
        out(f"{case.name.ljust(width)}  {status:<6}  {report.no_derivative_count:>8}  "
            f"{worst}  {report.seconds:.2f}")
        if args.verbose >= 2 or (args.verbose and not report.ok):
            out(report.table())
        elif report.errors:
            out("".join(f"    {e.splitlines()[0][:300]}\n" for e in report.errors).rstrip())
    bad = [r.name for r in reports if not r.ok]
    out(f"{len(reports) - len(bad)} of {len(reports)} cases agree (engine, jax, finite "
        f"differences) in {time.perf_counter() - start:.1f}s")
    if bad:
        out("disagree: " + ", ".join(bad))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"ok": not bad, "cases": [r.to_dict() for r in reports]}, fh, indent=1)
    return 0 if not bad else 1


def cmd_export(args, out):
    from oracle.golden import export
    selected = _select(args)
    done = export(args.golden, selected, log=out)
    out(f"exported {len(done.manifest['cases'])} of {len(selected)} cases to {args.golden}")
    if done.refused:
        out(f"refused {len(done.refused)} (their reference is in doubt): "
            + ", ".join(name for name, _ in done.refused))
        return 1
    return 0


def cmd_verify(args, out):
    from oracle.npzio import InputError
    from oracle.verify import verify
    try:
        report = verify(args.golden, args.results, args.cases, skip=tuple(args.skip))
    except InputError as err:
        if args.json:
            _write_json(args.json, {"ok": False, "exit_code": 2, "error": {
                "file": err.file, "key": err.key, "message": err.message}})
        print(f"error: {err}", file=sys.stderr)
        return 2
    out(report.table())
    if args.json:
        _write_json(args.json, report.to_dict())
    return report.exit_code


def _write_json(path, data):
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1)


def main(argv=None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return int(exit_.code or 0)
    out = lambda line: print(line, flush=True)  # noqa: E731
    commands = {"list": cmd_list, "check": cmd_check, "export": cmd_export,
                "verify": cmd_verify}
    try:
        # float64 on; float32 means float32: no TF32 matmuls (JAX's default for float32 on
        # Ampere and later GPUs), whose ~5e-4 rounding per product is not what the float32
        # budget is for. Context managers: an in-process call leaves the config as it was.
        with jax.enable_x64(True), jax.default_matmul_precision("highest"):
            return commands[args.command](args, out)
    except ValueError as err:  # a selection that matches nothing, an unknown dtype
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if os.environ.get("FUNCNN_ORACLE_DEBUG"):
            raise
        print(f"error: {type(err).__name__}: {err} (set FUNCNN_ORACLE_DEBUG=1 for the "
              "traceback)", file=sys.stderr)
        return 2
