"""Sharded programs for ``test_sharding.py``, run in a child process on 8 simulated CPU devices
(JAX fixes the device count when it starts): ``python -m tests.backprop.sharded_programs``
prints one JSON line per case, ``{"case": name, "error": null or what failed}``.

Each case is ``(f, plain, args)`` on a 4 x 2 mesh ("data", "model"): ``f`` is sharded
(shard_map with collectives, sharding constraints, device_put; or, for the names in
``EXPLICIT``, explicit sharding: run under ``jax.set_mesh`` on the mesh with Explicit axes,
arguments placed first), ``plain`` the same function written for one device without sharding
(``None`` where ``f`` has no such twin). Checked in float64: the engine's gradient, eager and
under jit, against ``jax.grad`` (values and the gradients' shardings) and against ``jax.grad``
of ``plain``.
"""
from __future__ import annotations

import os

if __name__ == "__main__":
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"

import inspect
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

MESH_SHAPE = (4, 2)
RNG = np.random.default_rng(13)
W = RNG.standard_normal((4, 6)) / 2      # [in, out]: out split over "model" where sharded
X = RNG.standard_normal((8, 4))          # [batch, in]: batch split over "data"
W2 = RNG.standard_normal((6, 3)) / 2     # [hidden, out]: hidden split over "model" (rows)


def mesh_of():
    devices = np.array(jax.devices()[:8]).reshape(MESH_SHAPE)
    return jax.sharding.Mesh(devices, ("data", "model"))


def smap(mesh, body, in_specs, out_specs, **kw):
    return jax.shard_map(body, mesh=mesh, in_specs=in_specs, out_specs=out_specs, **kw)


def psum_and_gather(mesh, check_vma):
    def body(w, x):  # w: [4, 3], x: [2, 4] per device
        h = jnp.tanh(x @ w)
        total = lax.psum((h ** 2).sum(), ("data", "model"))
        return lax.all_gather(h, "model", axis=1, tiled=True) * total

    f = smap(mesh, body, (P(None, "model"), P("data", None)), P("data", "model"),
             check_vma=check_vma)

    def plain(w, x):
        h = jnp.tanh(x @ w)
        return jnp.tile(h, (1, 2)) * (h ** 2).sum()

    return (lambda w, x: (f(w, x) ** 2).sum()), (lambda w, x: (plain(w, x) ** 2).sum())


def megatron_mlp(mesh):
    """Column-split first matrix, row-split second, one psum: Megatron's MLP."""
    def body(w1, w2, x):  # w1: [4, 3], w2: [3, 3] (rows of [6, 3]), x: [2, 4]
        return lax.psum(jax.nn.relu(x @ w1) @ w2, "model")

    f = smap(mesh, body, (P(None, "model"), P("model", None), P("data", None)),
             P("data", None))
    return (lambda w, w2, x: jnp.sum(jnp.tanh(f(w, w2, x)) ** 2),
            lambda w, w2, x: jnp.sum(jnp.tanh(jax.nn.relu(x @ w) @ w2) ** 2))


def scatter_and_all_to_all(mesh, tiled):
    def body(w, x):  # h: [2, 3] per device
        h = x @ w
        both = jnp.concatenate([h, 2 * h], axis=0) if tiled else jnp.stack([h] * 4)
        rs = lax.psum_scatter(both, "data", scatter_dimension=0, tiled=tiled)
        a2a = lax.all_to_all(h, "model", 0, 1, tiled=True)
        return lax.pmean((rs ** 2).sum() + jnp.cos(a2a).sum(), ("data", "model"))

    return (lambda w, x: smap(mesh, body, (P(None, "model"), P("data", None)), P())(w, x)), None


def ring_shift(mesh):
    def body(x):  # x: [2, 4]
        shifted = lax.ppermute(jnp.sin(x), "data", perm=[(i, (i + 1) % 4) for i in range(4)])
        return shifted * x * (lax.axis_index("data") + 1.0)

    f = smap(mesh, body, P("data", None), P("data", None))
    scale = jnp.repeat(jnp.arange(1.0, 5.0), 2)[:, None]
    return (lambda x: (f(x) ** 2).sum()), (
        lambda x: ((jnp.roll(jnp.sin(x), 2, axis=0) * x * scale) ** 2).sum())


def all_gather_invariant(x, axis_name, *, axis, tiled):
    """An all_gather whose result is typed invariant: public from JAX 0.12 (``to=``)."""
    if "to" in inspect.signature(lax.all_gather).parameters:
        return lax.all_gather(x, axis_name, axis=axis, tiled=tiled, to="invarying")
    from jax._src.lax.parallel import all_gather_invariant as older
    return older(x, axis_name, axis=axis, tiled=tiled)


def gather_untiled_and_invariant(mesh):
    def body(x):  # x: [2, 4] per device
        g = lax.all_gather(x, "data", axis=0, tiled=False)          # [4, 2, 4], varying
        inv = all_gather_invariant(jnp.tanh(x), "data", axis=0, tiled=True)  # [8, 4]
        return (g ** 2).sum(axis=(0, 1)) * 0.5 + lax.pcast((inv ** 3).sum(axis=0), ("data",),
                                                           to="varying")

    f = smap(mesh, body, P("data", None), P("data"), axis_names=frozenset({"data"}))
    return (lambda x: f(x).sum()), None


def partially_manual(mesh):
    """Only "model" is manual; "data" stays automatic (XLA partitions it)."""
    def body(w, x):  # w: [4, 3], x: [8, 4]
        return lax.psum(jnp.tanh(x @ w).sum(axis=1), "model")

    f = smap(mesh, body, (P(None, "model"), P()), P(), axis_names=frozenset({"model"}))

    def sharded(w, x):
        x = lax.with_sharding_constraint(x, NamedSharding(mesh, P("data", None)))
        return jnp.sum(f(w, x) ** 2)

    return sharded, (lambda w, x: jnp.sum(jnp.tanh(x @ w).sum(axis=1) ** 2))


def scan_in_body(mesh):
    def body(w, xs):  # xs: [2, 4]: a recurrence over this device's rows
        def step(h, x):
            h = jnp.tanh(h @ w[:, :4].T + x)
            return h, h.sum()

        h0 = lax.pcast(jnp.zeros(4), ("data",), to="varying")  # the carry varies as xs do
        h, ys = lax.scan(step, h0, xs)
        return lax.psum(h.sum() + ys.sum(), "data")

    f = smap(mesh, body, (P(), P("data", None)), P())
    return (lambda w, x: f(w, x)), None


@jax.custom_vjp
def clip_gradient(x):
    return x


clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (jnp.clip(g, -0.05, 0.05),))


def shard_map_in_scan_with_custom_rules(mesh):
    """A scan whose step is a shard_map: the engine stacks the shard_map's per-device tapes
    over steps; inside, a custom_vjp (clipping) and jax.nn.softplus (a custom_jvp)."""
    def body(w, h):  # w: [4, 3] columns over "model", h: [8, 4] replicated
        return clip_gradient(jax.nn.softplus(h @ w))

    layer = smap(mesh, body, (P(None, "model"), P()), P(None, "model"))

    def f(w, x):
        h, ys = lax.scan(lambda h, _: (jnp.tanh(layer(w, h)[:, :4]), h.sum()), x, None,
                         length=3)
        return (h ** 2).sum() + ys.sum()

    return f, None


def annotations(mesh):
    """How FSDP code places values: a constraint on the weights and on an activation, a
    device_put of the batch inside the function."""
    def f(w, x):
        w = lax.with_sharding_constraint(w, NamedSharding(mesh, P(None, "model")))
        x = jax.device_put(x, NamedSharding(mesh, P("data", None)))
        h = lax.with_sharding_constraint(jnp.tanh(x @ w), NamedSharding(mesh, P("data", "model")))
        return (h ** 2).sum()

    return f, (lambda w, x: (jnp.tanh(x @ w) ** 2).sum())


def explicit_reshard(mesh):
    """Explicit sharding (axis types in the values' types): reshard between layouts."""
    from jax.sharding import AxisType

    explicit = jax.sharding.Mesh(mesh.devices, mesh.axis_names,
                                 axis_types=(AxisType.Explicit,) * 2)

    def f(w, x):
        w = jax.device_put(w, NamedSharding(explicit, P(None, "model")))
        x = jax.device_put(x, NamedSharding(explicit, P("data", None)))
        h = jnp.sin(jax.sharding.reshard(w, NamedSharding(explicit, P("data", None)))) * 2.0
        g = jax.sharding.reshard(jnp.tanh(x), NamedSharding(explicit, P(None, "model")))
        return (h ** 2).sum() + (g ** 3).sum()

    return f, (lambda w, x: ((jnp.sin(w) * 2.0) ** 2).sum() + (jnp.tanh(x) ** 3).sum())


# --- explicit sharding: meshes whose axes are AxisType.Explicit, values' types carry shardings -
# These run under ``jax.set_mesh`` on the explicit twin of the mesh, their arguments placed by
# ``EXPLICIT[name]`` (one PartitionSpec each) before either gradient sees them: the backward
# pass must give each cotangent its primal's sharding where JAX's transposes do.
B1 = RNG.standard_normal(6) / 2          # [hidden]: split over "model"
V = RNG.standard_normal(6)               # a vector split over "model"
XB = RNG.standard_normal((4, 8, 6)) / 2  # [batch, seq, hidden]: batch over "data"
WB = RNG.standard_normal((6, 6)) / 2     # [hidden, hidden]: rows over "model"


def explicit_mesh_of(mesh):
    from jax.sharding import AxisType

    return jax.sharding.Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Explicit,) * 2)


def explicit_mlp(mesh):
    """Batch-sharded input, model-sharded weights: the second matmul contracts over the
    "model"-sharded hidden dim (its output sharding given), the bias is broadcast over the
    batch, and the weights' cotangents contract over the "data"-sharded batch."""
    def f(w1, b1, w2, x):
        h = jnp.tanh(x @ w1 + b1)
        y = jnp.matmul(h, w2, out_sharding=P("data", None))
        return jnp.sum(y ** 2) + jnp.sum(jnp.cos(h))

    def plain(w1, b1, w2, x):
        h = jnp.tanh(x @ w1 + b1)
        return jnp.sum((h @ w2) ** 2) + jnp.sum(jnp.cos(h))

    return f, plain


def explicit_broadcast(mesh):
    """A "model"-sharded vector broadcast along a new leading axis, and a replicated one
    broadcast to a ("data", "model")-sharded matrix (its sum back must be replicated)."""
    def f(v, u, x):
        stacked = jnp.broadcast_to(v[None, :], (8, 6))
        wide = lax.broadcast_in_dim(u, (8, 6), (1,), out_sharding=P("data", "model"))
        return jnp.sum(jnp.sin(wide * x) + stacked ** 2 * x)

    def plain(v, u, x):
        return jnp.sum(jnp.sin(u[None, :] * x) + v[None, :] ** 2 * x)

    return f, plain


def explicit_sums(mesh):
    """Sums over a "data"-sharded and over a "model"-sharded axis and over both, of x; one
    whose output is replicated, of z (z's cotangent is that sum's broadcast back alone, which
    must be sharded as z is)."""
    def f(x, z):
        over_data = jnp.sum(x, axis=0)                    # [6@model]
        over_model = jnp.sum(jnp.sin(x), axis=1)          # [8@data]
        gathered = lax.reduce_sum(z, (0,), out_sharding=P(None))  # [6]
        return (jnp.sum(jnp.tanh(over_data) ** 2) + jnp.sum(over_model ** 3)
                + jnp.sum(jnp.cos(gathered)) + jnp.sum(x ** 2) * jnp.max(x))

    def plain(x, z):
        return (jnp.sum(jnp.tanh(x.sum(0)) ** 2) + jnp.sum(jnp.sin(x).sum(1) ** 3)
                + jnp.sum(jnp.cos(z.sum(0))) + jnp.sum(x ** 2) * jnp.max(x))

    return f, plain


def explicit_einsum(mesh):
    """A batched einsum (batch over "data") and one contracting the "model"-sharded dim."""
    def f(wb, xb):
        h = jnp.tanh(jnp.einsum("bsh,hk->bsk", xb, wb, out_sharding=P("data", None, None)))
        scores = jnp.einsum("bsk,btk->bst", h, h)
        return jnp.sum(jnp.tanh(scores) ** 2)

    def plain(wb, xb):
        h = jnp.tanh(jnp.einsum("bsh,hk->bsk", xb, wb))
        return jnp.sum(jnp.tanh(jnp.einsum("bsk,btk->bst", h, h)) ** 2)

    return f, plain


def explicit_reshape_and_slices(mesh):
    """A reshape splitting the "model"-sharded dim of x (output sharding given), a slice and
    squeeze of it; a dynamic slice and a dynamic update along y's unsharded dim."""
    def f(x, y, u):
        split = jnp.reshape(x, (8, 3, 2), out_sharding=P("data", None, "model"))
        lone = jnp.squeeze(split[:, 1:2, :], axis=1)       # [8@data, 2@model]
        cols = lax.dynamic_slice_in_dim(y, 2, 4, axis=1)  # [8@data, 4]
        moved = lax.dynamic_update_slice_in_dim(y, jnp.tanh(u), 1, axis=1)
        return (jnp.sum(jnp.sin(split) ** 2) + jnp.sum(lone ** 3) + jnp.sum(jnp.cos(cols))
                + jnp.sum(moved ** 2))

    def plain(x, y, u):
        moved = y.at[:, 1:4].set(jnp.tanh(u))
        return (jnp.sum(jnp.sin(x) ** 2) + jnp.sum(x[:, 2:4] ** 3) + jnp.sum(jnp.cos(y[:, 2:6]))
                + jnp.sum(moved ** 2))

    return f, plain


IDS = RNG.integers(0, 16, 8)             # token ids into a [16, 6] table


def explicit_embedding(mesh):
    """An embedding lookup (a gather) on a table whose hidden dim is split over "model", then
    a dense layer contracting that dim: the table's cotangent is a scatter-add into zeros
    that must carry the table's sharding."""
    def f(table, w2):
        h = jnp.tanh(table[IDS])                                   # [8, 6@model]
        y = jnp.matmul(h, w2, out_sharding=P(None, None))         # [8, 3]
        return jnp.sum(y ** 2) + jnp.sum(h[:, :2] * h[:, 2:4])

    def plain(table, w2):
        h = jnp.tanh(table[IDS])
        return jnp.sum((h @ w2) ** 2) + jnp.sum(h[:, :2] * h[:, 2:4])

    return f, plain


CONV = ("NHWC", "HWIO", "NHWC")


def explicit_conv_pool(mesh):
    """A conv layer on batch-split images (NHWC, batch over "data"), relu, 2 x 2 max pooling
    (reduce_window_max), a dense head: the kernel's cotangent contracts over the split batch;
    pooling's selects need ct and the zeros it scatters into placed alike."""
    def net(k, wh, x):
        h = jax.nn.relu(lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=CONV))
        pooled = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        return jnp.sum(jnp.tanh(pooled.reshape(8, -1) @ wh) ** 2)

    return net, net


def explicit_unused_input(mesh):
    """Inputs the loss does not depend on: their zero gradients carry their shardings."""
    def f(w, x, unused, also_unused):
        return jnp.sum(jnp.tanh(x @ w) ** 2)

    return f, f


EXPLICIT = {  # name -> the PartitionSpec of each argument
    "explicit_embedding_model_sharded_table": (P(None, "model"), P("model", None)),
    "explicit_conv_max_pool_batch_sharded": (P(), P(), P("data", None, None, None)),
    "explicit_unused_inputs": (P(None, "model"), P("data", None), P("data", "model"),
                               P("model")),
    "explicit_mlp_contract_sharded_dim": (P(None, "model"), P("model"), P("model", None),
                                          P("data", None)),
    "explicit_broadcast_sharded_vector": (P("model"), P(None), P("data", "model")),
    "explicit_sum_over_sharded_axes": (P("data", "model"), P("data", "model")),
    "explicit_einsum": (P("model", None), P("data", None, "model")),
    "explicit_reshape_slices": (P("data", "model"), P("data", None), P("data", None)),
}


def pmax_has_no_derivative(mesh):
    """JAX registers no derivative for pmax; the engine raises too (no silent zero)."""
    return smap(mesh, lambda x: lax.pmax(x, "data"), P("data"), P()), None


CASES = {  # name -> (builder(mesh) -> (f, plain), args)
    "psum_all_gather": (lambda m: psum_and_gather(m, True), (W, X)),
    "psum_all_gather_no_check_vma": (lambda m: psum_and_gather(m, False), (W, X)),
    "megatron_mlp_relu": (megatron_mlp, (W, W2, X)),
    "psum_scatter_tiled_all_to_all_pmean": (lambda m: scatter_and_all_to_all(m, True), (W, X)),
    "psum_scatter_untiled": (lambda m: scatter_and_all_to_all(m, False), (W, X)),
    "ppermute_axis_index": (ring_shift, (X,)),
    "all_gather_untiled_invariant": (gather_untiled_and_invariant, (X,)),
    "partially_manual_mesh": (partially_manual, (W, X)),
    "scan_inside_shard_map": (scan_in_body, (W, X)),
    "sharding_constraint_device_put": (annotations, (W, X)),
    "shard_map_in_scan_custom_rules": (shard_map_in_scan_with_custom_rules, (W, X)),
    "explicit_sharding_reshard": (explicit_reshard, (W, X)),
    "explicit_mlp_contract_sharded_dim": (explicit_mlp, (W, B1, W2, X)),
    "explicit_broadcast_sharded_vector": (explicit_broadcast,
                                          (V, V[::-1] / 2, RNG.standard_normal((8, 6)))),
    "explicit_sum_over_sharded_axes": (explicit_sums, (RNG.standard_normal((8, 6)),
                                                       RNG.standard_normal((8, 6)))),
    "explicit_einsum": (explicit_einsum, (WB, XB)),
    "explicit_reshape_slices": (explicit_reshape_and_slices,
                                tuple(RNG.standard_normal(s) for s in ((8, 6), (8, 6), (8, 3)))),
    "explicit_embedding_model_sharded_table": (explicit_embedding, (RNG.standard_normal((16, 6)),
                                                                    W2)),
    "explicit_conv_max_pool_batch_sharded": (explicit_conv_pool, (
        RNG.standard_normal((3, 3, 3, 4)) / 3, RNG.standard_normal((36, 2)) / 4,
        RNG.standard_normal((8, 6, 6, 3)))),
    "explicit_unused_inputs": (explicit_unused_input, (W, X, RNG.standard_normal((8, 6)),
                                                       RNG.standard_normal(6))),
    "pmax_no_derivative": (pmax_has_no_derivative, (X[:, 0],)),
}


def check_no_derivative(f, args) -> None:
    from funcnn import backprop

    for grad in (jax.grad, backprop.grad):
        try:
            grad(lambda x: f(x).sum())(*args)
        except NotImplementedError as e:  # MissingRuleError is one
            assert "pmax" in str(e), e
        else:
            raise AssertionError(f"{grad.__module__}.grad differentiated pmax")


def same_sharding(a, b) -> bool:
    return a.sharding.is_equivalent_to(b.sharding, a.ndim)


def check(name) -> None:
    if name not in EXPLICIT:
        return check_on(name, mesh_of(), CASES[name][1])
    mesh = explicit_mesh_of(mesh_of())
    with jax.set_mesh(mesh):
        args = tuple(jax.device_put(a, NamedSharding(mesh, spec))
                     for a, spec in zip(CASES[name][1], EXPLICIT[name], strict=True))
        return check_on(name, mesh, args)


def check_on(name, mesh, args) -> None:
    from funcnn import backprop
    from tests.helpers import assert_trees_close

    build = CASES[name][0]
    f, plain = build(mesh)
    if build is pmax_has_no_derivative:
        return check_no_derivative(f, args)
    nums = tuple(range(len(args)))
    want = jax.jit(jax.grad(f, argnums=nums))(*args)
    for label, got in (("eager", backprop.grad(f, argnums=nums)(*args)),
                       ("jit", jax.jit(backprop.grad(f, argnums=nums))(*args))):
        assert_trees_close(got, want, rtol=1e-12, atol=1e-12, what=f"{label} vs jax.grad: ")
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert same_sharding(g, w), (f"{label}: gradient {i} sharded {g.sharding}, "
                                         f"jax.grad's {w.sharding}")
    if plain is not None:
        one = jax.jit(jax.grad(plain, argnums=nums))(*(np.asarray(a) for a in args))
        assert_trees_close(want, one, rtol=1e-12, atol=1e-12, what="sharded vs one device: ")


def main(names) -> int:
    jax.config.update("jax_enable_x64", True)
    assert len(jax.devices()) >= 8, jax.devices()
    for name in names:
        try:
            check(name)
            error = None
        except Exception as e:  # reported to the parent test, which fails on it
            error = f"{type(e).__name__}: {e}"
        print(json.dumps({"case": name, "error": error}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(CASES)))
