#!/bin/bash
# Session 10, call 5: the short convolution's forward with one tile for every K (K=4 took [64, 128] × 4 warps before,
# 208 registers offline): the conv GPU tests, the forward tile sweep at K=4 (its first entry is the old K=4 tile, the
# second the new one: same-run A/B), then the convolution table (every shape, the decode step). Run from a snapshot
# (`carry [".snap"]`).
cd .snap || exit 1
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
MIXERZOO_GPU_TESTS=1 PYTHONPATH=$PWD timeout 150 python3 -m pytest -m gpu -n 4 -q -rfE -p no:cacheprovider \
    tests/test_short_conv_triton.py > $OUT/gpu_tests_conv.log 2>&1
tail -3 $OUT/gpu_tests_conv.log
PYTHONPATH=$PWD timeout 400 python3 benchmarks/short_conv.py --out $OUT/conv --no-compiled --sweep \
    --sweep-shapes 4x16384x4096x4,4x16384x1024x4,4x4096x1024x4 --sweep-bwd "" > $OUT/conv.log 2>&1
grep -v -i warn $OUT/conv.log | tail -40
