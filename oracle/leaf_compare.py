"""Comparing the sides of ``check_grads`` on one leaf: each pair of gradients (engine, jax,
yours, finite differences, the declared value at a kink) entry by entry under its tolerance,
as a :class:`oracle.report.LeafReport`. The tolerances are described in ``oracle.check``."""
from __future__ import annotations

import jax
import numpy as np

from oracle.report import LeafReport, PairResult

SAFETY = 4.0  # times the Richardson error estimate of a finite difference


def pair(name, a, b, tol, labels, mask=None) -> PairResult:
    a, b, tol = (np.asarray(v, np.float64).reshape(-1) for v in (a, b, tol))
    keep = np.ones(a.shape, bool) if mask is None else np.asarray(mask).reshape(-1)
    if not keep.any():
        return PairResult(name, 0, 0.0, 0.0, "-", 0.0, 0.0, 0.0, True)
    diff = np.abs(a - b)
    diff = np.where(np.isnan(diff), np.inf, diff)
    denom = np.maximum(np.abs(a), np.abs(b))
    rel = np.where(diff == 0, 0.0, diff / np.where(denom > 0, denom, 1.0))
    ratio = np.where(keep, np.where(tol > 0, diff / np.where(tol > 0, tol, 1.0),
                                    np.where(diff > 0, np.inf, 0.0)), -1.0)
    w = int(np.argmax(ratio))
    ok = bool(np.all(np.where(keep, diff <= tol, True)))
    return PairResult(name, int(keep.sum()), float(np.max(np.where(keep, diff, 0))),
                      float(np.max(np.where(keep, rel, 0))), str(labels[w]), float(a[w]),
                      float(b[w]), float(tol[w]), ok)



def kink_report(path, x, i, grads, ct, kink_grads, budget, floor):
    """Engine and jax against the declared derivative at the entries of x on a kink; None
    where x has none. The output cotangent paired with x is the one of x's shape."""
    x64 = np.asarray(x, np.float64)
    on = np.isin(x64, list(kink_grads))
    cts = [np.asarray(c, np.float64) for c in jax.tree_util.tree_leaves(ct)
           if np.shape(c) == x.shape]
    if not on.any() or len(cts) != 1:
        return None
    want = cts[0][on] * np.array([kink_grads[v] for v in x64[on]])
    labels = [str(tuple(int(j) for j in idx)) for idx in np.argwhere(on)]
    declared = sorted(set(kink_grads.values()))
    leaf = LeafReport(f"{path} at kinks", (int(on.sum()),), str(x.dtype),
                      f"declared {declared[0] if len(declared) == 1 else declared}")
    tol = budget * np.abs(want) + floor + np.finfo(x.dtype).eps * np.abs(cts[0][on])
    for side in ("engine", "jax", "yours"):
        if side in grads and grads[side][i] is not None:
            got = np.asarray(grads[side][i], np.float64)[on]
            leaf.pairs.append(pair(f"{side} vs declared", got, want, tol, labels))
    if not leaf.ok:
        leaf.note = ("the gradient at a kink is not the declared convention "
                     "(oracle.conventions)")
    return leaf


def leaf_report(path, x, i, grads, fd, budget, floor, points=()) -> LeafReport:
    g = {side: grads[side][i] for side in grads if grads[side][i] is not None}
    leaf = LeafReport(path, tuple(x.shape), str(x.dtype), "engine vs jax only")
    flat_labels = [tuple(int(j) for j in np.unravel_index(k, x.shape)) for k in range(x.size)]

    def versus(a_side, b_side, mask=None):
        b = np.asarray(g[b_side], np.float64)
        tol = budget * (np.abs(b) + np.max(np.abs(b), initial=0.0)) + floor
        leaf.pairs.append(pair(f"{a_side} vs {b_side}", g[a_side], b, tol, flat_labels, mask))

    if "engine" in g and "jax" in g:
        versus("engine", "jax")
    # entries with no derivative: on a declared kink, or a coordinate where fd found one
    kinked = np.isin(np.asarray(x, np.float64).reshape(-1), points) if points else \
        np.zeros(x.size, bool)
    if fd is not None and fd[i][0].coordinatewise:
        kinked = kinked | ~fd[i][1].smooth
    if fd is not None:
        dirs, est, no_deriv = fd[i]
        leaf.mode = f"{len(dirs.h)} {'coordinates' if dirs.coordinatewise else 'directions'}"
        leaf.no_derivative = [str(lab) for lab, nd in zip(dirs.labels, no_deriv, strict=True)
                              if nd]
    sides = [side for side in ("engine", "jax") if side in g]
    for side in sides + (["yours"] if "yours" in g else []):
        if side == "yours":
            for other in sides:
                versus("yours", other, ~kinked)
        if fd is None:
            continue
        gf = np.asarray(g[side], np.float64).reshape(-1)
        a = dirs.u @ gf  # <u_d, J^T v>
        if dirs.coordinatewise:
            scale = np.full(a.shape, np.max(np.abs(gf), initial=0.0))
        else:
            scale = np.abs(dirs.u) @ np.abs(gf)
        tol = SAFETY * est.err + budget * (np.abs(est.deriv) + scale) + floor
        leaf.pairs.append(pair(f"{side} vs fd", a, est.deriv, tol, dirs.labels, ~no_deriv))
    if fd is not None and leaf.no_derivative and len(leaf.no_derivative) == len(dirs.h):
        leaf.note = "every checked entry is at a point with no derivative"
    theirs = [p for p in leaf.pairs if not p.pair.startswith("yours")]
    if theirs and all(p.ok for p in theirs) and not leaf.ok:
        others = ", ".join(p.replace("yours vs ", "") for p in leaf.failed_pairs)
        leaf.note = f"your vjp disagrees with {others}, which agree: the bug is in your vjp"
    return leaf
