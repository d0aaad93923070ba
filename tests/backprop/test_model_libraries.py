"""Models written with flax.linen, flax.nnx, equinox and haiku as their users write them
(``library_models``): the engine's ``value_and_grad`` over the library's own params pytree
against ``jax.value_and_grad``, in float64, under ``jax.jit`` (both): the loss, every gradient leaf,
and the updated batch statistics where the model keeps them.

The points models reach at step 0 are in the table on purpose: a zero-bias convolution over a
zero background (relu at exactly 0, max-pool ties of zeros), batch norm in training mode,
padding and causal masks in attention, recurrent cells scanned over time, dropout with a
fixed key (a typed PRNG key among the inputs).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np
import pytest

from funcnn import backprop
from tests.backprop import library_models as models
from tests.backprop.library_points import compile_quick
from tests.helpers import assert_trees_close

# float64 throughout: the two gradients differ only by the order of float64 sums.
RTOL = 1e-12
ATOL = 1e-14


class Case(NamedTuple):
    name: str
    library: str  # what pytest.importorskip needs
    build: Callable[[], models.Model]


CASES = [
    Case("linen_mlp", "flax", models.linen_mlp),
    Case("linen_cnn_zero_bias", "flax", models.linen_cnn_zero_bias),
    Case("linen_batchnorm_train", "flax", models.linen_batchnorm_train),
    Case("linen_attention_masked", "flax", models.linen_attention_masked),
    Case("linen_lstm", "flax", lambda: models.linen_recurrent("OptimizedLSTMCell")),
    Case("linen_gru", "flax", lambda: models.linen_recurrent("GRUCell")),
    Case("linen_dropout", "flax", models.linen_dropout),
    Case("nnx_mlp", "flax", models.nnx_mlp),
    Case("nnx_conv_batchnorm", "flax", models.nnx_conv_batchnorm),
    Case("equinox_mlp", "equinox", models.equinox_mlp),
    Case("equinox_cnn_zero_bias", "equinox", models.equinox_cnn_zero_bias),
    Case("equinox_gru", "equinox", lambda: models.equinox_recurrent("GRUCell")),
    Case("equinox_lstm", "equinox", lambda: models.equinox_recurrent("LSTMCell")),
    Case("equinox_dropout", "equinox", models.equinox_dropout),
    Case("haiku_mlp", "haiku", models.haiku_mlp),
    Case("haiku_convnet_zero_bias", "haiku", models.haiku_convnet_zero_bias),
    Case("haiku_lstm", "haiku", lambda: models.haiku_recurrent("LSTM")),
    Case("haiku_gru", "haiku", lambda: models.haiku_recurrent("GRU")),
    Case("haiku_batchnorm_train", "haiku", models.haiku_batchnorm_train),
    Case("haiku_dropout", "haiku", models.haiku_dropout),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_engine_matches_jax_grad_on_library_models(case):
    pytest.importorskip(case.library, reason=f"{case.library} is not installed")
    model = case.build()
    args = (model.params, *model.data)
    got = compile_quick(backprop.value_and_grad(model.loss, has_aux=model.has_aux), *args)(*args)
    want = compile_quick(jax.value_and_grad(model.loss, has_aux=model.has_aux), *args)(*args)
    assert_trees_close(got, want, rtol=RTOL, atol=ATOL, what=f"{case.name}: ")
    grads = jax.tree_util.tree_leaves(want[1])
    assert any(np.any(np.asarray(g) != 0) for g in grads), "the reference gradient is all zero"
