"""What one does with a reference case, as functions of it: its golden values, its three-way
check, and comparing another implementation's results with it.

    >>> case = oracle.cases.get("layer.dense.f64")
    >>> golden = oracle.reference(case)               # {"outputs/y": ..., "grads/...": ...}
    >>> oracle.check_case(case).assert_ok()           # engine vs jax.vjp vs finite differences
    >>> oracle.assert_matches(case, my_results)       # as ``verify`` judges a results file

The cases (``oracle.cases``) are data and import nothing of this; ``oracle``'s package init
also makes these functions methods of ``Case`` (``case.reference()``, ``case.check()``,
``case.compare(results)``, ``case.assert_matches(results)``), so that a script or test suite
can call them on the case it holds.
"""
from __future__ import annotations

from oracle.comparison import CaseResult, compare_case
from oracle.diagnosis import ProbeGraph
from oracle.reference import check_case, reference
from oracle.tolerance import key_atols

__all__ = ["reference", "check_case", "compare", "assert_matches", "METHODS"]


def compare(case, results: dict, skip=()) -> CaseResult:
    """Compare ``{key: array}`` results (another implementation's) with the case's golden
    values as ``verify`` does (tolerances, strictness, diagnosis): a ``CaseResult``."""
    golden = reference(case)
    golden.pop("_source", None)
    tolerance = case.tolerance
    graph = ProbeGraph(case.probes, case.probe_graph, case.probe_axes)
    return compare_case(case.name, golden, results, tolerance,
                        key_atols(golden, case.dtype, tolerance["rtol"]), probes=case.probes,
                        skip=skip, graph=graph)


def assert_matches(case, results: dict, skip=()) -> CaseResult:
    """Raise ``AssertionError`` with the comparison table unless ``results`` pass."""
    verdict = compare(case, results, skip)
    if not verdict.ok:
        raise AssertionError(verdict.table())
    return verdict


# name -> function(case, ...), made methods of Case by oracle/__init__.py
METHODS = {"reference": reference, "check": check_case, "compare": compare,
           "assert_matches": assert_matches}
