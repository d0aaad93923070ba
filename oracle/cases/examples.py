"""The notes' worked example: one neuron with a sigmoid, squared error and weight decay,

    L(w, b) = 1/2 (y - sigmoid(w x + b))^2 + lambda w^2,

with scalar w, b, x, y (every one of them gets a gradient)."""
from funcnn.activations import sigmoid
from oracle.cases.base import Built, Spec
from oracle.cases.written import spec

LAMBDA = 0.1


def _notes(rng):
    def fn(params, inputs):
        w, b = params["w"], params["b"]
        pred = sigmoid(w * inputs["x"] + b)
        return {"loss": 0.5 * (inputs["y"] - pred) ** 2 + LAMBDA * w ** 2}

    params = {"w": rng.standard_normal(()), "b": rng.standard_normal(())}
    return Built(fn, params, {"x": 1.5 * rng.standard_normal(()), "y": rng.uniform(0, 1, ())})


SPECS = [
    Spec("example.notes_sigmoid_neuron", "example",
         "L(w, b) = 1/2 (y - sigmoid(w x + b))^2 + lambda w^2; all scalars",
         {"lambda": LAMBDA, "shapes": "w, b, x, y are scalars (shape [])"}, _notes,
         written=spec(["s = sigmoid(w x + b)", "L = 1/2 (y - s)^2 + lambda w^2   (lambda = "
                       f"{LAMBDA})", "dz = (s - y) s (1 - s)",
                       "dw = dz x + 2 lambda w; db = dz; dx = dz w; dy = y - s"],
                      outputs={"outputs/loss": "scalar L"},
                      notes=["every one of w, b, x, y gets a gradient"])),
]
