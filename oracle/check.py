"""``check_grads``: one gradient, three ways, compared leaf by leaf.

For a pure JAX function ``f(*args)`` and a cotangent ``v`` of its output (1 for a scalar,
seeded standard normal otherwise), the vector-Jacobian product ``J^T v`` with respect to the
float leaves of ``args[argnums]`` is computed by

1. ``engine``: funcnn's hand-written reverse mode, ``funcnn.backprop.vjp``;
2. ``jax``: ``jax.vjp``;
3. ``fd``: central finite differences of ``s = <v, f>`` in float64 (``oracle.finite_diff``):
   every coordinate of a leaf with at most ``max_coords`` entries, else ``num_directions``
   random directions u, compared as ``<u, J^T v> = <J u, v>``;
4. ``yours`` (only with ``vjp=``): a backward pass you wrote, ``vjp(*args, v)``, returning
   the cotangents of ``args[argnums]`` like ``jax.vjp``'s function does (one pytree for an
   int ``argnums``, a tuple of them for a tuple). It is called as given (not jitted, so it
   may be NumPy code), on the arguments as passed and ``v`` as NumPy arrays.

Your gradient is compared with all three: pairs ``yours vs engine``, ``yours vs jax``,
``yours vs fd`` on every leaf, and ``yours vs declared`` at the kinks of ``kink_grads``.
Where ``f`` has no derivative (an entry equal to a point of ``kinks`` or of ``kink_grads``, or
a coordinate where finite differences found a kink), ``yours vs engine`` and ``yours vs jax``
do not compare: any convention is yours to choose there, and only the declared one
(``kink_grads``) judges it.

The engine, like ``jax.grad``, differentiates ``jax.custom_vjp`` / ``jax.custom_jvp``
functions by their own rules. A custom_vjp whose bwd is wrong therefore shows as ``engine vs
fd`` and ``jax vs fd`` failing while ``engine vs jax`` passes. To check a backward pass of
your own, pass it as ``vjp=``.

Tolerances (see ``oracle.tolerance``): engine vs jax: ``rtol * (|jax| + scale)``; against
finite differences: ``SAFETY * err + rtol * (|fd| + scale)`` where ``err`` is the Richardson
error estimate of that coordinate or direction and ``scale`` the leaf's largest |gradient|
(for a direction: ``sum |g_i u_i|``). ``rtol`` is the budget for the rounding of the gradient
under test: 1e-9 for float64, 1e-3 for float32 unless given. Every tolerance also has a floor
of ``FLOOR_ULPS * eps(dtype) * (largest |gradient| over all leaves)``: a leaf whose true
gradient is 0 (an attention key bias) holds rounding noise of the size of the others' terms.

No derivative here: a coordinate whose stencil straddles a kink (see ``finite_diff``), or
whose input lies within a step of a point in ``kinks``, is not compared with finite
differences; engine and jax must still agree there (the declared conventions,
``oracle.conventions``).

Float32 inputs: engine and jax run in float32; finite differences always run in float64 at
the same (float32-representable) point. On a GPU, run under
``jax.default_matmul_precision("highest")``: TF32 matmuls (JAX's default there) round far
more than float32 and can exceed the float32 budget (``oracle.tolerance``). Float64 inputs
turn ``jax_enable_x64`` on for the call; the finite differences turn it on for themselves.

Example:
    >>> report = check_grads(lambda w, x: jnp.tanh(x @ w).sum(), w, x, argnums=(0, 1))
    >>> report.assert_ok()
    >>> def my_vjp(w, x, g):  # a hand-written backward of f(w, x) = tanh(x @ w)
    ...     d = g * (1 - np.tanh(x @ w) ** 2)
    ...     return x.T @ d, d @ w.T
    >>> check_grads(lambda w, x: jnp.tanh(x @ w), w, x, argnums=(0, 1), vjp=my_vjp).assert_ok()
"""
from __future__ import annotations

import contextlib
import inspect
import time

import jax
import jax.numpy as jnp
import numpy as np

from oracle import finite_diff
from oracle.report import LeafReport, PairResult, Report
from oracle.tolerance import rtol_for

SAFETY = 4.0
FLOOR_ULPS = 256.0
_CACHE: dict = {}


def _key_name(k) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def arg_names(f, n: int) -> list:
    """Names of f's first n positional parameters (``arg{i}`` where unknown)."""
    try:
        params = [p.name for p in inspect.signature(f).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"arg{i}" for i in range(n)]


def _is_float(x) -> bool:
    return np.issubdtype(np.asarray(x).dtype if not hasattr(x, "dtype") else x.dtype,
                         np.floating)


def _functions(f, treedef, diff_mask):
    """(grads_fn, stencil_fn) for f with this argument structure, jitted and cached."""
    key = (f, treedef, diff_mask)
    if key in _CACHE:
        return _CACHE[key]

    def call(diff, fixed):
        it_d, it_f = iter(diff), iter(fixed)
        leaves = [next(it_d) if m else next(it_f) for m in diff_mask]
        return f(*jax.tree_util.tree_unflatten(treedef, leaves))

    def grads(diff, fixed, ct, sides):
        """{side: (outputs, grads)} for each side in ('engine', 'jax')."""
        from funcnn import backprop  # here, so check_grads(engine=False) works without it
        vjps = {"engine": backprop.vjp, "jax": jax.vjp}
        res = {}
        for side in sides:
            out, vjp_fn = vjps[side](lambda *d: call(list(d), fixed), *diff)
            res[side] = (out, list(vjp_fn(ct)))
        return res

    def s(theta, shapes, fixed, ct):
        diff, start = [], 0
        for shape in shapes:
            size = int(np.prod(shape, dtype=int))
            diff.append(theta[start:start + size].reshape(shape))
            start += size
        out = jax.tree_util.tree_leaves(call(diff, fixed))
        cts = jax.tree_util.tree_leaves(ct)
        value = sum(jnp.sum(c * o) for c, o in zip(cts, out, strict=True))
        magnitude = sum(jnp.sum(jnp.abs(c * o)) for c, o in zip(cts, out, strict=True))
        return value, magnitude

    def stencil(theta0, u, h, fixed, ct, shapes):
        steps = h[:, None] * jnp.asarray(finite_diff.OFFSETS)[None, :]  # [D, 6]
        points = theta0[None, None, :] + steps[:, :, None] * u[:, None, :]  # [D, 6, N]
        flat = points.reshape(-1, theta0.shape[0])
        values, _ = jax.vmap(lambda t: s(t, shapes, fixed, ct))(flat)
        center, magnitude = s(theta0, shapes, fixed, ct)
        return center, magnitude, values.reshape(steps.shape)

    fns = (jax.jit(grads, static_argnames="sides"), jax.jit(stencil, static_argnames="shapes"))
    _CACHE[key] = fns
    return fns


def _pair(name, a, b, tol, labels, mask=None) -> PairResult:
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


def _path(names, path) -> str:
    return "/".join([names[path[0].idx]] + [_key_name(k) for k in path[1:]])


def check_grads(f, *args, argnums=0, vjp=None, cotangent=None, seed=0, max_coords=64,
                num_directions=8, kinks=(), kink_grads=None, engine=True, rtol=None,
                name=None, step_scale=None) -> Report:
    """Compare funcnn's engine, ``jax.vjp`` and float64 finite differences on ``f(*args)``,
    and your own backward pass ``vjp`` if given.

    Args:
        f: a pure JAX function of ``args`` returning an array or a pytree of float arrays.
        args: its arguments (pytrees of arrays); integer leaves are never differentiated.
        argnums: int or tuple: the arguments whose float leaves are checked.
        vjp: your gradient, ``vjp(*args, v) -> cotangents``: ``v`` has the structure of f's
            output (1.0 for a scalar f: then return the gradient); the result is the
            cotangent of ``args[argnums]`` for an int ``argnums``, else a tuple with one per
            entry of ``argnums``, each with its argument's structure and shapes (None at
            integer leaves). Adds the pairs ``yours vs engine``, ``yours vs jax``, ``yours
            vs fd`` (and ``yours vs declared`` with ``kink_grads``); if it raises or returns
            the wrong structure, the report carries an error ``yours: ...``.
        cotangent: v, with the structure of f's output; default 1 for a scalar output,
            else standard normal from ``numpy.random.default_rng(seed)``.
        seed: also seeds the random directions of large leaves (``finite_diff``).
        max_coords: leaves with at most this many entries are checked at every coordinate.
        num_directions: random directions for larger leaves.
        kinks: input values where f has no derivative (e.g. ``(0.0,)`` for relu): a
            coordinate within a step of one is "no derivative here".
        kink_grads: for an elementwise f, the declared derivative at kink points, e.g.
            ``{0.0: 0.0}`` for relu: at every input entry exactly equal to a key, the
            engine's, jax's (and your) gradient must be cotangent * value (a leaf
            ``<path> at kinks`` with pairs ``engine vs declared``, ``jax vs declared``,
            ``yours vs declared``).
        engine: False checks only jax against finite differences.
        rtol: the rounding budget of the gradient under test (``oracle.tolerance``).
        name: the report's title (default: f's name).
        step_scale: if given, every finite-difference step is ``STEP_FRACTION * step_scale``
            instead of relative to each input's magnitude (``oracle.finite_diff``).

    Returns: a ``Report``; ``report.assert_ok()`` raises with its table.

    Raises: ``NotAJaxFunction`` (a ``TypeError``) if ``f`` cannot be traced by JAX (NumPy or
    PyTorch code): the message says to pass your backward as ``vjp=`` with a JAX forward, or
    to wrap yours with ``jax.pure_callback``.
    """
    start = time.perf_counter()
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    names = arg_names(f, len(args))
    flat, treedef = jax.tree_util.tree_flatten_with_path(tuple(args))
    paths = [_path(names, p) for p, _ in flat]
    values = [leaf for _, leaf in flat]
    diff_mask = tuple(p[0].idx in nums and _is_float(v) for (p, _), v in zip(flat, values,
                                                                             strict=True))
    dtypes = sorted({str(np.asarray(v).dtype) for v, m in zip(values, diff_mask, strict=True)
                     if m})
    report = Report(name or getattr(f, "__name__", "f"), "/".join(dtypes))
    if not any(diff_mask):
        report.errors.append(f"no float leaves in the arguments {nums} to differentiate")
        return report
    wide = any(np.asarray(v).dtype == np.float64 for v in values)
    ctx = jax.enable_x64(True) if wide else contextlib.nullcontext()
    grads_fn, stencil_fn = _functions(f, treedef, diff_mask)
    with ctx:
        diff = [jnp.asarray(v) for v, m in zip(values, diff_mask, strict=True) if m]
        fixed = [jnp.asarray(v) for v, m in zip(values, diff_mask, strict=True) if not m]
        out_shape = _trace_shapes(f, jax.tree_util.tree_unflatten(
            treedef, _merge(diff, fixed, diff_mask)))
        ct = _cotangent(out_shape, cotangent, seed)
        grads, error = vjp_both(grads_fn, diff, fixed, ct, engine)
        report.errors += error
        if vjp is not None:
            yours, error = _yours(vjp, args, argnums, nums, ct, paths, values, diff_mask)
            grads["yours"] = yours
            report.errors += error
    fd = _finite_differences(stencil_fn, values, diff_mask, ct, seed, max_coords,
                             num_directions, kinks, step_scale)
    if isinstance(fd, str):
        report.errors.append(fd)
        fd = None
    diff_paths = [p for p, m in zip(paths, diff_mask, strict=True) if m]
    diff_values = [np.asarray(v) for v, m in zip(values, diff_mask, strict=True) if m]
    side = "jax" if "jax" in grads else "engine" if "engine" in grads else "yours"
    overall = max((float(np.max(np.abs(g), initial=0.0)) for g in grads.get(side, [])
                   if g is not None), default=0.0)
    points = list(kinks) + list(kink_grads or {})
    for i, (path, x) in enumerate(zip(diff_paths, diff_values, strict=True)):
        budget = rtol if rtol is not None else rtol_for(str(x.dtype))
        floor = FLOOR_ULPS * float(np.finfo(x.dtype).eps) * overall
        report.leaves.append(_leaf_report(path, x, i, grads, fd, budget, floor, points))
        if kink_grads:
            leaf = _kink_report(path, x, i, grads, ct, kink_grads, budget, floor)
            if leaf is not None:
                report.leaves.append(leaf)
    report.seconds = time.perf_counter() - start
    return report


class NotAJaxFunction(TypeError):
    """``check_grads`` was given a function that cannot be traced by JAX."""


NOT_JAX = ("check_grads needs f to be a JAX function (jax.numpy / lax), because funcnn's "
           "engine, jax.vjp and the finite differences all trace it; calling {name} on traced "
           "arrays raised {error}. To check a NumPy, PyTorch or other implementation: pass "
           "its backward pass as vjp=my_vjp (called with NumPy arrays: my_vjp(*args, "
           "cotangent) -> cotangents) and give a JAX version of the forward as f; or wrap "
           "your forward (and backward) with jax.pure_callback inside a jax.custom_vjp, so "
           "that JAX can call them. To check results files instead, see `python -m oracle "
           "verify` (docs/oracle-format.md).")


def _trace_shapes(f, args):
    """``jax.eval_shape`` of f on args; a function that is not JAX-traceable (it calls
    ``np.asarray`` or a torch op on its input) raises ``NotAJaxFunction`` saying what to do."""
    try:
        return jax.eval_shape(lambda *a: f(*a), *args)
    except Exception as err:
        text = f"{type(err).__name__}: {err}"
        if "Tracer" not in text and not isinstance(err, jax.errors.ConcretizationTypeError):
            raise
        first = text.splitlines()[0][:300]
        raise NotAJaxFunction(NOT_JAX.format(name=getattr(f, "__name__", "f"), error=first)) \
            from err


def vjp_both(grads_fn, diff, fixed, ct, engine=True):
    """({side: [grad leaves]}, [error messages]): engine and jax in one jitted call; if the
    engine fails (a missing rule), jax alone and the engine's error."""
    grads, errors = {}, []
    sides = ("engine", "jax") if engine else ("jax",)
    try:
        res = grads_fn(diff, fixed, ct, sides)
    except Exception as err:  # the report names it; it is not a crash of the oracle
        if not engine:
            return grads, [f"jax: {type(err).__name__}: {err}"]
        errors.append(f"engine: {type(err).__name__}: {err}")
        try:
            res = grads_fn(diff, fixed, ct, ("jax",))
        except Exception as err2:
            return grads, errors + [f"jax: {type(err2).__name__}: {err2}"]
    for side, (_, g) in res.items():
        grads[side] = [np.asarray(x) for x in g]
    return grads, errors


def _yours(vjp, args, argnums, nums, ct, paths, values, diff_mask):
    """([your gradient leaf or None per differentiated leaf], [error messages])."""
    n_diff = sum(diff_mask)
    ct_np = jax.tree_util.tree_map(np.asarray, ct)
    try:
        out = vjp(*args, ct_np)
    except Exception as err:  # the report names it; it is not a crash of the oracle
        return [None] * n_diff, [f"yours: vjp raised {type(err).__name__}: {err}"]
    if isinstance(argnums, int):
        per_arg = {argnums: out}
    elif isinstance(out, tuple | list) and len(out) == len(nums):
        per_arg = dict(zip(nums, out, strict=True))
    else:
        got = f"a {type(out).__name__} of length {len(out)}" if isinstance(
            out, tuple | list) else f"a {type(out).__name__}"
        return [None] * n_diff, [f"yours: vjp returned {got}; expected a tuple of {len(nums)} "
                                 f"cotangents, one per entry of argnums={tuple(nums)}"]
    leaves, errors, k = [], [], 0
    for j, arg in enumerate(args):
        treedef = jax.tree_util.tree_structure(arg)
        mine = None
        if j in per_arg:
            try:
                mine = treedef.flatten_up_to(per_arg[j])
            except Exception as err:
                errors.append(f"yours: the cotangent of argument {j} does not have its "
                              f"structure ({err})")
        for leaf_i in range(treedef.num_leaves):
            if diff_mask[k]:
                g = None if mine is None else mine[leaf_i]
                x = np.asarray(values[k])
                if mine is not None and g is None:
                    errors.append(f"yours: no cotangent for {paths[k]}")
                elif g is not None:
                    try:
                        g = np.asarray(g, np.float64)
                    except Exception as err:
                        errors.append(f"yours: {paths[k]}: not an array "
                                      f"({type(err).__name__}: {err})")
                        g = None
                    if g is not None and g.shape != x.shape:
                        errors.append(f"yours: {paths[k]}: cotangent of shape {g.shape}, the "
                                      f"argument has shape {x.shape}")
                        g = None
                leaves.append(g)
            k += 1
    return leaves, errors


def _merge(diff, fixed, diff_mask):
    it_d, it_f = iter(diff), iter(fixed)
    return [next(it_d) if m else next(it_f) for m in diff_mask]


def _cotangent(out_shape, cotangent, seed):
    if cotangent is not None:
        return jax.tree_util.tree_map(jnp.asarray, cotangent)
    rng = np.random.default_rng(seed)

    def draw(leaf):
        if leaf.shape == ():
            return jnp.ones((), leaf.dtype)
        return jnp.asarray(rng.standard_normal(leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map(draw, out_shape)


def _finite_differences(stencil_fn, values, diff_mask, ct, seed, max_coords, num_directions,
                        kinks, step_scale=None):
    """Per differentiated leaf: (Directions, Estimate, no_derivative mask); or an error."""
    diff_values = [np.asarray(v, np.float64) for v, m in zip(values, diff_mask, strict=True)
                   if m]
    dirs = [finite_diff.directions_for(x, max_coords, num_directions, (seed, i), step_scale)
            for i, x in enumerate(diff_values)]
    sizes = [x.size for x in diff_values]
    total, rows = sum(sizes), sum(len(d.h) for d in dirs)
    u = np.zeros((rows, total))
    row, col = 0, 0
    for d, size in zip(dirs, sizes, strict=True):
        u[row:row + len(d.h), col:col + size] = d.u
        row, col = row + len(d.h), col + size
    h = np.concatenate([d.h for d in dirs])
    theta0 = np.concatenate([x.reshape(-1) for x in diff_values])
    shapes = tuple(tuple(x.shape) for x in diff_values)
    with jax.enable_x64(True):
        fixed = [jnp.asarray(np.asarray(v, np.float64) if _is_float(v) else np.asarray(v))
                 for v, m in zip(values, diff_mask, strict=True) if not m]
        ct64 = jax.tree_util.tree_map(lambda c: jnp.asarray(np.asarray(c, np.float64)), ct)
        try:
            center, magnitude, outer = stencil_fn(jnp.asarray(theta0), jnp.asarray(u),
                                                  jnp.asarray(h), fixed, ct64, shapes)
        except Exception as err:
            return f"finite differences: {type(err).__name__}: {err}"
    est = finite_diff.estimate(float(center), float(magnitude), np.asarray(outer), h)
    if not np.isfinite(float(center)):
        return f"finite differences: f is not finite at the given point (s = {float(center)})"
    results, row = [], 0
    for x, d in zip(diff_values, dirs, strict=True):
        n = len(d.h)
        part = finite_diff.Estimate(*(a[row:row + n] for a in est))
        no_deriv = ~part.smooth | finite_diff.near_known_kink(x, d, kinks)
        results.append((d, part, no_deriv))
        row += n
    return results


def _kink_report(path, x, i, grads, ct, kink_grads, budget, floor):
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
            leaf.pairs.append(_pair(f"{side} vs declared", got, want, tol, labels))
    if not leaf.ok:
        leaf.note = ("the gradient at a kink is not the declared convention "
                     "(oracle.conventions)")
    return leaf


def _leaf_report(path, x, i, grads, fd, budget, floor, points=()) -> LeafReport:
    g = {side: grads[side][i] for side in grads if grads[side][i] is not None}
    leaf = LeafReport(path, tuple(x.shape), str(x.dtype), "engine vs jax only")
    flat_labels = [tuple(int(j) for j in np.unravel_index(k, x.shape)) for k in range(x.size)]

    def versus(a_side, b_side, mask=None):
        b = np.asarray(g[b_side], np.float64)
        tol = budget * (np.abs(b) + np.max(np.abs(b), initial=0.0)) + floor
        leaf.pairs.append(_pair(f"{a_side} vs {b_side}", g[a_side], b, tol, flat_labels, mask))

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
        leaf.pairs.append(_pair(f"{side} vs fd", a, est.deriv, tol, dirs.labels, ~no_deriv))
    if fd is not None and leaf.no_derivative and len(leaf.no_derivative) == len(dirs.h):
        leaf.note = "every checked entry is at a point with no derivative"
    theirs = [p for p in leaf.pairs if not p.pair.startswith("yours")]
    if theirs and all(p.ok for p in theirs) and not leaf.ok:
        others = ", ".join(p.replace("yours vs ", "") for p in leaf.failed_pairs)
        leaf.note = f"your vjp disagrees with {others}, which agree: the bug is in your vjp"
    return leaf
