"""Strict test configuration: float64 on, rank promotion raises (a broadcasting bug in a
rule shows at once)."""
import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
