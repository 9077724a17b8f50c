# Session 17, call 7: every GPU test, after the `sdpa` option went into the attention's parallel forward (call 6 ran
# only its own tests and the graphed prefill's).
# bash benchmarks/results/session17/call7.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MIXERZOO_GPU_TESTS=1
mkdir -p $OUT
timeout 400 python3 -m pytest -m gpu -n 4 -q -p no:cacheprovider tests/ 2>&1 | tail -15 | tee $OUT/gpu_tests.log
