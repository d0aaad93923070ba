#!/usr/bin/env bash
# The GPU checks of the performance issue in one run, for a machine with an NVIDIA GPU and
# JAX already installed (nothing is installed here): the whole test suite, the oracle's main
# job, the benchmark with the large bf16 MLP. Everything is written under ${OUT:-gpu_check}.
#
#     OUT=/tmp/gpu bash scripts/gpu_check.sh        # about 7 minutes on an H200
#
# Timeouts (seconds) can be set: T_TEST (default 300), T_ORACLE (90), T_BENCH (150); PYTHON
# names the interpreter (default python3).
set -u
OUT=${OUT:-gpu_check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
nvidia-smi -L | tee "$OUT/gpu.txt"
$PY -c "import jax; print('jax', jax.__version__, jax.devices())" | tee -a "$OUT/gpu.txt"
workers=$($PY -c "import xdist" 2>/dev/null && echo "-n 8" || echo "")
timeout "${T_TEST:-300}" $PY -m pytest -q -p no:cacheprovider $workers > "$OUT/pytest.txt" 2>&1
echo "pytest rc=$?" | tee -a "$OUT/pytest.txt"; tail -15 "$OUT/pytest.txt"
timeout "${T_ORACLE:-90}" $PY -m oracle check > "$OUT/oracle.txt" 2>&1
echo "oracle rc=$?" | tee -a "$OUT/oracle.txt"; tail -2 "$OUT/oracle.txt"
timeout "${T_BENCH:-150}" $PY scripts/bench.py --repeats 7 --json "$OUT/bench.json" \
    2>&1 | tee "$OUT/bench.txt"
