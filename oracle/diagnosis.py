"""Naming the layer at fault from a case's failing probes (``docs/oracle-format.md``).

A case's probes form a graph: ``ProbeGraph.parents[p]`` lists what probe ``p`` is computed
from (other probes, ``name@t-1`` for a recurrent value of the previous time step, ``inputs/..``
and ``params/..`` keys). A probe with a ``"time"`` axis stands for one node per time step.

1. Forward: the first probe (forward order) whose value fails is computed wrongly.
2. Backward: a node whose adjoint fails while every node that reads it has a right adjoint:
   the backward pass of what reads it is wrong; of several such nodes the one latest in
   topological order (nearest the loss) is named. A node read by nothing but the output is
   where the output's cotangent (the loss's gradient) enters.
3. Otherwise a failing ``grads/params/..`` key names the probe that reads that parameter,
   a failing ``grads/inputs/..`` key the probes that read that input.

Manifests without a ``probe_graph`` are read as a chain: each probe computed from the one
before it (``ProbeGraph.chain``).

Example:
    >>> sentence, evidence, layer = diagnose(case_result.keys, ProbeGraph.chain(probes))
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Diagnosis(NamedTuple):
    sentence: str
    evidence: str | None  # the probe key where the fault shows (first_failing_probe)
    layer: str | None  # the layer at fault


@dataclass
class ProbeGraph:
    """Probes in forward order, what each is computed from, and each one's axis names."""

    order: tuple
    parents: dict = field(default_factory=dict)
    axes: dict = field(default_factory=dict)

    @classmethod
    def chain(cls, probes, inputs=("inputs",)):
        probes = tuple(probes)
        parents = {p: [probes[i - 1]] if i else list(inputs) for i, p in enumerate(probes)}
        return cls(probes, parents, {})

    @classmethod
    def from_entry(cls, entry: dict):
        """From a manifest case entry (``probes``, ``probe_graph``, ``probe_axes``)."""
        probes = tuple(entry.get("probes", ()))
        graph = entry.get("probe_graph")
        if not isinstance(graph, dict):
            out = cls.chain(probes)
        else:
            out = cls(probes, {p: list(graph.get(p, ())) for p in probes}, {})
        axes = entry.get("probe_axes")
        if isinstance(axes, dict):
            out.axes = {p: list(a) for p, a in axes.items() if isinstance(a, list)}
        return out

    def to_entry(self) -> dict:
        return {"probe_graph": {p: list(self.parents.get(p, ())) for p in self.order},
                **({"probe_axes": {p: list(self.axes[p]) for p in self.order
                                   if p in self.axes}} if self.axes else {})}


def _ref(ref):
    """``"h@t-1"`` -> ("h", 1); ``"dense_0"`` -> ("dense_0", 0)."""
    if "@t-" in ref:
        name, lag = ref.split("@t-")
        return name, int(lag)
    return ref, 0


def _probe_status(keys):
    """{probe: {"value": KeyResult, "adjoint": KeyResult}}."""
    out = {}
    for k in keys:
        parts = k.key.split("/")
        if parts[0] == "probes" and len(parts) >= 3:
            out.setdefault("/".join(parts[1:-1]), {})[parts[-1]] = k
    return out


def _steps(key_result):
    return key_result.slices_ok.get("time") if key_result is not None else None


def _at(t):
    return "" if t is None else f" at time step {t}"


def diagnose(keys, graph: ProbeGraph) -> Diagnosis:
    """(sentence, evidence key, layer at fault) for a case's key results (see the module
    docstring); where the evidence has a ``"head"`` axis, the sentence says which heads fail."""
    found = _diagnose(keys, graph)
    by_key = {k.key: k for k in keys}
    heads = by_key[found.evidence].slices_ok.get("head") if found.evidence in by_key else None
    if heads and not all(heads):
        wrong = ", ".join(str(h) for h, ok in enumerate(heads) if not ok)
        return found._replace(sentence=f"{found.sentence}; heads failing there: {wrong}")
    return found


def _diagnose(keys, graph):
    status = _probe_status(keys)
    failed = {k.key for k in keys if k.status == "FAIL"}
    # 1. forward, and 2. backward, on the graph unrolled over time
    found = _forward(status, graph)
    if found is None:
        found = _backward(status, graph)
    if found is not None:
        return found
    # 3. parameter and input gradients
    grads = [k for k in sorted(failed) if k.startswith("grads/")]
    probe_keys = [k for k in keys if k.key.startswith("probes/")]
    lead = ("every probe is right" if probe_keys and all(k.status == "pass" for k in probe_keys)
            else "the probes were not all checked (layer named from the key's path)")
    for key in grads:
        path = key[len("grads/"):]
        readers = [p for p in graph.order if any(
            path == r or path.startswith(r + "/") for r in graph.parents.get(p, ())
            if r.startswith(("params/", "inputs/")))]
        if not readers and path.startswith("params/"):
            readers = [p for p in graph.order if path.startswith(f"params/{p}/")]
            readers = [max(readers, key=len)] if readers else [path.split("/")[1]]
        if readers:
            what = "parameter" if path.startswith("params/") else "input"
            return Diagnosis(
                f"{lead} but {', '.join(grads)} is wrong: layer "
                f"{', '.join(readers)} computes the gradient of its {what} {path} wrongly",
                None, ", ".join(readers))
    outputs = [k for k in sorted(failed) if k.startswith("outputs/")]
    if outputs and graph.order:
        last = graph.order[-1]
        return Diagnosis(f"{lead} but {', '.join(outputs)} is wrong: what is "
                         f"computed after layer {last} (the loss) is wrong", None, "loss")
    return Diagnosis("", None, None)


def _unrolled(status, graph, which):
    """(nodes, readers, topological order, ok) for the ``which`` ("value" / "adjoint") keys
    of the probes: one node per probe, or per time step of a probe with a time axis."""
    result = {p: status.get(p, {}).get(which) for p in graph.order}
    length = {p: len(_steps(result[p])) if _steps(result[p]) else None for p in graph.order}
    nodes = [(p, t) for p in graph.order
             for t in (range(length[p]) if length[p] is not None else [None])]

    def ok(node):
        p, t = node
        k = result[p]
        if k is None or k.status not in ("pass", "FAIL"):
            return None  # missing or skipped: unknown
        return k.status == "pass" if t is None else _steps(k)[t]

    readers = _readers(nodes, length, graph)
    return nodes, readers, _topological(nodes, readers), ok


def _forward(status, graph):
    nodes, readers, order, ok = _unrolled(status, graph, "value")
    wrong = [n for n in order if ok(n) is False]
    if not wrong:
        return None
    p, t = wrong[0]
    return Diagnosis(
        f"the forward pass first goes wrong at layer {p}{_at(t)} (probes/{p}/value is the "
        f"first failing value in forward order; what it is computed from, "
        f"{', '.join(graph.parents.get(p, [])) or 'the inputs'}, is right)",
        f"probes/{p}/value", p)


def _readers(nodes, length, graph):
    """{node: [the nodes computed from it]}."""

    readers = {n: [] for n in nodes}
    for c in graph.order:
        for ref in graph.parents.get(c, ()):
            q, lag = _ref(ref)
            if q not in length:
                continue
            for n in [n for n in nodes if n[0] == q]:
                t = n[1]
                if length[c] is None:
                    readers[n].append((c, None))
                elif t is None:
                    readers[n] += [(c, s) for s in range(length[c])]
                elif t + lag < length[c]:
                    readers[n].append((c, t + lag))
    return readers


def _backward(status, graph):
    nodes, readers, order, ok = _unrolled(status, graph, "adjoint")
    candidates = [n for n in nodes if ok(n) is False and all(ok(r) for r in readers[n])]
    if not candidates:
        return None
    node = max(candidates, key=order.index)
    p, t = node
    key = f"probes/{p}/adjoint"
    if not readers[node]:
        return Diagnosis(
            f"the backward pass starts wrong: {key}{_at(t)}, where the output's cotangent "
            f"(the loss's gradient) enters, is wrong (the loss's backward, or the cotangent "
            f"handling of the last layer)", key, "loss")
    names = list(dict.fromkeys(r[0] for r in readers[node]))
    steps = sorted({r[1] for r in readers[node] if r[1] is not None})
    where = f" (time step {', '.join(map(str, steps))})" if steps else ""
    layer = ", ".join(names)
    return Diagnosis(
        f"the backward pass first goes wrong in layer {layer}{where}: "
        f"{', '.join(f'probes/{n}/adjoint' for n in names)} is right but the adjoint it "
        f"passes back, {key}{_at(t)}, is wrong ({key} is the first wrong adjoint in backward "
        f"order)", key, layer)


def _topological(nodes, readers):
    """Nodes in an order where each comes before everything that reads it (Kahn)."""
    indegree = {n: 0 for n in nodes}
    for n in nodes:
        for r in readers[n]:
            indegree[r] += 1
    rank = {n: (n[1] if n[1] is not None else -1, i) for i, n in enumerate(nodes)}
    ready = sorted((n for n in nodes if indegree[n] == 0), key=rank.get)
    out = []
    while ready:
        n = ready.pop(0)
        out.append(n)
        for r in readers[n]:
            indegree[r] -= 1
            if indegree[r] == 0:
                ready.append(r)
                ready.sort(key=rank.get)
    out += [n for n in nodes if n not in out]  # a cycle (bad graph): keep every node
    return out
