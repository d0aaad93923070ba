"""VJP rule of fft: the four transform types over the last ``len(fft_lengths)`` axes (1 to 3),
batched over the leading ones; what ``jnp.fft.fft/ifft/rfft/irfft`` (and their ``n``-d forms)
trace to.

Each transform is linear, so its cotangent is the transpose of the map under JAX's bilinear
pairing <a, b> = Re sum(a * b) (``rules.complex``). With N = prod(fft_lengths):

- FFT, y = F x: the DFT matrix is symmetric (F_kn = e^{-2 pi i kn / N}), so ct_x = FFT(ct).
- IFFT, y = conj(F) x / N: symmetric too, ct_x = IFFT(ct).
- RFFT, y = R F x for a real x, R keeping the first N_last // 2 + 1 frequencies of the last
  axis: ct_x = Re(F^T R^T ct) = Re(FFT(ct zero-padded to N_last)).
- IRFFT, y = Re(IFFT(x extended Hermitian along the last axis)) from the half spectrum x
  (imaginary parts of the 0 and N_last / 2 bins ignored): interior bins appear twice in the
  extension, so ct_x = w conj(RFFT(ct)) / N with w = 1 at the 0 and Nyquist bins, 2 elsewhere.
"""
from __future__ import annotations

import math

import jax.numpy as jnp
from jax import lax

from funcnn.backprop.registry import defvjp

FftType = lax.FftType


def half_spectrum_weights(n_last, n_bins, dtype):
    """w: [n_bins]: 1 at bin 0 and (for even n_last) at the Nyquist bin, 2 elsewhere."""
    k = jnp.arange(n_bins)
    once = (k == 0) | ((n_last % 2 == 0) & (k == n_last // 2))
    return jnp.where(once, 1.0, 2.0).astype(dtype)


@defvjp("fft")
def _fft(ct, x, *, out, fft_type, fft_lengths):
    """x: [..., *fft_lengths] (RFFT, FFT, IFFT) or [..., *fft_lengths[:-1], n // 2 + 1]
    (IRFFT); out the other way round."""
    kind = FftType(int(fft_type))
    if kind in (FftType.FFT, FftType.IFFT):
        return (lax.fft(ct, kind, fft_lengths),)
    n_last = fft_lengths[-1]
    if kind == FftType.RFFT:
        padded = jnp.pad(ct, [(0, 0)] * (ct.ndim - 1) + [(0, n_last - ct.shape[-1])])
        return (jnp.real(lax.fft(padded, FftType.FFT, fft_lengths)).astype(x.dtype),)
    spectrum = jnp.conj(lax.fft(ct, FftType.RFFT, fft_lengths))
    w = half_spectrum_weights(n_last, spectrum.shape[-1], ct.dtype) / math.prod(fft_lengths)
    return ((spectrum * lax.expand_dims(w, tuple(range(ct.ndim - 1)))).astype(x.dtype),)
