"""The linear-algebra, FFT and top_k cases: the config names the matrices' spectra and
conditioning exactly, the tolerance follows from the config's kappa, and the conventions the
format document states (symmetrized inputs, sign-invariant eigenvector outputs, the bins irfft
ignores, the router's margin) are what the golden values hold, against jax.vjp."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oracle
from oracle.cases import linalg, top_k
from oracle.tolerance import KAPPA_MAX, RTOL, rtol_for
from tests.helpers import assert_trees_close

NEW = oracle.cases.all("linalg.*") + oracle.cases.all("fft.*") + oracle.cases.all("top_k.*")


def _singular_values(a):
    return np.linalg.svd(a, compute_uv=False)


def _eigenvalues(a):
    np.testing.assert_array_equal(a, a.T)  # exactly symmetric
    return np.linalg.eigvalsh(a)


# base name -> (what config lists, computed from inputs/a, kappa from that list)
SPECTRA = {
    "linalg.solve": ("singular_values", _singular_values, lambda s: max(s) / min(s)),
    "linalg.solve.kappa100": ("singular_values", _singular_values, lambda s: max(s) / min(s)),
    "linalg.cholesky": ("eigenvalues", _eigenvalues, lambda s: max(s) / min(s)),
    "linalg.logdet": ("singular_values", _singular_values, lambda s: max(s) / min(s)),
    "linalg.svdvals": ("singular_values", _singular_values,
                       lambda s: max(s) / min(list(-np.diff(sorted(s, reverse=True))) + [min(s)])),
    "linalg.eigh": ("eigenvalues", _eigenvalues,
                    lambda s: max(np.abs(s)) / min(np.diff(sorted(s)))),
}


@pytest.mark.parametrize("base", sorted(SPECTRA))
def test_config_names_the_spectrum_and_kappa(base):
    field, spectrum, kappa = SPECTRA[base]
    case = oracle.cases.get(f"{base}.f64")
    want = case.config[field]
    got = spectrum(case.inputs["a"])
    np.testing.assert_allclose(np.sort(got), np.sort(want), rtol=1e-12)
    assert case.config["kappa"] == pytest.approx(kappa(want), rel=1e-12)
    # float32 rounding moves the spectrum by about eps32 * kappa, no more
    f32 = spectrum(oracle.cases.get(f"{base}.f32").inputs["a"].astype(np.float64))
    np.testing.assert_allclose(np.sort(f32), np.sort(want), rtol=1e-5)


@pytest.mark.parametrize("case", NEW, ids=str)
def test_tolerance_is_the_base_times_kappa(case):
    kappa = case.config["kappa"]
    assert case.tolerance["rtol"] == RTOL[case.dtype][case.depth] * kappa
    assert case.tolerance["kappa"] == kappa
    assert 1 <= kappa <= KAPPA_MAX


def test_rtol_for_refuses_a_kappa_out_of_range():
    assert rtol_for("float32", "shallow", 10.0) == pytest.approx(1e-3)
    assert rtol_for("float64", "deep") == RTOL["float64"]["deep"]
    for bad in (0.5, 1e3):
        with pytest.raises(ValueError, match="expected 1 <= kappa <= 100"):
            rtol_for("float32", "shallow", bad)


def test_cases_without_kappa_keep_their_tolerance():
    case = oracle.cases.get("layer.dense.f32")
    assert case.tolerance == {"rtol": RTOL["float32"]["shallow"], "atol": 1e-7}


def test_logdet_matrix_has_a_negative_determinant():
    case = oracle.cases.get("linalg.logdet.f64")
    assert np.linalg.det(case.inputs["a"]) < 0
    golden = case.reference()
    assert golden["outputs/sign"] == -1.0
    np.testing.assert_allclose(golden["grads/inputs/a"], np.linalg.inv(case.inputs["a"]).T,
                               rtol=1e-12)


def _lower_only(g):
    """g of a function that reads only the lower triangle of its symmetric argument."""
    def f(a):
        return g(jnp.tril(a) + jnp.tril(a, -1).T)
    return f


@pytest.mark.parametrize("name, g", [
    ("linalg.cholesky.f64", lambda s: {"l": jnp.linalg.cholesky(s, symmetrize_input=False)}),
    ("linalg.eigh.f32", None),
])
def test_symmetric_inputs_get_the_symmetrized_gradient(name, g):
    """grads/inputs/a is symmetric, and (G_low + G_low^T) / 2 of a lower-triangle-only
    implementation is it (the conversion docs/oracle-format.md gives)."""
    case = oracle.cases.get(name)
    golden = case.reference()
    ga = np.asarray(golden["grads/inputs/a"], np.float64)
    np.testing.assert_array_equal(ga, ga.T)
    if g is None:
        c = case.inputs["c"].astype(np.float64)

        def g(s):
            w, v = jnp.linalg.eigh(s, symmetrize_input=False)
            return {"eigenvalues": w, "overlaps": (v.T @ c) ** 2}
    cts = {k: jnp.asarray(v, jnp.float64) for k, v in case.cotangents().items()
           if k in ("l", "eigenvalues", "overlaps")}
    with jax.enable_x64(True):
        a = jnp.asarray(case.inputs["a"], jnp.float64)
        out, vjp = jax.vjp(_lower_only(g), a)
        (g_low,) = vjp(cts)
    g_low = np.asarray(g_low)
    assert np.all(np.triu(g_low, 1) == 0)  # a different function: nothing above the diagonal
    rtol = 10 * case.tolerance["rtol"]
    assert_trees_close((g_low + g_low.T) / 2, ga, rtol=rtol, atol=rtol * np.max(np.abs(ga)))


def test_eigh_outputs_do_not_depend_on_the_eigenvectors_signs():
    case = oracle.cases.get("linalg.eigh.f64")
    golden = case.reference()
    c, ct = case.inputs["c"], case.cotangents()
    signs = np.array([1.0, -1.0, -1.0, 1.0])

    def flipped(a, c):
        w, v = jnp.linalg.eigh(a)
        v = v * signs[None, :]  # another valid choice of eigenvectors
        return {"eigenvalues": w, "overlaps": (v.T @ c) ** 2}

    with jax.enable_x64(True):
        out, vjp = jax.vjp(flipped, jnp.asarray(case.inputs["a"]), jnp.asarray(c))
        da, dc = vjp({k: jnp.asarray(v) for k, v in ct.items()})
    results = {"eigenvalues": out["eigenvalues"], "overlaps": out["overlaps"], "a": da, "c": dc}
    want = {"eigenvalues": golden["outputs/eigenvalues"], "overlaps": golden["outputs/overlaps"],
            "a": golden["grads/inputs/a"], "c": golden["grads/inputs/c"]}
    assert_trees_close(jax.tree_util.tree_map(np.asarray, results), want, rtol=1e-10,
                       atol=1e-12)
    assert np.all(np.diff(golden["outputs/eigenvalues"]) >= case.config["min_gap"] - 1e-12)


@pytest.mark.parametrize("dtype", ["f64", "f32"])
def test_irfft_ignores_the_imaginary_part_of_the_edge_bins(dtype):
    case = oracle.cases.get(f"fft.rfft_filter.{dtype}")
    golden = case.reference()
    dw_im = golden["grads/params/w_im"]
    assert dw_im[0] == 0 and dw_im[-1] == 0
    assert np.all(np.abs(dw_im[1:-1]) > 1e-3)


@pytest.mark.parametrize("dtype", ["f64", "f32", "f16", "bf16"])
def test_router_logits_keep_their_margin(dtype):
    """In every row the k + 1 largest logits stay config.margin apart, also after rounding to
    the case's dtype (the selection is the same within any finite-difference step)."""
    case = oracle.cases.get(f"top_k.moe_router.{dtype}")
    x = case.inputs["x"].astype(np.float64)
    logits = x @ case.params["w_router"].astype(np.float64)
    assert top_k.margin_of(logits) >= case.config["margin"] * 0.9
    if dtype == "f64":
        assert top_k.margin_of(logits) >= case.config["margin"]


@pytest.mark.parametrize("s, kwargs, want", [
    ((3.0, 2.0, 1.0), {"to_zero": True}, 3.0),
    ((-2.0, -1.0, 0.5, 2.5), {}, 2.5),
    ((5.0, 4.5, 1.0), {"to_zero": True}, 10.0),
])
def test_spread_over_gap(s, kwargs, want):
    assert linalg.spread_over_gap(s, **kwargs) == pytest.approx(want)


@pytest.mark.parametrize("det", [1, -1])
def test_orthogonal_has_the_asked_determinant(det):
    q = linalg.orthogonal(np.random.default_rng(3), 4, det)
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-14)
    assert np.sign(np.linalg.det(q)) == det
