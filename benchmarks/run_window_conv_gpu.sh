#!/usr/bin/env bash
# One device call (≈ 7 min): GPU tests of the sliding-window / short-conv / xformers files, then both benchmarks.
# Usage (device tool, carry=[".whl"]): bash benchmarks/run_window_conv_gpu.sh   (writes under $OUT)
# Knobs: TEST_K (pytest -k expression), PYTEST_ARGS (default "-n 4" where pytest-xdist is installed: compiles in
# parallel and fills the Triton cache that the benchmarks' sweeps then hit), TEST_TIMEOUT, SKIP_CONV, CONV_ARGS,
# CONV_TIMEOUT, SW_ARGS, SW_TIMEOUT, SW_BUDGET (seconds after which no prefill row is started).
# Default run (issue 4, third round; still the next one: the round-3 run at 15:19 had no tile sweep): every GPU test; conv forward tile sweep at the two small shapes (launch-bound
# ones) and the conv table without the torch.compile peer; sliding window with
# the decode variant sweep (STEP_CANDIDATES) and the tile sweep (TILE_CANDIDATES) at L = 16384, then the prefill
# table at L = 8192, 16384, W = 64, 128 with the chosen tiles. Both benchmarks warm up before their first timed row
# (sliding window: 2 s + 2 s, then 0.25 s + 0.25 s before each prefill row).
set -o pipefail
export PYTHONUNBUFFERED=1 MIXERZOO_GPU_TESTS=1 TRITON_INTERPRET=0
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/xformers-0.0.35*.whl \
  && export PYTHONPATH=/tmp/site:$PWD || export PYTHONPATH=$PWD
python3 -c "import xdist" 2>/dev/null && PYTEST_ARGS=${PYTEST_ARGS--n 4} || PYTEST_ARGS=${PYTEST_ARGS-}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,power.limit,temperature.gpu --format=csv,noheader
t0=$(date +%s)
timeout ${TEST_TIMEOUT:-150} python3 -m pytest -m gpu -q -p no:cacheprovider $PYTEST_ARGS ${TEST_K:+-k "$TEST_K"} \
  ${TEST_FILES:-tests/test_sliding_window_triton.py tests/test_short_conv_triton.py tests/test_xformers_backend.py} 2>&1 \
  | grep -v DEBUG > "$OUT/pytest_gpu.log"; echo "pytest rc=$? ($(( $(date +%s) - t0 )) s)"; tail -25 "$OUT/pytest_gpu.log"
t0=$(date +%s)
[ -n "$SKIP_CONV" ] || timeout ${CONV_TIMEOUT:-90} python3 benchmarks/short_conv.py --out "$OUT" ${CONV_ARGS---no-compiled --sweep --sweep-shapes 4x4096x1024x3,4x4096x4096x3 --sweep-bwd=} \
  2>&1 | grep -v DEBUG > "$OUT/short_conv.log"; echo "short_conv rc=$? ($(( $(date +%s) - t0 )) s)"; tail -30 "$OUT/short_conv.log"
t0=$(date +%s)
timeout ${SW_TIMEOUT:-190} python3 benchmarks/sliding_window.py --out "$OUT" --budget-s ${SW_BUDGET:-165} \
  ${SW_ARGS---sweep --step-sweep} 2>&1 | grep -v DEBUG > "$OUT/sliding_window.log"
echo "sliding_window rc=$? ($(( $(date +%s) - t0 )) s)"
tail -60 "$OUT/sliding_window.log"
nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader
