"""The notes' backpropagation example, node by node, and four answers for its gradient.

    L(w, b) = 1/2 (y - sigmoid(w x + b))^2 + lambda w^2

Question: what are dL/dw and dL/db, and are the notes' formulas right? The script prints the
computation graph the hand-written engine builds (each node v_i, its parents and children),
the forward value of every node and, from the backward pass, its adjoint dL/dv_i (for a node
with several children, the sum over them of dL/dv_j dv_j/dv_i: w feeds both w x and w^2).
Then it compares four answers for dL/dw and dL/db, all through the oracle:

- the formulas as the notes write them,
      dL/dw = (y - sigma(wx+b)) sigma'(wx+b) x + 2 lambda w
      dL/db = (y - sigma(wx+b)) * -sigma'(wx+b) * 1
  checked by ``oracle.cases.get("example.notes_sigmoid_neuron.f64").compare(...)``, the same
  comparison ``python -m oracle verify`` runs on another implementation's results;
- the hand-written engine (``funcnn.backprop``), ``jax.grad`` and float64 central finite
  differences, compared by ``oracle.check_grads``.

The notes' dL/dw drops the minus sign that d(y - v)/dv = -1 contributes (their dL/db keeps
it): the oracle flags it and passes the corrected -(y - sigma) sigma' x + 2 lambda w. The point
(w, b, x, y) and lambda = 0.1 are the oracle's registered case, in float64.

The graph is also written as Graphviz DOT (and rendered to PNG when the ``dot`` program is
installed); a matplotlib drawing of it is always saved.

    python scripts/backprop_by_hand.py [--out runs/backprop_by_hand/]
"""
from __future__ import annotations

import shutil
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
from _common import out_dir, parse_args, plt, print_table, save_figure, write_json

import oracle
from funcnn import backprop

NAME = "backprop_by_hand"
CASE = "example.notes_sigmoid_neuron.f64"
LAMBDA = oracle.cases.examples.LAMBDA  # 0.1, the case's


def loss(w, b, x, y):
    """L(w, b) = 1/2 (y - sigmoid(w x + b))^2 + lambda w^2, all scalars.

    ``jax.nn.sigmoid`` is one primitive (``logistic``), so the graph has the notes' nodes;
    ``funcnn.activations.sigmoid`` (the oracle case's) computes the same values through the
    overflow-safe two-branch form, nine nodes for one sigma.
    """
    return 0.5 * (y - jax.nn.sigmoid(w * x + b)) ** 2 + LAMBDA * w ** 2


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def notes_formulas(w, b, x, y, corrected=False):
    """The notes' closed-form derivatives, in float64 NumPy, plus (not in the notes) dL/dx
    and dL/dy, which the oracle case also checks. ``corrected`` restores dL/dw's minus."""
    s = _sigmoid(w * x + b)
    ds = s * (1 - s)  # sigma'(wx + b)
    sign = -1.0 if corrected else 1.0
    return {"outputs/loss": 0.5 * (y - s) ** 2 + LAMBDA * w ** 2,
            "grads/params/w": sign * (y - s) * ds * x + 2 * LAMBDA * w,  # notes: sign = +1
            "grads/params/b": (y - s) * -ds * 1.0,  # as the notes write it: correct
            "grads/inputs/x": -(y - s) * ds * w,
            "grads/inputs/y": (y - s)}


def _case_result_dict(result):
    return {"status": result.status, "ok": result.ok,
            "failing_keys": [k.key for k in result.keys if k.status != "pass"],
            "keys": {k.key: {"status": k.status, "result": k.result, "golden": k.golden,
                             "max_abs": k.max_abs, "max_rel": k.max_rel, "tol": k.tol}
                     for k in result.keys},
            "table": result.table()}


def _fd_values(report):
    """{leaf path: finite-difference value} from a check_grads report on scalar leaves."""
    out = {}
    for leaf in report.leaves:
        for p in leaf.pairs:
            if p.pair == "engine vs fd":
                out[leaf.path] = p.b_at_worst
    return out


# ---------------------------------------------------------------- drawing the graph

_SYMBOL = {"mul": "*", "add": "+", "sub": "-"}


def _expr(node, nodes):
    args = [f"v{p}" if isinstance(p, int) else str(p) for p in node.parents]
    if node.primitive is None:
        return f"v{node.index} = {node.label}"
    if node.primitive in _SYMBOL and len(args) == 2:
        return f"v{node.index} = {args[0]} {_SYMBOL[node.primitive]} {args[1]}"
    if node.primitive == "logistic":
        return f"v{node.index} = sigma({args[0]})"
    return f"v{node.index} = {node.primitive}({', '.join(args)})"


def _columns(g):
    """Column of each node: its depth from the inputs, then every node moved as far right as
    its children allow (inputs sit just before their first use: short edges)."""
    col = {}
    for n in g.nodes:
        parents = [p for p in n.parents if isinstance(p, int)]
        col[n.index] = 1 + max((col[p] for p in parents), default=-1)
    for n in reversed(g.nodes):
        if n.children and n.index not in g.outputs:
            col[n.index] = min(col[c] for c in n.children) - 1
    return col


def draw_graph(ax, g):
    """Boxes (expression, value, adjoint) in columns, arrows parent -> child."""
    col = _columns(g)
    members: dict = {}
    for n in g.nodes:
        members.setdefault(col[n.index], []).append(n.index)
    dx, dy, half = 2.7, 1.6, 1.05  # column and row spacing, half a box's width
    pos = {}
    for c, idx in members.items():  # computed nodes on the top row, inputs below them
        idx = sorted(idx, key=lambda i: (g.nodes[i].primitive is None, i))
        for row, i in enumerate(idx):
            pos[i] = (c * dx, -row * dy)
    for n in g.nodes:
        for p in n.parents:
            if isinstance(p, int):
                (x0, y0), (x1, y1) = pos[p], pos[n.index]
                ax.annotate("", xy=(x1 - half, y1), xytext=(x0 + half, y0),
                            arrowprops=dict(arrowstyle="-|>", color="dimgray", lw=1.1))
    for n in g.nodes:
        x, y = pos[n.index]
        text = f"{_expr(n, g.nodes)}\nvalue {float(n.value):.4g}"
        if n.adjoint is not None:
            text += f"\ndL/dv{n.index} = {float(n.adjoint):.4g}"
        color = "#dbe9f6" if n.primitive is None else (
            "#fde0c5" if n.index in g.outputs else "#eeeeee")
        ax.text(x, y, text, ha="center", va="center", fontsize=8, family="monospace",
                bbox=dict(boxstyle="round,pad=0.4", fc=color, ec="black", lw=0.8))
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 1.4, max(xs) + 1.4)
    ax.set_ylim(min(ys) - 0.9, max(ys) + 0.9)
    ax.axis("off")


# ---------------------------------------------------------------- main

def main(argv=None) -> dict:
    args = parse_args(NAME, __doc__.split("\n\n")[0], argv)
    out = out_dir(args)
    case = oracle.cases.get(CASE)
    p, i = case.params, case.inputs
    w, b, x, y = (float(v) for v in (p["w"], p["b"], i["x"], i["y"]))

    with jax.enable_x64(True):  # float64 whatever the caller's mode
        point = [jnp.asarray(v, jnp.float64) for v in (w, b, x, y)]
        g = backprop.graph(loss, *point)
        engine = [float(v) for v in backprop.grad(loss, argnums=(0, 1))(*point)]
        jax_grad = [float(v) for v in jax.grad(loss, argnums=(0, 1))(*point)]
        value = float(loss(*point))
    print(f"L(w, b) = 1/2 (y - sigmoid(w x + b))^2 + lambda w^2 at w={w:.6g}, b={b:.6g}, "
          f"x={x:.6g}, y={y:.6g}, lambda={LAMBDA:g} (the oracle case {CASE})\n")
    print("The computation graph (forward: value of each node from its parents; backward, in "
          "reverse order: adjoint = sum over children of child adjoint * local derivative):")
    print(g)
    print()

    # the engine, jax.grad and finite differences: oracle.check_grads
    report = oracle.check_grads(loss, *(np.float64(v) for v in (w, b, x, y)), argnums=(0, 1),
                                seed=args.seed, name="L(w, b)")
    print(report)
    print()
    fd = _fd_values(report)

    # the notes' formulas, and the corrected one: the oracle case's comparison
    notes = notes_formulas(w, b, x, y)
    fixed = notes_formulas(w, b, x, y, corrected=True)
    verdict_notes = case.compare({k: np.float64(v) for k, v in notes.items()})
    verdict_fixed = case.compare({k: np.float64(v) for k, v in fixed.items()})
    print("The notes' formulas, through the oracle (case.compare, as `python -m oracle "
          "verify`):")
    print(verdict_notes.table())
    print("With dL/dw = -(y - sigma) sigma' x + 2 lambda w:")
    print(verdict_fixed.table())
    print()

    golden = case.reference()
    answers = {
        "notes formula": (notes["grads/params/w"], notes["grads/params/b"]),
        "corrected formula": (fixed["grads/params/w"], fixed["grads/params/b"]),
        "engine (funcnn.backprop)": tuple(engine),
        "jax.grad": tuple(jax_grad),
        "finite differences (f64)": (fd["w"], fd["b"]),
    }
    ref_w, ref_b = float(golden["grads/params/w"]), float(golden["grads/params/b"])
    rows = []
    for who, (dw, db) in answers.items():
        rows.append((who, f"{dw:+.12f}", f"{abs(dw - ref_w):.2e}", f"{db:+.12f}",
                     f"{abs(db - ref_b):.2e}"))
    print_table(("answer", "dL/dw", "|diff| from oracle", "dL/db", "|diff| from oracle"), rows,
                title="Four answers for dL/dw and dL/db (oracle golden: float64 engine, "
                      "cross-checked with jax.vjp)")
    w_flagged = "grads/params/w" in [k.key for k in verdict_notes.keys if k.status == "FAIL"]
    b_ok = all(k.status == "pass" for k in verdict_notes.keys if k.key == "grads/params/b")
    conclusion = (
        f"The notes' dL/dw is {'WRONG' if w_flagged else 'right'}: it gives "
        f"{notes['grads/params/w']:.9g} where the gradient is {ref_w:.9g} (the first term has "
        f"the wrong sign: it must be -(y - sigma) sigma' x, since d(y - v)/dv = -1). "
        f"The notes' dL/db = (y - sigma) * -sigma' * 1 is {'correct' if b_ok else 'WRONG'} "
        f"({notes['grads/params/b']:.9g}). The corrected dL/dw "
        f"{'passes' if verdict_fixed.ok else 'FAILS'}.")
    print(conclusion)

    # DOT, its PNG if Graphviz is here, and a matplotlib drawing in any case
    dot_path = out / f"{NAME}_graph.dot"
    dot_path.write_text(g.to_dot() + "\n")
    figures = []
    dot_png = None
    if shutil.which("dot"):
        target = out / f"{NAME}_graph_dot.png"
        try:
            subprocess.run(["dot", "-Tpng", str(dot_path), "-o", str(target)], check=True,
                           timeout=60, capture_output=True)
            dot_png = target
            figures.append(dot_png.name)
            print(f"wrote {dot_path} and {dot_png}")
        except (OSError, subprocess.SubprocessError) as err:  # a broken Graphviz: say so
            print(f"wrote {dot_path}; `dot -Tpng` failed ({err}), no PNG of it")
    else:
        print(f"wrote {dot_path} (install Graphviz's `dot` to render it to PNG)")

    fig, (ax_g, ax_b) = plt.subplots(1, 2, figsize=(19, 5.5),
                                     gridspec_kw={"width_ratios": [3.2, 1.1]})
    draw_graph(ax_g, g)
    ax_g.set_title(f"Computation graph of L(w, b) at w={w:.3g}, b={b:.3g}, x={x:.3g}, "
                   f"y={y:.3g}: forward value and adjoint dL/dv of each node")
    names = list(answers)
    ypos = np.arange(len(names))
    flagged = [w_flagged and n == "notes formula" for n in names]
    dws = [answers[n][0] for n in names]
    dbs = [answers[n][1] for n in names]
    ax_b.barh(ypos - 0.2, dws, height=0.38, color=["C3" if f else "C0" for f in flagged])
    ax_b.barh(ypos + 0.2, dbs, height=0.38, color="C2")
    for yy, v in zip(ypos, dws, strict=True):
        ax_b.text(v, yy - 0.2, f" {v:.4f} ", va="center", ha="left" if v >= 0 else "right",
                  fontsize=8)
    for yy, v in zip(ypos, dbs, strict=True):
        ax_b.text(v, yy + 0.2, f" {v:.4f}", va="center", ha="left", fontsize=8)
    ax_b.axvline(0, color="black", lw=0.8)
    ax_b.set_yticks(ypos, names)
    ax_b.invert_yaxis()
    ax_b.set_xlim(min(dws + dbs) * 1.6, max(dws + dbs) * 3.0)
    ax_b.set_xlabel("derivative value (unitless)")
    ax_b.set_title("dL/dw and dL/db: four methods and the fix")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("C0", "C3", "C2")]
    ax_b.legend(handles, ["dL/dw", "dL/dw, flagged by the oracle", "dL/db"], fontsize=8,
                loc="upper left")
    ax_b.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    figures.insert(0, save_figure(fig, out, NAME).name)

    result = {
        "seed": args.seed, "quick": args.quick, "case": CASE, "lambda": LAMBDA,
        "point": {"w": w, "b": b, "x": x, "y": y}, "loss": value,
        "graph": [{"node": n.name, "op": n.label, "primitive": n.primitive,
                   "parents": [f"v{q}" if isinstance(q, int) else q for q in n.parents],
                   "children": [f"v{c}" for c in n.children], "value": float(n.value),
                   "adjoint": None if n.adjoint is None else float(n.adjoint)}
                  for n in g.nodes],
        "graph_outputs": [f"v{o}" for o in g.outputs],
        "answers": {k: {"dL/dw": v[0], "dL/db": v[1]} for k, v in answers.items()},
        "oracle_golden": {"dL/dw": ref_w, "dL/db": ref_b},
        "check_grads": report.to_dict(),
        "oracle_notes_formula": _case_result_dict(verdict_notes),
        "oracle_corrected_formula": _case_result_dict(verdict_fixed),
        "notes_dw_flagged": w_flagged, "notes_db_correct": b_ok,
        "conclusion": conclusion, "dot": dot_path.name,
        "dot_png": None if dot_png is None else dot_png.name, "figures": figures,
    }
    write_json(out, NAME, result)
    return result


if __name__ == "__main__":
    main()
