"""Strict test configuration: float64 on, rank promotion raises (a broadcasting bug in a
rule shows at once)."""
import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
# float32 means float32: on NVIDIA GPUs XLA may otherwise use TF32 for float32 matrix products
# (10-bit mantissa), and the float32 comparisons against jax.grad would measure that, not the
# engine. A no-op on the CPU; float64 checks never used TF32.
jax.config.update("jax_default_matmul_precision", "highest")
