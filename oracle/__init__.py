"""funcnn's gradient-verification oracle.

- ``check_grads(f, *args, argnums=...)``: funcnn's hand-written engine, ``jax.vjp`` and float64
  finite differences compared leaf by leaf; returns a ``Report``.
  ``check_grads(f, *args, argnums=..., vjp=my_vjp)`` also checks your own backward pass
  ``my_vjp(*args, cotangent) -> cotangents of args[argnums]`` against all three.
- ``cases``: the registry of reference cases (``oracle.cases.all()``); ``reference(case)``,
  ``check_case(case)``, ``compare(case, results)``, ``assert_matches(case, results)``
  (also as methods: ``case.compare(results)``).
- ``python -m oracle list | check | export GOLDEN | verify GOLDEN RESULTS``: the command line;
  the golden-file format is ``funcnn-oracle/1`` (``docs/oracle-format.md``).

Example:
    >>> import oracle
    >>> oracle.check_grads(lambda x: jnp.sin(x).sum(), jnp.arange(3.0)).assert_ok()
    >>> oracle.check_grads(lambda x: jnp.sin(x), jnp.arange(3.0),
    ...                    vjp=lambda x, g: g * jnp.cos(x)).assert_ok()
"""
from oracle import cases
from oracle.api import METHODS, assert_matches, check_case, compare, reference
from oracle.cases.base import Case
from oracle.check import check_grads
from oracle.conventions import CONVENTIONS
from oracle.report import LeafReport, PairResult, Report

# The cases are data (they import nothing of checking or verifying); their convenience methods
# are the functions of oracle.api, attached here, at the top of the import graph.
for _name, _function in METHODS.items():
    setattr(Case, _name, _function)

__all__ = ["check_grads", "Report", "LeafReport", "PairResult", "cases", "CONVENTIONS",
           "reference", "check_case", "compare", "assert_matches"]
