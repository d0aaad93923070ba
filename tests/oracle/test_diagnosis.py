"""The diagnosis names the layer at fault: on a chain, on a graph with a skip connection, and
on a recurrence unrolled over time (probes with a "time" axis judged step by step)."""
import pytest

from oracle.comparison import KeyResult
from oracle.diagnosis import ProbeGraph, diagnose


def keys(values=(), adjoints=(), grads=(), steps=None, probes=()):
    """KeyResults: every probe passes except the named ones; ``steps`` = {probe: [ok per t]}
    for adjoints with a time axis."""
    steps = steps or {}
    out = []
    for p in probes:
        out.append(KeyResult(f"probes/{p}/value", "FAIL" if p in values else "pass"))
        ok = steps.get(p)
        status = "FAIL" if (p in adjoints or (ok is not None and not all(ok))) else "pass"
        out.append(KeyResult(f"probes/{p}/adjoint", status,
                             slices_ok={"time": list(ok)} if ok is not None else {}))
    out += [KeyResult(g, "FAIL") for g in grads]
    return out


CHAIN = ("dense_0", "relu_0", "dense_1", "relu_1", "dense_2")


@pytest.mark.parametrize("failing, evidence, layer", [
    ({"values": ["relu_1", "dense_2"]}, "probes/relu_1/value", "relu_1"),
    ({"adjoints": ["dense_0"]}, "probes/dense_0/adjoint", "relu_0"),
    ({"adjoints": ["dense_0", "relu_0"]}, "probes/relu_0/adjoint", "dense_1"),
    ({"adjoints": list(CHAIN)}, "probes/dense_2/adjoint", "loss"),
    ({"grads": ["grads/params/dense_1/w"]}, None, "dense_1"),
])
def test_chain(failing, evidence, layer):
    sentence, found, at_fault = diagnose(keys(probes=CHAIN, **failing), ProbeGraph.chain(CHAIN))
    assert (found, at_fault) == (evidence, layer), sentence
    assert layer in sentence


def test_skip_connection_needs_every_reader_right():
    """p feeds both the branch (norm) and the sum (block): p's adjoint is wrong while norm's
    is right and block's is right: the fault is in one of p's two readers' backward."""
    order = ("p", "norm", "attn", "block")
    graph = ProbeGraph(order, {"p": ["inputs/x"], "norm": ["p"], "attn": ["norm"],
                               "block": ["p", "attn"]})
    sentence, evidence, layer = diagnose(keys(probes=order, adjoints=["p"]), graph)
    assert evidence == "probes/p/adjoint" and layer == "norm, block"
    # the attention's backward passes a wrong adjoint to norm: norm's adjoint (and p's) fail
    sentence, evidence, layer = diagnose(keys(probes=order, adjoints=["p", "norm"]), graph)
    assert evidence == "probes/norm/adjoint" and layer == "attn"


LSTM = ("forget_pre", "forget", "cell", "hidden")
LSTM_GRAPH = ProbeGraph(LSTM, {"forget_pre": ["inputs/x", "hidden@t-1", "params/forget"],
                               "forget": ["forget_pre"], "cell": ["forget", "cell@t-1"],
                               "hidden": ["cell"]})


def test_recurrence_wrong_gate_derivative_is_named_at_the_last_step():
    """The forget gate's sigmoid' is wrong: at the last step forget's adjoint is right and
    forget_pre's wrong; every earlier step is wrong throughout."""
    steps = {"forget_pre": [False, False, False], "forget": [False, False, True],
             "cell": [False, False, True], "hidden": [False, False, True]}
    sentence, evidence, layer = diagnose(keys(probes=LSTM, steps=steps), LSTM_GRAPH)
    assert (evidence, layer) == ("probes/forget_pre/adjoint", "forget"), sentence
    assert "at time step 2" in sentence


def test_recurrence_detached_hidden_state():
    """No gradient flows from step t to h_{t-1}: hidden is wrong before the last step while
    the pre-activations that read it at the next step are right."""
    steps = {"forget_pre": [False, True, True], "forget": [False, True, True],
             "cell": [False, True, True], "hidden": [False, False, True]}
    sentence, evidence, layer = diagnose(keys(probes=LSTM, steps=steps), LSTM_GRAPH)
    assert (evidence, layer) == ("probes/hidden/adjoint", "forget_pre"), sentence
    assert "at time step 1" in sentence and "(time step 2)" in sentence


def test_parameter_gradient_is_named_by_the_graph():
    sentence, evidence, layer = diagnose(keys(probes=LSTM, grads=["grads/params/forget/w_h"]),
                                         LSTM_GRAPH)
    assert layer == "forget_pre" and "every probe is right" in sentence


def test_the_failing_head_is_named():
    order = ("q", "scores", "weights", "output")
    graph = ProbeGraph(order, {"q": ["inputs/x"], "scores": ["q"], "weights": ["scores"],
                               "output": ["weights"]})
    found = keys(probes=order)
    found[3] = KeyResult("probes/scores/adjoint", "FAIL", slices_ok={"head": [True, False]})
    sentence, evidence, layer = diagnose(found, graph)
    assert (evidence, layer) == ("probes/scores/adjoint", "weights")
    assert sentence.endswith("heads failing there: 1")


def test_the_forward_fault_is_the_first_wrong_step_not_the_first_probe():
    """Swapped gates: at step 0 the pre-activations are right and the gate is wrong; later
    steps are wrong everywhere. The gate is named, at step 0."""
    found = []
    for p in LSTM:
        ok = [True, False, False] if p == "forget_pre" else [False, False, False]
        found.append(KeyResult(f"probes/{p}/value", "FAIL", slices_ok={"time": ok}))
        found.append(KeyResult(f"probes/{p}/adjoint", "FAIL", slices_ok={"time": ok}))
    sentence, evidence, layer = diagnose(found, LSTM_GRAPH)
    assert (evidence, layer) == ("probes/forget/value", "forget"), sentence
    assert "at time step 0" in sentence
