"""The golden values of a case, and its gradient check.

``reference(case)`` computes, in float64 from the case's own (dtype-rounded) params and
inputs, everything a golden file holds: outputs, the vector-Jacobian product with the
case's cotangents from funcnn's hand-written engine, cross-checked against ``jax.vjp``
(a disagreement beyond ``oracle.tolerance``'s float64 deep rtol is an error, never a golden
file), probes for models and the SGD trajectory for training cases. The arrays are then
rounded to the case's dtype.

``check_case(case)`` runs ``check_grads`` on it: models are checked as
``probe_fn(params, inputs, probes)`` with zero probes, so the per-layer adjoints are checked
against finite differences too; training cases also compare the engine's trajectory with
jax's, step by step.
"""
from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

from oracle import check as check_mod
from oracle import leaf_compare
from oracle.cases.base import (
    LOW_PRECISION,
    _is_float_dtype,
    flat_keys,
    jitted,
    numpy_dtype,
    to_dtype,
)
from oracle.conventions import CONVENTIONS
from oracle.report import LeafReport
from oracle.tolerance import NOISE_ULPS, rtol_for


class ReferenceMismatch(RuntimeError):
    """The engine and jax.grad disagree on a case: no golden value can be trusted."""


def _x64_if(flag):
    return jax.enable_x64(True) if flag else contextlib.nullcontext()


def _is_float(x):
    return _is_float_dtype(np.asarray(x).dtype)


def cotangents(case) -> dict:
    """The case's output cotangents in its dtype (``Case.cotangents``)."""
    return case.cotangents()


def _vjp(fn, args, diff_args, ct):
    """(outputs, (engine grads, jax grads), mask, source) in float64, for the float leaves
    of args[diff_args] (the mask); if the engine fails, jax's grads twice and a source
    that says so."""
    flat, treedef = jax.tree_util.tree_flatten(tuple(args))
    sizes = [len(jax.tree_util.tree_leaves(a)) for a in args]
    owner = [i for i, n in enumerate(sizes) for _ in range(n)]
    mask = tuple(o in diff_args and _is_float(x) for o, x in zip(owner, flat, strict=True))
    grads_fn, _ = check_mod._functions(fn, treedef, mask)
    diff = [jnp.asarray(x) for x, m in zip(flat, mask, strict=True) if m]
    fixed = [jnp.asarray(x) for x, m in zip(flat, mask, strict=True) if not m]
    try:
        res = grads_fn(diff, fixed, ct, ("engine", "jax"))
    except Exception as err:  # recorded in the manifest; the values then come from jax
        out, grads = grads_fn(diff, fixed, ct, ("jax",))["jax"]
        grads = [np.asarray(g) for g in grads]
        return out, (grads, grads), mask, \
            f"jax.vjp (funcnn.backprop failed: {type(err).__name__}: {str(err)[:300]})"
    (out, e_grads), (_, j_grads) = res["engine"], res["jax"]
    e_grads, j_grads = [np.asarray(g) for g in e_grads], [np.asarray(g) for g in j_grads]
    return out, (e_grads, j_grads), mask, "funcnn.backprop (float64), cross-checked with jax.vjp"


def _cross_check(name, keys, e_grads, j_grads):
    """Raise ReferenceMismatch unless the engine and jax agree within the float64 deep rtol
    (plus the noise floor of ``oracle.tolerance``) on every gradient key."""
    overall = max((float(np.max(np.abs(j), initial=0.0)) for j in j_grads), default=0.0)
    floor = NOISE_ULPS * float(np.finfo(np.float64).eps) * overall
    for key, e, j in zip(keys, e_grads, j_grads, strict=True):
        tol = rtol_for("float64", "deep") * (np.abs(j) + np.max(np.abs(j), initial=0.0)) + floor
        if not np.all(np.abs(e - j) <= tol):
            raise ReferenceMismatch(f"{name}: {key}: funcnn.backprop and jax.vjp disagree (max "
                                 f"|diff| {np.max(np.abs(e - j)):.3e}); no golden value is "
                                 "written for a case whose reference is in doubt")


def _same_function(case, keys, out, grads, mask, plain):
    """Raise ReferenceMismatch unless the probed function (taps at zero) and the case's own
    function give the same outputs and gradients: an instrumented twin
    (``oracle.cases.instrumented``) must compute exactly funcnn's layer."""
    p_out, p_grads, p_mask, _ = plain
    n = len(p_mask)
    pairs = [(f"outputs/{k}", np.asarray(out[k]), np.asarray(p_out[k])) for k in p_out]
    mine = [g for g, m in zip(grads, mask, strict=False) if m]
    theirs = [k for k, m in zip(keys, mask[:n], strict=True) if m]
    pairs += list(zip(theirs, mine[:len(theirs)], p_grads[1], strict=True))
    overall = max(float(np.max(np.abs(b), initial=0.0)) for _, _, b in pairs)
    floor = NOISE_ULPS * float(np.finfo(np.float64).eps) * overall
    for key, a, b in pairs:
        tol = rtol_for("float64", "deep") * (np.abs(b) + np.max(np.abs(b), initial=0.0)) + floor
        if not np.all(np.abs(a - b) <= tol):
            raise ReferenceMismatch(f"{case.name}: {key}: the probed function and the case's "
                                    f"own function disagree (max |diff| "
                                    f"{np.max(np.abs(a - b)):.3e}); the probes would not be "
                                    "those of the function")


def reference(case) -> dict:
    """Every golden array of ``case``, keyed as in format funcnn-oracle/1, in its dtype.
    ``reference(case)["_source"]`` is not an array: it says which engine produced them."""
    b = case.built
    params, inputs = case.params, case.inputs
    ct = cotangents(case)
    arrays = {**flat_keys("params", params), **flat_keys("inputs", inputs),
              **flat_keys("cotangents", ct)}
    with jax.enable_x64(True):
        p64, i64, c64 = (to_dtype(t, np.float64) for t in (params, inputs, ct))
        keys = list(flat_keys("grads/params", p64)) + list(flat_keys("grads/inputs", i64))
        if b.probe_fn is not None:
            values = jitted(b.probe_values)(p64, i64)
            taps = {k: jnp.zeros_like(v) for k, v in values.items()}
            out, grads, mask, source = _vjp(b.probe_fn, (p64, i64, taps), (0, 1, 2), c64)
            _same_function(case, keys, out, grads[1], mask, _vjp(b.fn, (p64, i64), (0, 1), c64))
            keys += [f"probes/{k}/adjoint" for k in sorted(taps)]
            for name in b.probes:
                arrays[f"probes/{name}/value"] = np.asarray(values[name])
        else:
            out, grads, mask, source = _vjp(b.fn, (p64, i64), (0, 1), c64)
        arrays.update(flat_keys("outputs", out))
        grad_keys = [k for k, m in zip(keys, mask, strict=True) if m]
        _cross_check(case.name, grad_keys, *grads)
        arrays.update(dict(zip(grad_keys, grads[0], strict=True)))
        if b.convention is not None:
            _hold_convention(case, i64["x"], c64["y"], dict(zip(grad_keys, grads[1],
                                                                strict=True)),
                             arrays["grads/inputs/x"])
        if b.training is not None:
            arrays.update(_trajectory(b.training, p64, i64, engine=True)[0])
    out = {k: (_stored(v, case) if _is_float(v) else v) for k, v in arrays.items()}
    out["_source"] = source
    return out


def _stored(value, case):
    """A float array rounded to the case's dtype, in its storage dtype (bfloat16 values are
    stored as float32)."""
    return np.asarray(value).astype(numpy_dtype(case.dtype)).astype(case.storage_dtype)


def _trajectory(training, params, inputs, engine=True):
    """({trajectory keys: arrays}, source) for plain SGD with the engine's (or jax's) grads."""
    flat, treedef = jax.tree_util.tree_flatten((params, inputs))
    n_params = len(jax.tree_util.tree_leaves(params))
    mask = tuple(i < n_params for i in range(len(flat)))
    grads_fn, _ = check_mod._functions(training.loss, treedef, mask)
    side = "engine" if engine else "jax"
    p_leaves = [jnp.asarray(x) for x in flat[:n_params]]
    p_tree = jax.tree_util.tree_structure(params)
    arrays, n = {}, training.batch_size
    for k in range(training.steps):
        batch = [jnp.asarray(x[k * n:(k + 1) * n]) for x in flat[n_params:]]
        loss, grads = grads_fn(p_leaves, batch, jnp.ones((), p_leaves[0].dtype), (side,))[side]
        p_leaves = [p - training.learning_rate * g for p, g in zip(p_leaves, grads, strict=True)]
        arrays[f"trajectory/{k}/loss"] = np.asarray(loss)
        arrays.update(flat_keys(f"trajectory/{k}/params",
                                jax.tree_util.tree_unflatten(p_tree, p_leaves)))
    return arrays, None


def at_kinks(case, x, ct, grad):
    """The derivative at the entries of x that sit exactly on a kink: grad / cotangent."""
    x, ct, grad = (np.asarray(v, np.float64) for v in (x, ct, grad))
    mask = np.isin(x, case.built.kinks)
    return grad[mask] / ct[mask]


def _hold_convention(case, x, ct, jax_grads, engine_grad):
    """Raise ReferenceMismatch unless engine and jax give the declared convention at the kinks."""
    key = case.built.convention
    declared = CONVENTIONS[key]
    for side, g in (("funcnn.backprop", engine_grad), ("jax.vjp", jax_grads["grads/inputs/x"])):
        got = at_kinks(case, x, ct, g)
        if not np.allclose(got, declared, rtol=0, atol=1e-12):
            raise ReferenceMismatch(
                f"{case.name}: the declared convention {key} = {declared} "
                f"(funcnn.backprop.conventions) is not what {side} computes at the kink: "
                f"{sorted(set(got.tolist()))}; fix the table or the rule before exporting")


def check_case(case, **kwargs):
    """``check_grads`` on a case (see the module docstring); kwargs go to ``check_grads``."""
    b = case.built
    # float16 and bfloat16 cases: their golden values are float64 computations on the rounded
    # inputs, and that is what is checked (the low-precision budget is for other code)
    dtype = "float64" if case.dtype in LOW_PRECISION else case.dtype
    ct, params, inputs = cotangents(case), case.params, case.inputs
    if dtype != case.dtype:
        ct, params, inputs = (to_dtype(t, np.float64) for t in (ct, params, inputs))
    opts = dict(cotangent=ct, kinks=b.kinks, name=case.name,
                rtol=rtol_for(dtype, case.depth, case.kappa), step_scale=b.step_scale)
    if b.convention is not None:
        opts["kink_grads"] = {k: CONVENTIONS[b.convention] for k in b.kinks}
    opts.update(kwargs)
    if b.probe_fn is not None:
        with _x64_if(dtype == "float64"):
            values = jitted(b.probe_values)(params, inputs)
        probes = {k: np.zeros(v.shape, dtype) for k, v in values.items()}
        report = check_mod.check_grads(b.probe_fn, params, inputs, probes, argnums=(0, 1, 2),
                                       **opts)
    else:
        report = check_mod.check_grads(b.fn, params, inputs, argnums=(0, 1), **opts)
    if b.training is not None and opts.get("engine", True):
        _check_trajectory(case, report, opts["rtol"], params, inputs)
    return report


def _check_trajectory(case, report, rtol, params, inputs):
    """Append engine-vs-jax leaves for every step of the SGD trajectory to ``report``."""
    with _x64_if(np.asarray(jax.tree_util.tree_leaves(params)[0]).dtype == np.float64):
        try:
            mine, _ = _trajectory(case.built.training, params, inputs, engine=True)
        except Exception as err:
            report.errors.append(f"engine trajectory: {type(err).__name__}: {err}")
            return
        theirs, _ = _trajectory(case.built.training, params, inputs, engine=False)
    for key, b in theirs.items():
        a, b = np.asarray(mine[key], np.float64), np.asarray(b, np.float64)
        tol = rtol * (np.abs(b) + np.max(np.abs(b), initial=0.0))
        labels = [tuple(int(j) for j in np.unravel_index(k, b.shape)) for k in range(b.size)]
        leaf = LeafReport(key, b.shape, case.dtype, "engine vs jax only")
        leaf.pairs.append(leaf_compare.pair("engine vs jax", a, b, tol, labels))
        report.leaves.append(leaf)


def computed_in_dtype(case, side="engine") -> dict:
    """The results funcnn itself produces for ``case`` when it computes in the case's dtype
    (``side`` 'engine' or 'jax'): what another float32 (float16, bfloat16) implementation
    would write, in the case's storage dtype. Used to measure the budgets
    (``oracle.tolerance``) and in the round-trip tests."""
    b = case.built
    params, inputs, ct = case.params, case.inputs, cotangents(case)
    with _x64_if(case.dtype == "float64"):
        keys = list(flat_keys("grads/params", params)) + list(flat_keys("grads/inputs", inputs))
        out = {}
        if b.probe_fn is not None:
            values = jitted(b.probe_values)(params, inputs)
            taps = {k: jnp.zeros_like(v) for k, v in values.items()}
            fn, args = b.probe_fn, (params, inputs, taps)
            keys += [f"probes/{k}/adjoint" for k in sorted(taps)]
            out.update({f"probes/{n}/value": np.asarray(values[n]) for n in b.probes})
        else:
            fn, args = b.fn, (params, inputs)
        flat, treedef = jax.tree_util.tree_flatten(args)
        mask = tuple(_is_float(x) for x in flat)
        grads_fn, _ = check_mod._functions(fn, treedef, mask)
        res = grads_fn([jnp.asarray(x) for x, m in zip(flat, mask, strict=True) if m],
                       [jnp.asarray(x) for x, m in zip(flat, mask, strict=True) if not m],
                       jax.tree_util.tree_map(jnp.asarray, ct), (side,))
        outputs, grads = res[side]
        out.update(flat_keys("outputs", outputs))
        out.update(zip([k for k, m in zip(keys, mask, strict=True) if m],
                       [np.asarray(g) for g in grads], strict=True))
        if b.training is not None:
            out.update(_trajectory(b.training, params, inputs, engine=side == "engine")[0])
    return {k: np.asarray(v).astype(case.storage_dtype) if _is_float(v) else np.asarray(v)
            for k, v in out.items()}
