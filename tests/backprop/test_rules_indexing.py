"""gather and the scatters (rules/indexing.py), through the jnp forms that produce them:
x[idx], x[:, idx], jnp.take, jnp.take_along_axis, table[ids], x.at[idx].add/set/..., with
negative, duplicate and out-of-bounds indices. Each case: against jax.vjp and central finite
differences in float64, and under jax.jit. Cases jax.vjp cannot do: finite differences only.

``check_jit`` and ``check_fd`` are shared with test_rules_conv.py and test_rules_windows.py.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from funcnn import backprop
from tests.backprop.sampling import (
    assert_grads_close,
    check_vjp,
    distinct,
    normal,
    primitive_names,
    random_like,
    rng_for,
    vdot,
)
from tests.helpers import assert_trees_close


def check_jit(f, args, rng, rtol=1e-10, atol=1e-12):
    """The engine's vjp traced under jax.jit agrees with jax.vjp on the same cotangent."""
    out, ref_vjp = jax.vjp(f, *args)
    ct = random_like(rng, out)
    jitted = jax.jit(lambda a, c: backprop.vjp(f, *a)[1](c))
    assert_grads_close(jitted(tuple(args), ct), ref_vjp(ct), rtol=rtol, atol=atol,
                       what="under jit: ")


def check_fd(f, args, rng, eps=1e-6, rtol=1e-6, atol=1e-8):
    """For rules jax.vjp cannot check: <vjp(ct), d> against central finite differences of
    <ct, f> along a random direction d, and the jitted vjp against the eager one."""
    out, vjp_fn = backprop.vjp(f, *args)
    ct = random_like(rng, out)
    got = vjp_fn(ct)
    direction = random_like(rng, tuple(args))

    def objective(h):
        return vdot(ct, f(*(x + h * d for x, d in zip(args, direction, strict=True))))

    finite = (objective(eps) - objective(-eps)) / (2 * eps)
    assert_trees_close(vdot(got, direction), finite, rtol=rtol, atol=atol,
                       what="<vjp(ct), d> vs finite differences: ")
    jitted = jax.jit(lambda a, c: backprop.vjp(f, *a)[1](c))(tuple(args), ct)
    assert_trees_close(jitted, got, what="jit vs eager: ")


# --- cases ----------------------------------------------------------------------------------
IDX = np.array([0, -1, 2, 2, 4])          # negative and duplicate
OOB = np.array([0, 7, -9, 3, 1])          # 7 and -9 out of bounds for 5 rows
IDS = np.array([[1, 6, 1, 0], [3, 3, -7, 2]])  # embedding ids, repeated and negative

G_DN = lax.GatherDimensionNumbers(offset_dims=(1, 2), collapsed_slice_dims=(),
                                  start_index_map=(0, 1))
PATCH_IN = np.array([[0, 1], [2, 2], [1, 0]])  # 2x2 windows of a 4x4 operand
PATCH_OUT = np.array([[0, 1], [2, 2], [3, 1]])  # [3, 1] spills over the edge


def patches(mode, at):
    return lambda x: lax.gather(x, at, G_DN, (2, 2), mode=mode, fill_value=0.0)


GATHER = {
    "x[idx] negative, duplicate": (lambda x: x[IDX], [normal((5, 3))]),
    "x[:, idx]": (lambda x: x[:, np.array([1, -2, 0, 1])], [normal((3, 4))]),
    "x[idx, :, j] 3d": (lambda x: x[np.array([1, 0]), :, np.array([2, -1])],
                        [normal((2, 3, 4))]),
    "take fill out of bounds": (lambda x: jnp.take(x, OOB, axis=0, mode="fill", fill_value=0.0),
                                [normal((5, 3))]),
    "take clip out of bounds": (lambda x: jnp.take(x, OOB, axis=0, mode="clip"),
                                [normal((5, 3))]),
    "take axis 1 fill": (lambda x: jnp.take(x, np.array([3, -1, 9]), axis=1, mode="fill",
                                                        fill_value=0.0),
                         [normal((2, 4))]),
    "take_along_axis 1": (lambda x: jnp.take_along_axis(
        x, np.array([[0, 3], [-1, 1], [2, 2]]), axis=1), [normal((3, 4))]),
    "take_along_axis 0 3d": (lambda x: jnp.take_along_axis(
        x, np.array([[[1], [0]], [[1], [1]]]), axis=0), [normal((2, 2, 3))]),
    "embedding table[ids]": (lambda t: t[IDS], [normal((7, 3))]),
    "one-hot @ table": (lambda t: jax.nn.one_hot(IDS, 7, dtype=t.dtype) @ t, [normal((7, 3))]),
    "vmap x[i]": (lambda x: jax.vmap(lambda r, i: r[i])(x, np.array([[0, 2], [1, 1]])),
                  [normal((2, 3, 2))]),
    "patches in bounds": (patches("promise_in_bounds", PATCH_IN), [normal((4, 4))]),
    "patches fill": (patches("fill", PATCH_OUT), [normal((4, 4))]),
    "patches clip": (patches("clip", PATCH_OUT), [normal((4, 4))]),
}

U5 = normal((5, 3))


def setter(**kw):
    return lambda x, u: x.at[IDX].set(u, **kw)


SCATTER = {
    "at[idx].add duplicate": (lambda x, u: x.at[IDX].add(u), [normal((5, 3)), U5]),
    "at[idx].add drop": (lambda x, u: x.at[OOB].add(u), [normal((5, 3)), U5]),
    "at[idx].add clip": (lambda x, u: x.at[OOB].add(u, mode="clip"), [normal((5, 3)), U5]),
    "at[:, idx].add": (lambda x, u: x.at[:, IDX].add(u), [normal((2, 5)), normal((2, 5))]),
    "at[idx].subtract": (lambda x, u: x.at[IDX].subtract(u), [normal((5, 3)), U5]),
    "embedding grad (add into zeros)": (lambda u: jnp.zeros((7, 3)).at[IDS].add(u),
                                        [normal((2, 4, 3))]),
    "vmap at[i].add": (lambda x, u: jax.vmap(lambda r, i, v: r.at[i].add(v))(
        x, np.array([[0, 2, 0], [1, 1, 2]]), u), [normal((2, 3)), normal((2, 3))]),
    "at[idx].set unique": (lambda x, u: x.at[np.array([3, 0, -1])].set(u, unique_indices=True),
                           [normal((5, 3)), normal((3, 3))]),
    "at[idx].set duplicate": (setter(), [normal((5, 3)), U5]),
    "at[idx].set drop": (lambda x, u: x.at[OOB].set(u), [normal((5, 3)), U5]),
    "at[idx].set clip duplicate": (lambda x, u: x.at[OOB].set(u, mode="clip"),
                                   [normal((5, 3)), U5]),
    "at[:, idx].set": (lambda x, u: x.at[:, IDX].set(u), [normal((2, 5)), normal((2, 5))]),
    "at[idx].multiply unique": (
        lambda x, u: x.at[np.array([3, 0, -1])].multiply(u, unique_indices=True),
        [normal((5, 3)), normal((3, 3))]),
    "at[idx].multiply duplicate, operand": (lambda x: x.at[IDX].multiply(U5(rng_for("u"))),
                                            [normal((5, 3))]),
    "at[idx].min duplicate": (lambda x, u: x.at[IDX].min(u), [distinct((5, 3)), distinct((5, 3))]),
    "at[idx].max drop": (lambda x, u: x.at[OOB].max(u), [distinct((5, 3)), distinct((5, 3))]),
}


def draw(name, samplers):
    rng = rng_for(name)
    return rng, [jnp.asarray(s(rng)) for s in samplers]


SET_WITH_DUPLICATES = {"at[idx].set duplicate", "at[idx].set clip duplicate", "at[:, idx].set"}


@pytest.mark.parametrize("name", list(GATHER) + list(SCATTER))
def test_matches_jax_and_finite_differences(name):
    if name in SET_WITH_DUPLICATES and jax.default_backend() == "gpu":
        pytest.skip("a scatter that overwrites with duplicate indices lets an unspecified "
                    "update win on GPUs: which one gets the cotangent is not defined there")
    f, samplers = {**GATHER, **SCATTER}[name]
    rng, args = draw(name, samplers)
    check_vjp(f, args, rng)
    check_jit(f, args, rng)


def test_cases_trace_to_the_primitives_covered():
    seen = set()
    for name, (f, samplers) in {**GATHER, **SCATTER}.items():
        seen |= primitive_names(f, *draw(name, samplers)[1])
    assert {"gather", "scatter-add", "scatter-sub", "scatter", "scatter-mul", "scatter-min",
            "scatter-max"} <= seen


# --- beyond jax.vjp: scatter-mul's updates with duplicate indices and zero updates -----------
def test_scatter_mul_updates_duplicate_indices_and_zeros():
    rng = rng_for("scatter-mul duplicates")
    x = jnp.asarray(rng.standard_normal((5, 3)))
    u = rng.standard_normal((5, 3))
    u[2, 0] = 0.0  # index 2 twice: one zero among the duplicates
    u[3, 1] = u[2, 1] = 0.0  # two zeros on the same position
    u[4, 2] = 0.0  # a zero on a unique position
    u = jnp.asarray(u)
    with pytest.raises(NotImplementedError):  # JAX's own rule needs unique indices
        jax.vjp(lambda x, u: x.at[IDX].multiply(u), x, u)[1](x)
    check_fd(lambda x, u: x.at[IDX].multiply(u), (x, u), rng)
    check_fd(lambda x, u: x.at[OOB].multiply(u, mode="clip"), (x, u), rng)
    check_fd(lambda x, u: x.at[OOB].multiply(u), (x, u), rng)


def test_indices_get_no_cotangent():
    rng = rng_for("indices")
    x = rng.standard_normal((5, 3))
    got = backprop.vjp(lambda x, i: x[i], x, IDX)[1](rng.standard_normal((5, 3)))
    assert got[1].dtype == jax.dtypes.float0


def test_scatter_with_an_update_function_raises():
    def f(x):
        return x.at[IDX].apply(jnp.sin)

    x = jnp.ones((5, 3))
    with pytest.raises(NotImplementedError, match="apply"):
        backprop.vjp(f, x)[1](x)
