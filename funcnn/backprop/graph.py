"""The computation graph itself, as the notes draw it: nodes v_i in topological order, each
with its primitive, parents and children; after the backward pass, each node's forward value
and its adjoint dL/dv_i.

    >>> g = graph(lambda w, b: 0.5 * (1.0 - jax.nn.sigmoid(w * 2.0 + b)) ** 2, 0.3, 0.1)
    >>> print(g)          # a table a student can follow
    >>> g.to_dot()        # Graphviz DOT

Calls to ``jax.jit`` functions are inlined (traced with jit disabled) so that every node is
a primitive the notes would recognise.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from funcnn.backprop import engine
from funcnn.backprop import sharding_jax as sj
from funcnn.backprop.api import trace
from funcnn.backprop.registry import is_float


@dataclass
class Node:
    """One variable v_i: what computed it, from which nodes, and what it feeds."""

    index: int
    label: str  # "w", "b", "const", or the primitive's name
    primitive: str | None  # None for inputs and constants
    parents: list[int | str] = field(default_factory=list)  # node indices, or literal text
    children: list[int] = field(default_factory=list)
    shape: tuple = ()
    dtype: str = ""
    value: Any = None
    adjoint: Any = None

    @property
    def name(self) -> str:
        return f"v{self.index}"


@dataclass
class Graph:
    """Nodes in topological order; ``outputs`` are the indices of f's outputs."""

    nodes: list[Node]
    outputs: list[int]

    def __str__(self) -> str:
        rows = [("node", "op", "parents", "children", "shape", "dtype", "value", "adjoint")]
        for n in self.nodes:
            rows.append((n.name, n.label, ", ".join(_ref(p) for p in n.parents) or "-",
                         ", ".join(f"v{c}" for c in n.children) or "-",
                         str(n.shape), n.dtype, _fmt(n.value), _fmt(n.adjoint)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                 for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(f"outputs: {', '.join(f'v{i}' for i in self.outputs)}")
        return "\n".join(lines)

    def to_dot(self) -> str:
        """Graphviz DOT: one box per node (op, shape, value, adjoint), edges parent -> child."""
        out = ["digraph funcnn {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
        for n in self.nodes:
            text = [f"{n.name}: {n.label}", f"{n.dtype}{list(n.shape)}"]
            if n.value is not None:
                text.append(f"value {_fmt(n.value)}")
            if n.adjoint is not None:
                text.append(f"adjoint {_fmt(n.adjoint)}")
            style = ', style=bold' if n.index in self.outputs else ""
            label = "\\n".join(t.replace('"', "'") for t in text)
            out.append(f'  {n.name} [label="{label}"{style}];')
        for n in self.nodes:
            for p in n.parents:
                if isinstance(p, int):
                    out.append(f"  v{p} -> {n.name};")
        out.append("}")
        return "\n".join(out)


def _ref(p) -> str:
    return f"v{p}" if isinstance(p, int) else p


def _fmt(x) -> str:
    if x is None:
        return "-"
    a = np.asarray(x)
    if a.size == 1:
        return f"{a.reshape(()).item():.6g}" if a.dtype.kind in "fc" else str(a.reshape(()))
    flat = ", ".join(f"{v:.4g}" for v in a.ravel()[:3])
    return f"[{flat}{', ...' if a.size > 3 else ''}]"


def _input_labels(f, args) -> list[str]:
    try:
        names = list(inspect.signature(f).parameters)
    except (TypeError, ValueError):
        names = []
    labels = []
    for i, a in enumerate(args):
        base = names[i] if i < len(names) else f"arg{i}"
        for path, _ in jax.tree_util.tree_flatten_with_path(a)[0]:
            labels.append(base + jax.tree_util.keystr(path))
    return labels


def graph(f, *args, backward: bool = True) -> Graph:
    """Trace ``f(*args)`` into its graph and run it forward; if ``backward`` and f returns a
    real scalar, run the backward pass from dL/dL = 1 and record every adjoint."""
    with jax.disable_jit():
        closed, flat_args, _, _, _ = trace(f, args)
    jaxpr = closed.jaxpr
    active_in = [is_float(x) for x in flat_args]
    outs, tape = engine.forward(jaxpr, closed.consts, flat_args, active_in)
    env = dict(zip(engine.recorded_vars(jaxpr), tape.values, strict=True))

    nodes: list[Node] = []
    index: dict = {}

    def add(var, label, primitive, parents):
        node = Node(len(nodes), label, primitive, parents, [], tuple(var.aval.shape),
                    str(var.aval.dtype), env.get(var))
        index[var] = node.index
        nodes.append(node)
        for p in parents:
            if isinstance(p, int) and node.index not in nodes[p].children:
                nodes[p].children.append(node.index)

    for v in jaxpr.constvars:
        add(v, "const", None, [])
    for v, label in zip(jaxpr.invars, _input_labels(f, args), strict=True):
        add(v, label, None, [])
    for eqn in jaxpr.eqns:
        parents = [index[v] if isinstance(v, jcore.Var) else f"{v.val}" for v in eqn.invars]
        for v in eqn.outvars:
            if not isinstance(v, jcore.DropVar):
                add(v, eqn.primitive.name, eqn.primitive.name, parents)
    outputs = [index[v] for v in jaxpr.outvars if isinstance(v, jcore.Var)]

    if backward and len(outs) == 1 and is_float(outs[0]) and np.shape(outs[0]) == ():
        def record(eqn, cts):
            for v, ct in zip(eqn.outvars, cts, strict=True):
                if v in index:
                    nodes[index[v]].adjoint = ct if ct is not None else jnp.zeros_like(env[v])

        seed = jnp.ones((), jnp.result_type(outs[0]))
        ct_in = engine.backward(jaxpr, tape, [seed], active_in, record=record)
        nodes[outputs[0]].adjoint = seed
        for v, ct in zip(jaxpr.invars, ct_in, strict=True):
            if is_float(v.aval):
                nodes[index[v]].adjoint = ct if ct is not None else sj.zeros(v.aval)
    return Graph(nodes, outputs)
