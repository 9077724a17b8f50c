#!/usr/bin/env bash
# One device call: GPU tests of the linear-attention kernels, then the benchmark (results under $OUT).
# Usage (device machine, repo root; needs .whl carried):
#   bash benchmarks/run_linear_attention_gpu.sh          # all GPU tests + sections train,algo,decode (~7–9 min, not yet timed)
#   TEST_K="serial_states or large_shapes or step_cuda_graph" \
#     bash benchmarks/run_linear_attention_gpu.sh        # run 4 plan: the auto default's paths (notes, "Run 3 (session 2)")
#   BENCH_ARGS="--sections train,variants" bash benchmarks/run_linear_attention_gpu.sh   # any sections (see --help)
# Env: SKIP_TESTS=1, TEST_K (pytest -k filter), TEST_TIMEOUT (s, default 150), BENCH_TIMEOUT (s, default 330),
#      BENCH_ARGS (default "--sections train,algo,decode"; all: checks,decode,train,variants,algo,host),
#      MIXERZOO_LA_ALGO (auto | serial | parallel; default auto).
set -o pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/la_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
  .whl/fla_core-0.6.0-py3-none-any.whl .whl/flash_linear_attention-0.6.0-py3-none-any.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv,noheader
if [ "${SKIP_TESTS:-0}" != "1" ]; then
  timeout "${TEST_TIMEOUT:-150}" python3 -m pytest -m gpu tests/test_linear_attention_triton.py -q -p no:cacheprovider \
    -W ignore ${TEST_K:+-k "$TEST_K"} 2>&1 | grep -v "^DEBUG" | tee "$OUT/gpu_tests.log" | tail -25
fi
timeout "${BENCH_TIMEOUT:-330}" python3 benchmarks/linear_attention.py --out "$OUT" ${BENCH_ARGS:---sections train,algo,decode} \
  2>&1 | tee "$OUT/bench.log" | grep -v "^DEBUG" | tail -100
nvidia-smi --query-gpu=name,clocks.sm,power.draw,temperature.gpu --format=csv,noheader
