"""The tolerances of the oracle, in one table, with the reasons.

A tolerance is an ``rtol`` relative to the scale of the array compared: an entry passes when

    |result - reference| <= atol + rtol * |reference|,
    atol = max(ATOL_FLOOR, rtol * scale, NOISE_ULPS * eps * group scale)

where ``scale`` is the largest ``|reference|`` in that array (one key of a golden file, one
leaf in ``check_grads``) and the group scale the largest in its group of arrays (all
``grads/``, all ``probes/``, ...: see ``key_atols``). Scaling atol by the array's own
magnitude keeps a tiny entry (a gradient that is nearly cancelled, 1e-9 next to entries of 1)
from failing on rounding alone,
while a planted bug, which moves entries by a sizeable fraction of the array's scale (a
transposed or averaged gradient, a wrong sign, a missing time step), fails by orders of
magnitude.

``depth`` says how much rounding a case accumulates:

- ``shallow``: elementwise functions, losses, single layers (at most a few dozen operations on
  any path from input to output);
- ``deep``: models, recurrences over time, attention with layer norm, training trajectories.

float64. A correct float64 implementation differs from the golden (float64) values by rounding
only: the NumPy reference (``scripts/verify_numpy_reference.py``) stays within 4e-16 of each
key's scale. ``1e-10`` / ``1e-9`` leave five orders of margin for other summation orders and
libm versions of exp / tanh / erf, and every planted bug of the mutation suite exceeds its
tolerance by more than 1e8.

float32 (the budget). A float32 case stores float32 inputs; its golden values are computed in
float64 from exactly those inputs and then rounded to float32: a float32 implementation is
judged against the float64 truth, never against another float32 computation. Its own rounding
is about ``n * eps32`` for ``n`` operations in a chain (eps32 = 1.19e-7). Measured on every
float32 case: funcnn's engine computing in float32 stays within 2.5e-7 of a key's scale on
shallow cases and 3e-6 on deep ones (the NumPy reference: 1.2e-7); that is at most 0.3%
of the budget (``tests/oracle/test_golden_roundtrip.py`` holds it under 10%). The budget,
``1e-4`` shallow and ``1e-3`` deep, is kept that wide for implementations that sum in another
order, fuse multiply-adds or reduce on a GPU, and it is still narrow: every planted bug of the
mutation suite exceeds it by at least 375 times (the averaged bias gradient of the mlp, the
smallest signal).

The budget is for float32 arithmetic. TF32 matmuls (JAX's default precision for float32 on
Ampere and later GPUs; PyTorch's ``allow_tf32``) round each product to about 5e-4: measured on
an H200, funcnn's float32 transformer gradient then misses the deep budget by 12%
(``grads/params/block_0/attention/self_attention/wq``), while at ``"highest"`` precision every
float32 case stays within 0.4% of it. ``python -m oracle`` runs at ``"highest"``; verify a GPU
implementation with TF32 turned off.

float16 and bfloat16 (opt-in cases: ``oracle.cases.all(dtypes=["f16", "bf16"])``). Golden
values as for float32: float64 on the rounded inputs, then rounded. The budget is a few ulps of
the dtype, ``LOW_ULPS`` (4 shallow, 16 deep) times its epsilon: float16 3.9e-3 / 1.6e-2,
bfloat16 3.1e-2 / 0.125; the floor for a group is 4 ulps of its scale (256 would exceed the
values themselves). Measured on every case (``tests/oracle/test_low_precision.py`` holds a
sample under half): funcnn's engine computing in float16 uses at most 28% of the budget
(log_softmax), in bfloat16 17% (softmax on large logits).

Conditioned cases (``oracle.cases.linalg``; ``fft`` and ``top_k`` name ``kappa = 1``). A case
whose config names a condition number ``kappa`` gets ``rtol = RTOL[dtype][depth] * kappa``:
a backward-stable solve, factorization or eigensolver errs by about ``kappa * eps`` relative
to the matrix's scale (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed.,
ch. 7 and 10), and so do the gradients built from it (``dA = -A^-T v x^T`` holds two solves),
so multiplying by ``kappa`` keeps the margin a plain layer has over its rounding. What kappa
is depends on the case (``config["kappa_is"]``): ``sigma_max / sigma_min`` for solve,
Cholesky and the log-determinant; ``max |value| / min gap`` for the singular values and eigh,
whose gradients go through the singular vectors (eigenvectors). ``KAPPA_MAX = 100`` bounds it:
the float32 rtol is then ``1e-2``, still far below a planted bug's error. Measured on every
such case: funcnn's engine, the NumPy reference and the PyTorch consumer computing in float32
use at most 0.15% of the budget (eigh; the float32 error grows from 1.0e-7 to 1.5e-6 of the
scale from ``linalg.solve``, kappa 10, to ``linalg.solve.kappa100``), in float64 they stay
within 3e-15 of the scale, and every planted bug of ``tests/oracle/test_linalg_mutations.py``
exceeds the tolerance by at least 97 times in float32 (the transposed solve gradient at kappa
100) and 9.7e7 in float64. XLA on the CPU has no float16 / bfloat16 LAPACK or FFT kernels, so
those cases' budgets (``LOW_ULPS * eps * kappa``) are not measured against an implementation.

``check_grads`` uses the same ``rtol`` (default: the ``deep`` one of the gradient's dtype) as
its budget for the rounding of the gradient under test, added to the finite-difference error
estimate (see ``oracle.check``).
"""

EPS = {"float64": 2.0 ** -52, "float32": 2.0 ** -23, "float16": 2.0 ** -10,
       "bfloat16": 2.0 ** -7}
# float16 and bfloat16: LOW_ULPS[depth] * eps of the dtype (see the module docstring)
LOW_ULPS = {"shallow": 4, "deep": 16}

RTOL = {
    "float64": {"shallow": 1e-10, "deep": 1e-9},
    "float32": {"shallow": 1e-4, "deep": 1e-3},
    **{d: {depth: n * EPS[d] for depth, n in LOW_ULPS.items()} for d in ("float16", "bfloat16")},
}

# The largest condition number a case may name (conditioned cases, above).
KAPPA_MAX = 100.0

ATOL_FLOOR = {"float64": 1e-13, "float32": 1e-7, "float16": 1e-5, "bfloat16": 1e-4}


def rtol_for(dtype: str, depth: str = "deep", kappa: float = 1.0) -> float:
    """The rtol for arrays of ``dtype`` ('float64', 'float32', 'float16', 'bfloat16') in a
    case of ``depth`` and condition number ``kappa`` (``config["kappa"]``; 1 for a case that
    names none): ``RTOL[dtype][depth] * kappa`` (see "Conditioned cases" above)."""
    table = RTOL.get(str(dtype))
    if table is None:
        raise ValueError(f"no tolerance for dtype {dtype!r}; expected one of {sorted(RTOL)}")
    if depth not in table:
        raise ValueError(f"unknown depth {depth!r}; expected 'shallow' or 'deep'")
    if not 1.0 <= kappa <= KAPPA_MAX:
        widest = RTOL["float32"]["shallow"] * KAPPA_MAX
        raise ValueError(f"condition number kappa = {kappa!r}: expected 1 <= kappa <= "
                         f"{KAPPA_MAX:g} (a float32 rtol above {widest:g} would no longer "
                         "tell a planted bug from rounding)")
    return table[depth] * kappa


# Rounding noise in an array whose true value is (nearly) 0 is relative to the other arrays of
# its group, not to itself: the attention key bias has gradient exactly 0, computed as a sum of
# terms the size of the other gradients. Its atol is at least NOISE_ULPS * eps * group scale.
NOISE_ULPS = 256.0
# ... except in float16 / bfloat16, where 256 ulps would exceed the values themselves: there
# the floor is as many ulps of the group scale as the shallow rtol has.
NOISE_ULPS_BY_DTYPE = {"float16": LOW_ULPS["shallow"], "bfloat16": LOW_ULPS["shallow"]}
COMPARED = ("outputs/", "grads/", "probes/", "trajectory/")


def key_atols(arrays: dict, dtype: str, rtol: float) -> dict:
    """``{key: atol}`` for every compared key of a golden case (see the module docstring):
    ``max(ATOL_FLOOR, rtol * max|key|, NOISE_ULPS * eps * max|group|)``, where the group is
    the key's first path segment (``grads``, ``probes``, ...)."""
    import numpy as np

    eps = EPS[str(dtype)]
    ulps = NOISE_ULPS_BY_DTYPE.get(str(dtype), NOISE_ULPS)
    scales = {k: float(np.max(np.abs(np.asarray(v, np.float64)), initial=0.0))
              for k, v in arrays.items() if k.startswith(COMPARED)}
    groups = {}
    for k, s in scales.items():
        g = k.split("/")[0]
        groups[g] = max(groups.get(g, 0.0), s)
    return {k: max(ATOL_FLOOR[str(dtype)], rtol * s, ulps * eps * groups[k.split("/")[0]])
            for k, s in scales.items()}
