"""oracle's imports run one way: no cycle among its modules (every import counted, also those
inside functions), the cases import nothing of how they are checked or verified, and every
module imports on its own, first, into a fresh ``oracle``."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "oracle"
# What the cases (oracle.cases.*) may import from the oracle: plain tables only.
CASES_MAY_IMPORT = {"oracle.cases", "oracle.tolerance", "oracle.conventions"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set:
    """The oracle modules that ``name`` imports, at the top or inside a function."""
    tree = ast.parse(MODULES[name].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES
                       else node.module for a in node.names]
        else:
            continue
        for t in targets:
            if t in MODULES:
                found.add(t)
                package = t.rsplit(".", 1)[0]
                # importing oracle.cases.base runs oracle/cases/__init__ first
                if package in MODULES and not name.startswith(package):
                    found.add(package)
    found.discard(name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def find_cycle(graph):
    state, stack = {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == "open":
                return stack[stack.index(m):] + [m]
            if m not in state:
                cycle = visit(m)
                if cycle:
                    return cycle
        state[n] = "done"
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state:
            cycle = visit(n)
            if cycle:
                return cycle
    return None


def test_the_import_graph_has_no_cycle():
    graph = {n: deps - {"oracle"} for n, deps in GRAPH.items() if n != "oracle"}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    assert [n for n, deps in GRAPH.items() if "oracle" in deps and n != "oracle.__main__"] == []


def test_the_cases_know_nothing_of_checking_or_verifying():
    for name, deps in GRAPH.items():
        if name.startswith("oracle.cases"):
            wrong = {d for d in deps if not any(d == a or d.startswith(a + ".")
                                                for a in CASES_MAY_IMPORT)}
            assert not wrong, f"{name} imports {sorted(wrong)}"


def test_the_graph_sees_every_kind_of_import():
    assert "oracle.reference" in GRAPH["oracle.golden"]
    assert "oracle.cases.base" in GRAPH["oracle.reference"]
    assert "oracle.cases" in GRAPH["oracle.reference"]  # through its package init
    assert "oracle.verify" in GRAPH["oracle.cli"]  # imported inside a function


def test_each_module_imports_first_into_a_fresh_oracle():
    """One interpreter (JAX loads once); before each module every oracle module is dropped,
    so each is the first oracle module imported."""
    names = sorted(n for n in MODULES if n != "oracle.__main__")
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    for m in [m for m in sys.modules if m == 'oracle' or m.startswith('oracle.')]:\n"
            "        del sys.modules[m]\n"
            "    importlib.import_module(name)\n"
            "print('imported', len(" + repr(names) + "))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"imported {len(names)}" in proc.stdout
