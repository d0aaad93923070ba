"""A training trajectory: k steps of plain SGD on a small mlp.

Step k (k = 0 .. steps-1) takes the minibatch of rows ``[k * batch_size, (k + 1) *
batch_size)`` of ``inputs/x, inputs/y``, records ``trajectory/<k>/loss`` (the minibatch's loss
before the step) and ``trajectory/<k>/params/...`` (the parameters after
``params <- params - learning_rate * grad``). ``outputs/loss`` and ``grads/...`` are the loss
over all rows at the initial parameters and its gradient.
"""
import jax
import numpy as np

from funcnn import models
from oracle.cases.base import Built, Spec, Training, draw_params
from oracle.cases.written import spec

MODEL = models.mlp(3, hidden=(4,), num_classes=2, activation="tanh")
STEPS, LR, BATCH = 3, 0.5, 2


def _loss(params, inputs):
    return MODEL.loss(params, (inputs["x"], inputs["y"]))


def _sgd(rng):
    def fn(params, inputs):
        return {"loss": _loss(params, inputs)}

    params = draw_params(rng, jax.eval_shape(lambda: MODEL.init(jax.random.key(0))))
    inputs = {"x": rng.standard_normal((STEPS * BATCH, 3)),
              "y": np.array([0, 1, 1, 0, 1, 0], np.int32)}
    return Built(fn, params, inputs, training=Training(_loss, STEPS, LR, BATCH))


SPECS = [
    Spec("training.mlp_sgd", "training",
         f"{STEPS} steps of plain SGD (lr {LR}, minibatches of {BATCH} rows in order) on an "
         "mlp 3 -> 4 (tanh) -> 2 with mean cross-entropy",
         {"model": {"in_features": 3, "hidden": [4], "num_classes": 2, "activation": "tanh",
                    "l2": 0.0},
          "optimizer": "sgd", "update": "params <- params - learning_rate * grad",
          "learning_rate": LR, "steps": STEPS, "batch_size": BATCH,
          "minibatch": "step k uses rows [k * batch_size, (k + 1) * batch_size)",
          "trajectory": "trajectory/<k>/loss before step k, trajectory/<k>/params after it"},
         _sgd, depth="deep", written=spec(
             ["loss(P, X, Y) = cross_entropy(tanh(X @ P.dense_0/w + P.dense_0/b) @ P.dense_1/w"
              " + P.dense_1/b, Y)",
              "outputs/loss = loss(params, x, y)   (all rows, the initial parameters)",
              "grads/... = its gradient with respect to params and inputs/x",
              "P = params",
              "for k in 0 .. steps-1:",
              "    rows = k * batch_size .. (k + 1) * batch_size - 1   (in order, no shuffling)",
              "    trajectory/k/loss = loss(P, x[rows], y[rows])   (BEFORE step k)",
              f"    P = P - {LR} * grad_P loss(P, x[rows], y[rows])",
              "    trajectory/k/params/... = P   (AFTER step k)"],
             inputs={"inputs/x": f"[{STEPS * BATCH}, 3]: {STEPS} minibatches of {BATCH} rows",
                     "inputs/y": "class ids"},
             outputs={"outputs/loss": "scalar, over all rows at the initial parameters"},
             training={"minibatch": f"step k uses rows [k * {BATCH}, (k + 1) * {BATCH}) of "
                                    "inputs/x and inputs/y, in order, no shuffling",
                       "step": f"params <- params - {LR} * grad (plain SGD: no momentum, no "
                               "weight decay)",
                       "trajectory_loss": "trajectory/<k>/loss: the loss on minibatch k at "
                                          "the parameters before step k",
                       "trajectory_params": "trajectory/<k>/params/...: the parameters after "
                                            "step k (k = 0 .. steps-1)",
                       "outputs": "outputs/loss: the loss over all rows at the initial "
                                  "parameters",
                       "grads": "grads/...: the gradient of outputs/loss (initial parameters, "
                                "all rows)"})),
]
