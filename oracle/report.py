"""What ``check_grads`` returns: a ``Report`` of one ``LeafReport`` per differentiated leaf.

Each leaf carries one ``PairResult`` per comparison made on it:

- ``engine vs jax``: funcnn's hand-written engine against ``jax.vjp``, every entry;
- ``engine vs fd`` and ``jax vs fd``: each against float64 central finite differences, per
  coordinate (small leaves) or per random direction (large leaves, compared as
  ``<u, J^T v>`` = ``<J u, v>``).
- with ``check_grads(..., vjp=your_vjp)``: ``yours vs engine``, ``yours vs jax`` (every entry
  with a derivative) and ``yours vs fd``: your backward pass against each of the three;
- with ``kink_grads``: a leaf ``<path> at kinks`` with ``engine vs declared``, ``jax vs
  declared`` (and ``yours vs declared``): the gradient at the kinks against the declared value.

A pair passes when every compared entry has ``|a - b| <= tol``; ``worst`` is the entry with
the largest ``|a - b| / tol`` (the one nearest to failing, or failing worst). Entries where
the function has no derivative (a kink within a finite-difference step) are listed in
``no_derivative`` and left out of the ``fd`` pairs.

    >>> report = oracle.check_grads(f, params, x)
    >>> print(report)            # a table
    >>> report.to_json()         # the same, as JSON
    >>> report.assert_ok()       # raises AssertionError carrying the table
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

PAIRS = ("engine vs jax", "engine vs fd", "jax vs fd")
YOUR_PAIRS = ("yours vs engine", "yours vs jax", "yours vs fd")
DECLARED_PAIRS = ("engine vs declared", "jax vs declared", "yours vs declared")


@dataclass
class PairResult:
    """One comparison on one leaf: ``a`` (first named) against ``b``."""

    pair: str
    compared: int
    max_abs: float
    max_rel: float
    worst: str
    a_at_worst: float
    b_at_worst: float
    tol_at_worst: float
    ok: bool


@dataclass
class LeafReport:
    """Everything checked on one pytree leaf (``path`` as ``params/dense_0/w``)."""

    path: str
    shape: tuple
    dtype: str
    mode: str  # "12 coordinates", "8 directions", or "engine vs jax only"
    pairs: list = field(default_factory=list)
    no_derivative: list = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.pairs)

    @property
    def failed_pairs(self) -> list:
        return [p.pair for p in self.pairs if not p.ok]


@dataclass
class Report:
    """The result of one ``check_grads`` call (or of one reference case's check)."""

    name: str
    dtype: str
    leaves: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors and all(leaf.ok for leaf in self.leaves)

    @property
    def no_derivative_count(self) -> int:
        return sum(len(leaf.no_derivative) for leaf in self.leaves)

    def worst(self):
        """(leaf, pair) with the largest error / tolerance, or (None, None)."""
        best, ratio = (None, None), -1.0
        for leaf in self.leaves:
            for p in leaf.pairs:
                if p.compared == 0:
                    continue
                r = p.max_abs / p.tol_at_worst if p.tol_at_worst > 0 else float("inf")
                r = float("inf") if not p.ok else r
                if r > ratio:
                    best, ratio = (leaf, p), r
        return best

    def table(self) -> str:
        """A fixed-width table: one row per (leaf, pair), then notes and errors."""
        head = f"check_grads {self.name} [{self.dtype}]: {'ok' if self.ok else 'FAIL'}"
        rows = [("leaf", "shape", "checked", "pair", "max_abs", "max_rel", "worst", "a", "b",
                 "tol", "")]
        for leaf in self.leaves:
            for i, p in enumerate(leaf.pairs):
                rows.append((leaf.path if i == 0 else "", str(leaf.shape) if i == 0 else "",
                             leaf.mode if i == 0 else "", p.pair, f"{p.max_abs:.2e}",
                             f"{p.max_rel:.2e}", p.worst, f"{p.a_at_worst:.6g}",
                             f"{p.b_at_worst:.6g}", f"{p.tol_at_worst:.1e}",
                             "ok" if p.ok else "FAIL"))
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        lines = [head] + ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                          for r in rows]
        for leaf in self.leaves:
            if leaf.no_derivative:
                shown = ", ".join(str(i) for i in leaf.no_derivative[:8])
                more = f" (+{len(leaf.no_derivative) - 8} more)" if len(leaf.no_derivative) > 8 \
                    else ""
                lines.append(f"  {leaf.path}: no derivative here at {shown}{more}: not "
                             f"compared with finite differences")
            if leaf.note:
                lines.append(f"  {leaf.path}: {leaf.note}")
        lines += [f"  error: {e}" for e in self.errors]
        return "\n".join(lines)

    __str__ = table

    def to_dict(self) -> dict:
        """Plain JSON types; a non-finite number becomes the string "inf" / "nan"."""
        return _finite({"name": self.name, "dtype": self.dtype, "ok": self.ok,
                        "errors": self.errors, "seconds": round(self.seconds, 3),
                        "leaves": [dict(asdict(leaf), ok=leaf.ok, shape=list(leaf.shape))
                                   for leaf in self.leaves]})

    def to_json(self, indent=2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_jsonable)

    def assert_ok(self) -> Report:
        """Raise ``AssertionError`` with the table unless every pair on every leaf passed."""
        if not self.ok:
            raise AssertionError("gradient check failed:\n" + self.table())
        return self


def _finite(value):
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return str(value)
