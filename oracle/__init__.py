"""funcnn's gradient-verification oracle.

- ``check_grads(f, *args, argnums=...)``: funcnn's hand-written engine, ``jax.vjp`` and float64
  finite differences compared leaf by leaf; returns a ``Report``.
  ``check_grads(f, *args, argnums=..., vjp=my_vjp)`` also checks your own backward pass
  ``my_vjp(*args, cotangent) -> cotangents of args[argnums]`` against all three.
- ``cases``: the registry of reference cases (``oracle.cases.all()``).
- ``python -m oracle list | check | export GOLDEN | verify GOLDEN RESULTS``: the command line;
  the golden-file format is ``funcnn-oracle/1``.

Example:
    >>> import oracle
    >>> oracle.check_grads(lambda x: jnp.sin(x).sum(), jnp.arange(3.0)).assert_ok()
    >>> oracle.check_grads(lambda x: jnp.sin(x), jnp.arange(3.0),
    ...                    vjp=lambda x, g: g * jnp.cos(x)).assert_ok()
"""
from oracle import cases
from oracle.check import check_grads
from oracle.conventions import CONVENTIONS
from oracle.report import LeafReport, PairResult, Report

__all__ = ["check_grads", "Report", "LeafReport", "PairResult", "cases", "CONVENTIONS"]
