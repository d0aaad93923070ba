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
from oracle.leaf_compare import kink_report, leaf_report
from oracle.report import Report
from oracle.tolerance import rtol_for
from oracle.your_vjp import NotAJaxFunction, trace_shapes, yours  # noqa: F401 (re-exported)

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
        out_shape = trace_shapes(f, jax.tree_util.tree_unflatten(
            treedef, _merge(diff, fixed, diff_mask)))
        ct = _cotangent(out_shape, cotangent, seed)
        grads, error = vjp_both(grads_fn, diff, fixed, ct, engine)
        report.errors += error
        if vjp is not None:
            mine, error = yours(vjp, args, argnums, nums, ct, paths, values, diff_mask)
            grads["yours"] = mine
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
        report.leaves.append(leaf_report(path, x, i, grads, fd, budget, floor, points))
        if kink_grads:
            leaf = kink_report(path, x, i, grads, ct, kink_grads, budget, floor)
            if leaf is not None:
                report.leaves.append(leaf)
    report.seconds = time.perf_counter() - start
    return report


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


