#!/bin/bash
# Session 11, call 6: the window forward with fewer aligned loops (sw_fwd_variants.py, MERGE); the convolution's forward tile [32, 128] × 4 warps for every K: the conv GPU tests, then the
# convolution table of record, every thread pinned to one core. Run from a snapshot (`carry [".snap"]`).
cd .snap || exit 1
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
MIXERZOO_GPU_TESTS=1 PYTHONPATH=$PWD timeout 150 python3 -m pytest -m gpu -n 4 -q -rfE -p no:cacheprovider \
    tests/test_short_conv_triton.py > $OUT/gpu_tests_conv.log 2>&1
tail -2 $OUT/gpu_tests_conv.log
PYTHONPATH=$PWD timeout 300 python3 benchmarks/short_conv.py --out $OUT/conv --no-compiled --pin-cpu 5 \
    > $OUT/conv.log 2>&1
grep -v -i warn $OUT/conv.log | tail -22
PYTHONPATH=$PWD timeout 200 python3 benchmarks/results/session11/sw_fwd_variants.py 3 $OUT/sw_fwd_variants.json \
    > $OUT/sw_fwd_variants.log 2>&1
grep best $OUT/sw_fwd_variants.log
