"""Every case carries its function written out (the manifest's ``spec``): pseudocode, the
layout of every parameter and input, its kinks with the convention that applies and the
frameworks' defaults, its probes, and for training the minibatch order and trajectory keys."""
import json

import pytest

import oracle
from oracle.cases.base import flat_keys
from oracle.conventions import CONVENTIONS, FRAMEWORK_DEFAULTS

ALL = oracle.cases.all(dtypes=["f64"])


@pytest.mark.parametrize("case", ALL, ids=str)
def test_spec_is_complete(case):
    spec = case.function_spec
    json.dumps(spec)
    assert spec["function"] and all(isinstance(line, str) for line in spec["function"])
    for group, prefix, tree in (("parameters", "params", case.params),
                                ("inputs", "inputs", case.inputs)):
        keys = flat_keys(prefix, tree)
        assert sorted(spec.get(group, {})) == sorted(keys)
        for key, text in spec.get(group, {}).items():
            assert text.startswith(f"{list(keys[key].shape)} {keys[key].dtype}"), (key, text)
    for entry in spec.get("kinks", []):
        assert set(entry) == {"where", "convention", "value", "torch", "numpy"}
        assert entry["value"] == CONVENTIONS[entry["convention"]]
        assert entry["torch"] == FRAMEWORK_DEFAULTS[entry["convention"]]["torch"]
    if case.probes:
        assert list(spec["probes"]) == list(case.probes)


def test_kink_cases_name_their_convention_and_points():
    for case in oracle.cases.all("activation.*.kink.f64"):
        (entry,) = case.function_spec["kinks"]
        assert entry["convention"] == case.built.convention
        assert "(0, 2), (1, 0), (1, 3), (2, 1)" in entry["where"]
    abs_kink = oracle.cases.get("activation.abs.kink.f64").function_spec["kinks"][0]
    assert abs_kink["value"] == 1.0 and "differs" in abs_kink["torch"]


def test_the_mlp_names_its_kink_inside_the_model():
    (entry,) = oracle.cases.get("model.mlp.f64").function_spec["kinks"]
    assert entry["convention"] == "relu_grad_at_0" and "a0[0, 1]" in entry["where"]


def test_training_spells_out_minibatches_and_trajectory():
    spec = oracle.cases.get("training.mlp_sgd.f64").function_spec
    assert set(spec["training"]) == {"minibatch", "step", "trajectory_loss",
                                     "trajectory_params", "outputs", "grads"}
    assert "before step k" in spec["training"]["trajectory_loss"]
    assert "after step k" in spec["training"]["trajectory_params"]
    assert "rows [k * 2, (k + 1) * 2)" in spec["training"]["minibatch"]


@pytest.mark.parametrize("case", [c for c in ALL if c.probes], ids=str)
def test_probe_graph_refers_to_what_exists(case):
    params = flat_keys("params", case.params)
    inputs = flat_keys("inputs", case.inputs)
    seen = set()
    for probe in case.probes:
        for ref in case.probe_graph[probe]:
            name = ref.split("@t-")[0]
            if ref.startswith("params/"):
                assert any(k == ref or k.startswith(ref + "/") for k in params), ref
            elif ref.startswith("inputs"):
                assert ref == "inputs" or ref in inputs, ref
            else:
                assert name in case.probes, ref
                assert "@t-" in ref or name in seen, f"{probe} reads {ref} before it exists"
        seen.add(probe)
