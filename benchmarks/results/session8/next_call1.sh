#!/bin/bash
# The next device session's first call (written in session 8, which had no device time), under 10 minutes:
# GPU tests with session 8's switches on, their A/B (ab.py), per-launch times, the host profile.
# Run from a snapshot of the tree: `run` with command "bash .snap/benchmarks/results/session8/next_call1.sh" and
# carry [".snap"] (snapshot: benchmarks/notes/next_device_session.md).
cd .snap || exit 1
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0 PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a $OUT/gpu.txt
# every GPU test of the three kernel families with session 8's three switches on (the defaults passed in session 7)
MIXERZOO_FAST_LAUNCH=1 MIXERZOO_LA_BWD_TILE_PASS=1 MIXERZOO_LA_BWD_ONE_LAUNCH=1 MIXERZOO_GPU_TESTS=1 timeout 330 \
    python3 -m pytest -m gpu -n 4 -q -rfE -p no:cacheprovider tests/test_linear_attention_triton.py \
    tests/test_sliding_window_triton.py tests/test_short_conv_triton.py > $OUT/gpu_tests_switches_on.log 2>&1
tail -6 $OUT/gpu_tests_switches_on.log
timeout 120 python3 benchmarks/results/session8/ab.py > $OUT/ab.log 2>&1
grep -v -i warn $OUT/ab.log
for env in "" "MIXERZOO_LA_BWD_TILE_PASS=1 MIXERZOO_LA_BWD_ONE_LAUNCH=1"; do
    echo "== la_launches ${env:-defaults}" | tee -a $OUT/la_launches.log
    env $env timeout 60 python3 benchmarks/results/session7/la_launches.py 2>&1 | grep -v -i warn | tee -a $OUT/la_launches.log
done
timeout 60 python3 benchmarks/results/session8/host_profile.py > $OUT/host_profile.log 2>&1
head -12 $OUT/host_profile.log
