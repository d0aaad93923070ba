"""The layouts' rules, in this process (no devices needed: specs depend only on shapes and
axis sizes): FSDP's dimension choice, the Megatron splits of funcnn's mlp and transformer,
the 2-D combination, the optimizer state following the parameters, and the errors."""
import jax
import optax
import pytest
from jax.sharding import PartitionSpec as P

from funcnn import models, optim, parallel
from funcnn.parallel import fsdp_spec, layout_specs, tp_specs

KEY = jax.random.key(0)


def shapes(model):
    return jax.eval_shape(model.init, KEY)


def flat(specs):
    return {jax.tree_util.keystr(p): s for p, s in jax.tree_util.tree_flatten_with_path(specs)[0]}


@pytest.mark.parametrize("shape, size, base, min_elements, expected", [
    ((64, 32), 8, None, 0, P("data")),                  # the larger dimension
    ((32, 64), 8, None, 0, P(None, "data")),
    ((16, 16), 4, None, 0, P("data")),                  # a tie: the earlier one
    ((8, 3, 16), 8, None, 0, P(None, None, "data")),
    ((12, 20), 8, None, 0, P()),                        # no dimension 8 divides
    ((4, 8), 8, None, 0, P(None, "data")),              # 4 < 8
    ((40,), 8, None, 64, P()),                          # under the minimum: whole
    ((40,), 8, None, 0, P("data")),
    ((64, 64), 8, None, 4096, P("data")),               # the minimum is inclusive
    ((64, 64), 8, None, 4097, P()),
    ((), 8, None, 0, P()),                              # a scalar
    ((64, 32), 1, None, 0, P()),                        # one device: nothing to split
    ((32, 128), 4, P(None, "model"), 0, P("data", "model")),   # 128 is taken by "model"
    ((128, 6), 4, P("model"), 0, P("model")),           # the only free one does not divide
])
def test_fsdp_rule(shape, size, base, min_elements, expected):
    assert fsdp_spec(shape, size, base=base, min_elements=min_elements) == expected


def test_megatron_mlp_pairs_columns_then_rows():
    specs = flat(tp_specs(shapes(models.mlp(64, hidden=(64,), num_classes=10)), 4))
    assert specs == {"['dense_0']['b']": P("model"), "['dense_0']['w']": P(None, "model"),
                     "['dense_1']['b']": P(), "['dense_1']['w']": P("model")}


def test_megatron_pairs_dense_layers_in_numeric_order_and_leaves_an_odd_last_whole():
    specs = tp_specs(shapes(models.mlp(8, hidden=(8,) * 10, num_classes=4)), 2)  # dense_0..10
    for i in range(0, 10, 2):
        assert specs[f"dense_{i}"]["w"] == P(None, "model"), i        # not string order
        assert specs[f"dense_{i + 1}"]["w"] == P("model"), i + 1
    assert specs["dense_10"] == {"w": P(), "b": P()}


def test_megatron_transformer_splits_heads_and_the_block_mlp_only():
    model = models.transformer(6, width=16, num_heads=4, depth=2, num_classes=5, max_len=6)
    specs = tp_specs(shapes(model), 4, num_heads=4)
    for block in ("block_0", "block_1"):
        attention = specs[block]["attention"]["self_attention"]
        assert {k: attention[k] for k in ("wq", "wk", "wv", "wo")} == {
            "wq": P(None, "model"), "wk": P(None, "model"), "wv": P(None, "model"),
            "wo": P("model")}
        assert (attention["bq"], attention["bo"]) == (P("model"), P())
        assert specs[block]["mlp"]["dense_0"] == {"w": P(None, "model"), "b": P("model")}
        assert specs[block]["mlp"]["dense_1"] == {"w": P("model"), "b": P()}
        assert specs[block]["mlp"]["norm"] == {"scale": P(), "bias": P()}
    for top in ("dense_0", "dense_1", "positional_embedding_0", "layer_norm_0"):
        assert set(jax.tree.leaves(specs[top])) == {P()}, top   # not an MLP: whole


def test_2d_is_megatron_then_fsdp_on_the_free_dimensions():
    params = shapes(models.mlp(12, hidden=(20, 24), num_classes=8))
    specs = flat(layout_specs("2d", params, {"data": 4, "model": 2}, min_shard_elements=64))
    assert specs == {"['dense_0']['b']": P("model"), "['dense_0']['w']": P("data", "model"),
                     "['dense_1']['b']": P(), "['dense_1']['w']": P("model", "data"),
                     "['dense_2']['b']": P(), "['dense_2']['w']": P("data")}
    assert flat(layout_specs("fsdp_tp", params, {"data": 4, "model": 2},
                             min_shard_elements=64)) == specs


def test_dp_replicates_everything():
    params = shapes(models.cnn())
    assert set(jax.tree.leaves(layout_specs("dp", params, {"data": 8}))) == {P()}


def one_device_plan(layout, params):
    mesh = parallel.make_mesh({"data": 1, "model": 1}, jax.devices()[:1])
    return parallel.make_plan(layout, mesh, params)


@pytest.mark.parametrize("optimizer, prefix", [
    (optim.sgd(0.1, momentum=0.9), ".momentum"),
    (optax.sgd(0.1, momentum=0.9), "[0].trace"),
    (optax.adam(0.1), "[0].mu"),
])
def test_optimizer_state_follows_the_parameters(optimizer, prefix):
    params = shapes(models.mlp(64, hidden=(64,), num_classes=10))
    plan = one_device_plan("tp", params)
    specs = flat(parallel.state_specs(plan, jax.eval_shape(optimizer.init, params)))
    for path, spec in flat(plan.param_specs).items():
        assert specs[prefix + path] == spec, path
    assert specs.get("[0].count", P()) == P()  # adam's step count: replicated


def test_stateless_optimizer_has_no_state_specs():
    params = shapes(models.mlp(4, hidden=(4,), num_classes=2))
    state = optim.gradient_descent(0.1).init(params)
    assert jax.tree.leaves(parallel.state_specs(one_device_plan("fsdp", params), state)) == []


def test_sharded_loss_is_the_loss_and_its_engine_gradient_is_jax_grads():
    from funcnn import backprop
    from tests.helpers import assert_trees_close

    model = models.mlp(6, hidden=(8,), num_classes=3)
    params = jax.jit(model.init)(KEY)  # jitted throughout: op-by-op dispatch is slow
    batch = (jax.random.normal(KEY, (4, 6)), jax.numpy.array([0, 1, 2, 1]))
    loss = parallel.sharded_loss(model.loss, one_device_plan("2d", shapes(model)))
    assert float(jax.jit(loss)(params, batch)) == pytest.approx(
        float(jax.jit(model.loss)(params, batch)), rel=1e-14)
    assert_trees_close(jax.jit(backprop.grad(loss))(params, batch),
                       jax.jit(jax.grad(model.loss))(params, batch))


@pytest.mark.parametrize("layout, axes, message", [
    ("dp", {"model": 2}, r"layout 'dp': expected a mesh axis named 'data', but the mesh has "
                         r"axes \('model',\)"),
    ("fsdp", {"model": 2}, r"layout 'fsdp': expected a mesh axis named 'data'"),
    ("tp", {"data": 2}, r"layout 'tp': expected a mesh axis named 'model'"),
    ("2d", {"data": 2}, r"layout '2d': expected a mesh axis named 'model'"),
    ("zero", {"data": 2}, r"expected a layout in \('dp', 'fsdp', 'tp', '2d', 'fsdp_tp'\), "
                          r"got 'zero'"),
])
def test_a_mesh_without_the_layouts_axis_is_an_error(layout, axes, message):
    with pytest.raises(ValueError, match=message):
        layout_specs(layout, shapes(models.mlp(4, hidden=(4,), num_classes=2)), axes)


def test_a_split_that_does_not_divide_the_width_is_an_error():
    params = shapes(models.mlp(64, hidden=(12,), num_classes=10))
    with pytest.raises(ValueError, match=r"expected the columns of dense_0/w \(shape \(64, 12\)\)"
                                         r" to divide over the 8 devices of mesh axis 'model', "
                                         r"got 12 columns"):
        tp_specs(params, 8)
    model = models.transformer(6, width=16, num_heads=2, depth=1, num_classes=5, max_len=6)
    with pytest.raises(ValueError, match=r"expected num_heads divisible by the 4 devices of "
                                         r"mesh axis 'model' .* at block_0/attention/"
                                         r"self_attention, got num_heads=2"):
        tp_specs(shapes(model), 4, num_heads=2)
    with pytest.raises(ValueError, match=r"columns \(heads\) of block_0/attention/"
                                         r"self_attention/wq \(shape \(16, 16\)\)"):
        tp_specs(shapes(model), 3)


def test_a_model_with_nothing_to_split_is_an_error():
    for model in (models.cnn(), models.rnn(8, hidden=8), models.mlp(4, hidden=(), num_classes=2)):
        with pytest.raises(ValueError, match=r"found neither .* use the 'dp' or 'fsdp' layout"):
            tp_specs(shapes(model), 2)


def test_a_batch_that_does_not_split_is_an_error():
    with pytest.raises(ValueError, match=r"here: expected a batch size divisible by the 8 "
                                         r"devices of the mesh axis 'data', got batch_size=30"):
        parallel.check_divisible(30, {"data": 8, "model": 2}, "here")
    parallel.check_divisible(32, {"data": 8, "model": 2})
