"""funcnn.backprop: the hand-written reverse mode.

Traces a pure function into its computation graph (a jaxpr), runs it forward keeping every
value, then walks the graph backwards accumulating adjoints with one hand-written VJP rule per
primitive. Never calls JAX's own differentiation.

    >>> from funcnn import backprop
    >>> backprop.grad(lambda x: jnp.sin(x) * x)(1.0)
"""
from funcnn.backprop import rules  # noqa: F401  (registers every rule)
from funcnn.backprop.api import grad, value_and_grad, vjp
from funcnn.backprop.engine import MissingRuleError
from funcnn.backprop.graph import Graph, Node, graph
from funcnn.backprop.registry import VJP_RULES, defunary, defvjp

__all__ = ["grad", "value_and_grad", "vjp", "graph", "Graph", "Node", "MissingRuleError",
           "VJP_RULES", "defvjp", "defunary"]
