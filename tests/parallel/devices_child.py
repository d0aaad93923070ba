"""The 8-device program of ``test_layouts_on_devices.py``: run with 8 simulated CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``, set by the parent before JAX starts).

``python tests/parallel/devices_child.py OUT_DIR`` prints one JSON object per case on its own
line (``{"case": name, ...}``) and writes each case's arrays to ``OUT_DIR/<case>.npz`` (flat
keys ``<tree>/<path>``), which the parent compares with ``tests.helpers.assert_trees_close``.
"""
import functools
import json
import sys
import time
import traceback
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

from funcnn import data, models, optim, parallel  # noqa: E402
from funcnn.train import make_step, train, value_and_grad_fn  # noqa: E402

STEPS, BATCH, LR, MOMENTUM = 3, 16, 0.1, 0.9
MIN_SHARD = 64  # biases (<= 40 elements) stay replicated under FSDP, matrices are sharded

MODELS = {
    "mlp": (lambda: models.mlp(12, hidden=(20, 24), num_classes=8), (12,), 8, None),
    "transformer": (lambda: models.transformer(6, width=16, num_heads=4, depth=1,
                                               num_classes=5, max_len=6), (6, 6), 5, 4),
}
CASES = [  # (model, layout, mesh axes)
    ("mlp", "dp", {"data": 8}),
    ("mlp", "fsdp", {"data": 8}),
    ("mlp", "tp", {"model": 4}),               # no data axis: the batch is replicated
    ("mlp", "2d", {"data": 4, "model": 2}),
    ("transformer", "2d", {"data": 2, "model": 4}),  # heads over "model", FSDP over "data"
]


def emit(case, **fields):
    print(json.dumps({"case": case, **fields}), flush=True)


def save(out, case, **trees):
    flat = {}
    for name, tree in trees.items():
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            flat[name + jax.tree_util.keystr(path)] = np.asarray(leaf)
    np.savez(out / f"{case}.npz", **flat)


def batches(model_name):
    _, shape, classes, _ = MODELS[model_name]
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(BATCH,) + shape), rng.integers(0, classes, BATCH))
            for _ in range(STEPS)]


def run(step, params, opt_state, data_):
    losses = []
    for batch in data_:
        params, opt_state, loss = step(params, opt_state, batch)
        losses.append(float(loss))
    return params, opt_state, np.array(losses)


@functools.cache
def initial_params(model_name):
    """The initial parameters on the host, made once per model (compiling an init takes
    seconds: each layout places these instead)."""
    return jax.device_get(jax.jit(MODELS[model_name][0]().init)(jax.random.key(0)))


def one_device(model_name, backprop):
    """The reference: the same steps jitted on one device, nothing sharded."""
    model = MODELS[model_name][0]()
    opt = optim.sgd(LR, momentum=MOMENTUM)
    params = jax.device_put(initial_params(model_name), jax.devices()[0])
    step = jax.jit(make_step(model.loss, opt, backprop))
    return run(step, params, opt.init(params), batches(model_name))


def spec_strings(tree):
    return {jax.tree_util.keystr(p): str(s) for p, s in
            jax.tree_util.tree_flatten_with_path(tree)[0]}


def matches(arrays, specs, mesh):
    """Per leaf: does the array's sharding equal ``NamedSharding(mesh, spec)``?"""
    from jax.sharding import NamedSharding
    flat = jax.tree_util.tree_flatten_with_path(arrays)[0]
    return {jax.tree_util.keystr(p): a.sharding.is_equivalent_to(NamedSharding(mesh, s), a.ndim)
            for (p, a), s in zip(flat, jax.tree.leaves(specs), strict=True)}


def layout_case(out, model_name, layout, axes, optimizer="manual", engines=("hand", "jax")):
    """STEPS sharded steps per engine, and the gradients' shardings as XLA propagates them
    (a gradient function jitted with the plan's in_shardings and no out_shardings)."""
    make_model, _, _, num_heads = MODELS[model_name]
    model = make_model()
    mesh = parallel.make_mesh(axes)
    key = jax.random.key(0)
    plan = parallel.make_plan(layout, mesh, jax.eval_shape(model.init, key),
                              num_heads=num_heads, min_shard_elements=MIN_SHARD)
    opt = optim.make_optimizer(optimizer, LR, MOMENTUM)
    loss = parallel.sharded_loss(model.loss, plan)
    trees, fields = {}, {}
    params0 = parallel.place(initial_params(model_name), parallel.param_shardings(plan))
    state0 = parallel.init_state(opt, params0, plan)
    for backprop in engines:
        step = parallel.jit_step(make_step(loss, opt, backprop), plan, state0)
        params, opt_state, losses = run(step, params0, state0, batches(model_name))
        vg = value_and_grad_fn(loss, backprop)
        grad_fn = jax.jit(lambda p, b, vg=vg: vg(p, b)[1],
                          in_shardings=(parallel.param_shardings(plan),
                                        parallel.batch_sharding(plan)))
        grads = grad_fn(params, batches(model_name)[0])
        trees.update({f"params_{backprop}": params, f"state_{backprop}": opt_state,
                      f"losses_{backprop}": losses, f"grads_{backprop}": grads})
        state_specs = parallel.state_specs(plan, opt_state)
        fields.update({
            f"params_{backprop}_match_plan": matches(params, plan.param_specs, mesh),
            f"state_{backprop}_match_plan": matches(opt_state, state_specs, mesh),
            f"grads_{backprop}_match_plan": matches(grads, plan.param_specs, mesh),
            f"grads_{backprop}_specs": spec_strings(
                jax.tree.map(lambda a: a.sharding.spec, grads)),
            "state_specs": spec_strings(state_specs)})
    case = f"{model_name}-{layout}" + ("" if optimizer == "manual" else f"-{optimizer}")
    save(out, case, **trees)
    emit(case, model=model_name, layout=layout, mesh=axes, optimizer=optimizer,
         engines=list(engines), plan_specs=spec_strings(plan.param_specs), **fields)


def reference_cases(out):
    for model_name in MODELS:
        params, opt_state, losses = one_device(model_name, "hand")
        save(out, f"{model_name}-one-device", params=params, state=opt_state, losses=losses)
        emit(f"{model_name}-one-device")


def train_data_parallel_case(out):
    """``train(data_parallel=True)`` on all 8 devices against one device (the old test)."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(356, 64)), rng.integers(0, 10, 356)
    ds = data.Dataset(x[:256], y[:256], x[256:], y[256:], "random", 10)
    model = models.mlp(64, hidden=(16,), num_classes=10)
    kw = dict(epochs=1, batch_size=32, learning_rate=0.1, momentum=0.9, backprop="hand")
    one = train(model, ds, **kw)
    eight = train(model, ds, data_parallel=True, **kw)
    mesh = parallel.make_mesh()
    opt = optim.sgd(0.1)
    params = model.init(jax.random.key(0))
    step = parallel.jit_data_parallel(make_step(model.loss, opt, "hand"), mesh)
    hlo = step.lower(params, opt.init(params), (ds.x_train[:32], ds.y_train[:32])).compile()
    leaf = jax.tree.leaves(eight.params)[0]
    batch_error = error(lambda: train(model, ds, data_parallel=True, epochs=1, batch_size=30,
                                      learning_rate=0.1))
    save(out, "train-data-parallel", one=one.params, eight=eight.params,
         loss_one=np.array([r["train_loss"] for r in one.history]),
         loss_eight=np.array([r["train_loss"] for r in eight.history]))
    emit("train-data-parallel", devices=len(leaf.sharding.device_set),
         replicated=leaf.sharding.is_fully_replicated,
         acc=[one.history[-1]["test_accuracy"], eight.history[-1]["test_accuracy"]],
         all_reduce="all-reduce" in hlo.as_text(), batch_error=batch_error)


def error(fn):
    try:
        fn()
    except ValueError as e:
        return str(e)
    return None


def error_cases(out):
    model = MODELS["mlp"][0]()
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    mesh = parallel.make_mesh({"data": 8})
    plan = parallel.make_plan("fsdp", mesh, shapes, min_shard_elements=MIN_SHARD)
    opt = optim.sgd(LR)
    params = parallel.init_sharded(model.init, jax.random.key(0), plan)
    opt_state = parallel.init_state(opt, params, plan)
    step = parallel.jit_step(make_step(parallel.sharded_loss(model.loss, plan), opt, "hand"),
                             plan, opt_state)
    rng = np.random.default_rng(0)
    odd = (rng.normal(size=(30, 12)), rng.integers(0, 8, 30))
    traced = jax.jit(parallel.sharded_loss(model.loss, plan))
    emit("errors",
         step_batch=error(lambda: step(params, opt_state, odd)),
         loss_batch=error(lambda: traced(params, odd)),
         tp_on_data_mesh=error(lambda: parallel.make_plan("tp", mesh, shapes)),
         mesh_too_big=error(lambda: parallel.make_mesh({"data": 4, "model": 4})))


def train_last_batch_case(out):
    """On a {"data": 4, "model": 2} mesh the batch splits over the 4 data devices: a last
    batch of 4 examples is kept (it divides 4, though not the 8 devices)."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(100, 64)), rng.integers(0, 10, 100)
    ds = data.Dataset(x[:68], y[:68], x[68:], y[68:], "random", 10)  # 68 = 2 * 32 + 4
    model = models.mlp(64, hidden=(16,), num_classes=10)
    kw = dict(epochs=1, batch_size=32, learning_rate=0.1, backprop="hand")
    one = train(model, ds, **kw)
    mesh = parallel.make_mesh({"data": 4, "model": 2})
    split = train(model, ds, data_parallel=True, mesh=mesh, **kw)
    save(out, "train-last-batch", one=one.params, split=split.params)
    emit("train-last-batch", epochs=len(split.history))


def main(out):
    out = Path(out)
    assert len(jax.devices()) == 8, jax.devices()
    jobs = {"references": lambda: reference_cases(out),
            "train-data-parallel": lambda: train_data_parallel_case(out),
            "train-last-batch": lambda: train_last_batch_case(out),
            "errors": lambda: error_cases(out)}
    for c in CASES:
        jobs[f"{c[0]}-{c[1]}"] = lambda c=c: layout_case(out, *c)
    jobs["mlp-fsdp-optax"] = lambda: layout_case(out, "mlp", "fsdp", {"data": 8},
                                                 optimizer="optax", engines=("hand",))
    for name, job in jobs.items():
        start = time.perf_counter()
        try:
            job()
        except Exception:  # report it and go on: the parent fails that job's tests only
            emit("crash", job=name, traceback=traceback.format_exc())
        print(f"# {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
