"""The top_k case: a mixture-of-experts router. Each token's logits over the experts, the k
largest kept (``lax.top_k``), a softmax over those k, and the output the gated sum of the
chosen experts' linear maps:

    logits = x @ w_router                       # [tokens, experts]
    top, idx = top_k(logits, k)                 # [tokens, k], descending
    gates = softmax(top)                        # [tokens, k]
    y[t] = sum_j gates[t, j] * (x[t] @ w_experts[idx[t, j]])

The draw is repeated until, in every row, the k + 1 largest logits are at least ``MARGIN``
apart: the selection and the order of the kept values are the same within any
finite-difference step, so every derivative exists (a tie is a kink).

Depth ``deep``, as attention's: a softmax over matrix products, then a weighted sum of matrix
products; its backward cancels in the softmax VJP (measured: funcnn's engine computing in
bfloat16 uses 92% of the shallow budget, 23% of the deep one).
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from oracle.cases.base import Built, Spec
from oracle.cases.written import spec

TOKENS, FEATURES, EXPERTS, K, OUT = 4, 3, 6, 2, 2
MARGIN = 0.1


def _router_fn(params, inputs):
    x = inputs["x"]
    top, idx = lax.top_k(x @ params["w_router"], K)
    gates = jax.nn.softmax(top, axis=-1)
    chosen = params["w_experts"][idx]  # [tokens, k, features, out]
    return {"y": jnp.einsum("tk,tf,tkfo->to", gates, x, chosen), "gates": gates}


def margin_of(logits, k=K) -> float:
    """The smallest gap between consecutive values among the k + 1 largest of each row."""
    top = -np.sort(-np.asarray(logits), axis=-1)[:, :k + 1]
    return float(np.min(-np.diff(top, axis=-1)))


def _router(rng):
    for _ in range(1000):
        params = {"w_router": rng.standard_normal((FEATURES, EXPERTS)),
                  "w_experts": rng.standard_normal((EXPERTS, FEATURES, OUT)) / np.sqrt(FEATURES)}
        x = rng.standard_normal((TOKENS, FEATURES))
        if margin_of(x @ params["w_router"]) >= MARGIN:
            return Built(_router_fn, params, {"x": x})
    raise RuntimeError(f"no draw keeps the top {K + 1} logits {MARGIN} apart")


SPECS = [
    Spec("top_k.moe_router", "top_k",
         f"mixture-of-experts router: gates = softmax(top_{K}(x @ w_router)), y = sum of the "
         f"gated chosen experts' x @ w_experts[e]; {EXPERTS} experts, k = {K}",
         {"tokens": TOKENS, "features": FEATURES, "experts": EXPERTS, "k": K, "out": OUT,
          "margin": MARGIN, "order": "descending (ties: none, config.margin apart)",
          "kappa": 1.0, "kappa_is": "1: a selection and a softmax"}, _router, depth="deep",
         written=spec(
             ["logits = x @ w_router   # [tokens, experts]",
              f"top, idx = top_k(logits, {K})   # the {K} largest per row, descending; idx "
              "int, no gradient",
              "gates = softmax(top, axis=-1)   # [tokens, k] (max subtracted)",
              "y[t] = sum_j gates[t, j] * (x[t] @ w_experts[idx[t, j]])   # [tokens, out]",
              "dlogits: each kept value's cotangent goes back to the position it came from; "
              "the other logits get 0",
              "dw_experts[e]: summed over every (t, j) with idx[t, j] == e"],
             parameters={"params/w_router": f"[{FEATURES}, {EXPERTS}]",
                         "params/w_experts": f"[{EXPERTS}, {FEATURES}, {OUT}], one linear map "
                                             "per expert"},
             inputs={"inputs/x": f"[{TOKENS}, {FEATURES}] tokens"},
             outputs={"outputs/y": f"[{TOKENS}, {OUT}]", "outputs/gates": f"[{TOKENS}, {K}]"},
             notes=[f"in every row the {K + 1} largest logits are at least {MARGIN} apart "
                    "(no ties, no change of selection within a finite-difference step)",
                    "torch: torch.topk(logits, k) (sorted, descending)"])),
]
