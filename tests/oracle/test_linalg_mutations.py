"""Planted bugs in the NumPy linear-algebra, FFT and top_k implementation
(``scripts/numpy_linalg.py``) are caught by ``verify`` on the case built for them, by a large
factor over the conditioned tolerance, in float64 and in float32; the same results pass every
other case of the family. The correct implementation verifies clean
(``test_numpy_reference.py``)."""
import json

import numpy as np
import pytest

import oracle
from oracle.cli import main
from tests.oracle.conftest import load_script


def transposed_solve_gradient(lib):
    right = lib.solve_vjp

    def wrong(a, b, v):
        x, da, db = right(a, b, v)
        return x, da.T, db
    return {"solve_vjp": wrong}


def eigh_gaps_with_the_wrong_sign(lib):
    right = lib.inverse_gaps
    return {"inverse_gaps": lambda w: -right(w)}


def svdvals_ascending(lib):
    def wrong(a, v):
        u, s, vt = np.linalg.svd(a, full_matrices=False)
        return s[::-1], (u * v[::-1]) @ vt
    return {"svdvals_vjp": wrong}


def cholesky_lower_triangle_gradient(lib):
    """The gradient of a Cholesky that reads only the lower triangle, G_low = tril(2 G - diag
    G), handed in as it is instead of converted by (G_low + G_low^T) / 2."""
    return {"cholesky_symmetrize": lambda s: np.tril(s + s.T) - np.diag(np.diag(s))}


def rfft_adjoint_as_irfft(lib):
    """The adjoint of rfft taken as n * irfft: counts the interior bins twice."""
    return {"rfft_adjoint": lambda g, n: n * np.fft.irfft(g, n=n, axis=-1)}


def top_k_gradient_to_the_sorted_positions(lib):
    def wrong(g, idx, shape):
        out = np.zeros(shape, g.dtype)
        out[:, :g.shape[-1]] = g
        return out
    return {"top_k_scatter": wrong}


# (plant: {function name in numpy_linalg: the buggy one}, the case that must fail, its key)
MUTANTS = {
    "transposed_solve_gradient": (transposed_solve_gradient, "linalg.solve",
                                  "grads/inputs/a"),
    "logdet_inverse_not_transposed": (lambda lib: {"inverse_transpose": np.linalg.inv},
                                      "linalg.logdet", "grads/inputs/a"),
    "cholesky_without_symmetrization": (lambda lib: {"cholesky_symmetrize": lambda s: s},
                                        "linalg.cholesky", "grads/inputs/a"),
    "cholesky_lower_triangle_gradient": (cholesky_lower_triangle_gradient, "linalg.cholesky",
                                         "grads/inputs/a"),
    "eigh_gaps_with_the_wrong_sign": (eigh_gaps_with_the_wrong_sign, "linalg.eigh",
                                      "grads/inputs/a"),
    "svdvals_ascending": (svdvals_ascending, "linalg.svdvals", "outputs/s"),
    "rfft_adjoint_as_irfft": (rfft_adjoint_as_irfft, "fft.rfft_filter", "grads/inputs/x"),
    "top_k_gradient_to_the_sorted_positions": (top_k_gradient_to_the_sorted_positions,
                                               "top_k.moe_router", "grads/params/w_router"),
}
# How far past its tolerance each planted bug lands at least (max |error| / tol on the key).
FACTOR = {"f64": 1e6, "f32": 50.0}


def _verify(golden, results, names, report):
    args = ["verify", str(golden), str(results), "--json", str(report)]
    for name in names:
        args += ["--cases", name]
    code = main(args)
    return code, {c["name"]: c for c in json.loads(report.read_text())["cases"]}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_linalg_mutant_is_caught_by_a_large_factor(name, golden, tmp_path, monkeypatch,
                                                   capsys):
    plant, base, key = MUTANTS[name]
    ref = load_script()
    for attr, bad in plant(ref.linalg).items():
        monkeypatch.setattr(ref.linalg, attr, bad)
    family = base.split(".")[0]
    ref.run(golden, tmp_path, f"{family}.*", log=lambda line: None)
    names = [f"{base}.{d}" for d in FACTOR]
    code, cases = _verify(golden, tmp_path, names, tmp_path / "r.json")
    assert code == 1
    for d, factor in FACTOR.items():
        case = cases[f"{base}.{d}"]
        keys = {k["key"]: k for k in case["keys"]}
        assert case["status"] == "FAIL" and keys[key]["status"] == "FAIL", case["diagnosis"]
        assert keys[key]["max_abs"] / keys[key]["tol"] > factor, (d, keys[key])
    # the other cases of the family do not use the planted function: they pass
    others = [c.name for c in oracle.cases.all(f"{family}.*")
              if not c.name.startswith(base + ".")
              and not (base == "linalg.solve" and c.name.startswith("linalg.solve."))]
    others = [n for n in others if (golden / f"{n}.npz").exists()]
    if others:
        code, _ = _verify(golden, tmp_path, others, tmp_path / "others.json")
        assert code == 0, capsys.readouterr().out[-3000:]


def test_kappa100_solve_catches_the_transposed_gradient_too(golden, tmp_path, monkeypatch):
    """The ill-conditioned solve's tolerance is 10 times the plain one's; the bug still lands
    far past it."""
    ref = load_script()
    for attr, bad in transposed_solve_gradient(ref.linalg).items():
        monkeypatch.setattr(ref.linalg, attr, bad)
    ref.run(golden, tmp_path, "linalg.solve.kappa100.*", log=lambda line: None)
    names = ["linalg.solve.kappa100.f64", "linalg.solve.kappa100.f32"]
    code, cases = _verify(golden, tmp_path, names, tmp_path / "r.json")
    assert code == 1
    for name, factor in zip(names, FACTOR.values(), strict=True):
        keys = {k["key"]: k for k in cases[name]["keys"]}
        assert keys["grads/inputs/a"]["max_abs"] / keys["grads/inputs/a"]["tol"] > factor
