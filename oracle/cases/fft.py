"""The FFT case: a spectral filter layer on real signals, through ``rfft`` and ``irfft``.

    X = rfft(x)                      # [batch, n // 2 + 1] complex, the half spectrum
    y = irfft(X * (w_re + i w_im), n)
    power = |X|^2 / n

Real input and real outputs; the gradients reach the complex spectrum through both its real
and imaginary parts. ``irfft`` reads only the real part of the first bin (and, n even, of the
last): ``grads/params/w_im`` is exactly 0 there.
"""
import jax.numpy as jnp

from oracle.cases.base import Built, Spec
from oracle.cases.written import spec

BATCH, LENGTH = 2, 8
BINS = LENGTH // 2 + 1


def _filter_fn(params, inputs):
    spectrum = jnp.fft.rfft(inputs["x"], axis=-1)
    weights = (params["w_re"] + 1j * params["w_im"])[None, :]  # [1, bins]
    return {"y": jnp.fft.irfft(spectrum * weights, n=LENGTH, axis=-1),
            "power": jnp.abs(spectrum) ** 2 / LENGTH}


def _filter(rng):
    params = {"w_re": rng.standard_normal(BINS), "w_im": rng.standard_normal(BINS)}
    return Built(_filter_fn, params, {"x": rng.standard_normal((BATCH, LENGTH))})


SPECS = [
    Spec("fft.rfft_filter", "fft",
         f"y = irfft(rfft(x) * (w_re + i w_im), n={LENGTH}), power = |rfft(x)|^2 / {LENGTH}; "
         f"x [{BATCH}, {LENGTH}] real",
         {"shape": [BATCH, LENGTH], "n": LENGTH, "bins": BINS, "axis": -1, "norm": "backward",
          "kappa": 1.0, "kappa_is": "1: the DFT is a scaled unitary map"}, _filter,
         written=spec(
             ["X = rfft(x, axis=-1)   # [batch, n // 2 + 1]: X[k] = sum_t x[t] exp(-2 pi i k t "
              "/ n), no scaling",
              "y = irfft(X * (w_re + 1j * w_im), n, axis=-1)   # scaled by 1 / n; the "
              "imaginary parts of bins 0 and n / 2 are ignored",
              "power = (X.real ** 2 + X.imag ** 2) / n",
              "dx: the adjoint of irfft counts each interior bin twice (its mirror image), "
              "bins 0 and n / 2 once"],
             parameters={"params/w_re": f"[{BINS}], the filter's real part per bin",
                         "params/w_im": f"[{BINS}], its imaginary part"},
             inputs={"inputs/x": f"[{BATCH}, {LENGTH}] real signals"},
             outputs={"outputs/y": f"[{BATCH}, {LENGTH}] real", "outputs/power":
                      f"[{BATCH}, {BINS}] real"},
             notes=["torch: torch.fft.rfft / torch.fft.irfft(..., n=8) (norm='backward', the "
                    "default); numpy: np.fft.rfft / np.fft.irfft",
                    "grads/params/w_im[0] and [n / 2] are 0: irfft drops those imaginary "
                    "parts"])),
]
