#!/usr/bin/env bash
# One device call: the model-level GPU tests (CUDA-graph decode ≡ eager; Triton ≡ torch backends), then the
# generation/prefill benchmark. Results land in $OUT (copy them to benchmarks/results/).
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,power.limit --format=csv | tee "$OUT/gpu.txt"
timeout "${TEST_TIMEOUT:-120}" python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_models.py tests/test_backends_agree.py 2>&1 | tee "$OUT/gpu_tests.log"
timeout "${BENCH_TIMEOUT:-200}" python3 benchmarks/generation.py "$@" --out "$OUT" 2>&1 | tee "$OUT/generation.log"
