"""fft (rules/fft.py): FFT, IFFT, RFFT and IRFFT over 1, 2 and 3 axes, even and odd lengths,
batched, with jnp.fft's padding/cropping (``n``, ``s``) and normalizations. Against jax.vjp
with complex cotangents and float64 finite differences; second order on a sample."""
from __future__ import annotations

import jax.numpy as jnp
import pytest

from tests.backprop.matrix_specs import (
    SLOW,
    S,
    case_params,
    run_spec,
    slow,
    spec_name,
    unique_names,
)
from tests.backprop.sampling import check_hvp, complex_normal, normal, rng_for

pytestmark = pytest.mark.filterwarnings(  # see test_rules_decompositions.py
    "ignore:Casting complex values to real:numpy.exceptions.ComplexWarning")

C = complex_normal
R = normal

SPECS = [
    S("fft_1d", "fft", jnp.fft.fft, C((3, 8))),
    slow(S("fft_1d_odd", "fft", jnp.fft.fft, C((7,)))),
    S("fft_of_real", "fft", jnp.fft.fft, R((2, 6))),
    S("fft_padded_n", "fft", lambda z: jnp.fft.fft(z, n=10), C((3, 8))),
    slow(S("fft_cropped_n", "fft", lambda z: jnp.fft.fft(z, n=5), C((3, 8)))),
    S("fft_ortho", "fft", lambda z: jnp.fft.fft(z, norm="ortho"), C((3, 8))),
    slow(S("fft_axis0", "fft", lambda z: jnp.fft.fft(z, axis=0), C((5, 3)))),
    S("ifft_1d", "fft", jnp.fft.ifft, C((3, 8))),
    slow(S("ifft_1d_odd_forward", "fft", lambda z: jnp.fft.ifft(z, norm="forward"), C((2, 5)))),
    S("fft_2d", "fft", jnp.fft.fft2, C((2, 4, 6))),
    slow(S("ifft_2d", "fft", jnp.fft.ifft2, C((4, 5)))),
    S("fft_3d", "fft", jnp.fft.fftn, C((2, 3, 4, 5))),
    S("ifft_3d", "fft", jnp.fft.ifftn, C((3, 4, 5))),
    S("rfft_1d", "fft", jnp.fft.rfft, R((3, 8))),
    S("rfft_1d_odd", "fft", jnp.fft.rfft, R((3, 7))),
    slow(S("rfft_padded_n", "fft", lambda x: jnp.fft.rfft(x, n=9), R((6,)))),
    S("rfft_2d", "fft", jnp.fft.rfft2, R((2, 4, 6))),
    S("rfft_3d_odd", "fft", jnp.fft.rfftn, R((3, 4, 5))),
    S("irfft_1d", "fft", jnp.fft.irfft, C((3, 5))),
    S("irfft_1d_odd", "fft", lambda z: jnp.fft.irfft(z, n=7), C((3, 4))),
    slow(S("irfft_1d_ortho", "fft", lambda z: jnp.fft.irfft(z, norm="ortho"), C((6,)))),
    S("irfft_2d", "fft", jnp.fft.irfft2, C((2, 4, 4))),
    S("irfft_3d_odd", "fft", lambda z: jnp.fft.irfftn(z, s=(3, 4, 5)), C((3, 4, 3))),
    S("irfft_3d_even_batched", "fft", jnp.fft.irfftn, C((2, 4, 6, 3))),
    slow(S("hfft", "fft", jnp.fft.hfft, C((2, 5)))),
    slow(S("rfft_roundtrip", "fft",
           lambda x: jnp.fft.irfft(jnp.fft.rfft(x) * jnp.arange(5.0)[None]), R((3, 8)))),
    S("spectral_conv", "fft",  # a Fourier-operator layer: multiply low modes, transform back
      lambda x, w: jnp.fft.irfft(jnp.fft.rfft(x)[..., :3] * w, n=8), R((2, 8)), C((1, 3))),
    slow(S("power_spectrum", "fft", lambda x: jnp.abs(jnp.fft.fftshift(jnp.fft.fft(x))) ** 2,
           R((8,)))),
]


def test_spec_names_are_unique():
    assert unique_names(SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=[spec_name(s) for s in SPECS])
def test_rule(spec):
    run_spec(spec)


SECOND_ORDER = [
    ("rfft_power", lambda x: (jnp.abs(jnp.fft.rfft(x)) ** 2 * jnp.arange(5.0)).sum(), R((8,))),
    ("irfft_2d", lambda x: (jnp.fft.irfft2(jnp.fft.rfft2(x) ** 2) ** 2).sum(), R((4, 6)), SLOW),
    ("fft_3d", lambda x: jnp.abs(jnp.fft.fftn(jnp.sin(x))).sum(), R((2, 3, 4)), SLOW),
]


@pytest.mark.parametrize("loss, sample", case_params(SECOND_ORDER))
def test_second_order(loss, sample):
    rng = rng_for(f"hvp-{loss}")
    check_hvp(loss, sample(rng), rng)
