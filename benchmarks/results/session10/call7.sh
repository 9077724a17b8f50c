#!/bin/bash
# Session 10, call 7: the short convolution with the K >= 4 forward tile of calls 5-6 ([32, 128] x 4 warps): the conv
# GPU tests and the convolution table. Run from a snapshot (`carry [".snap"]`).
cd .snap || exit 1
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
MIXERZOO_GPU_TESTS=1 PYTHONPATH=$PWD timeout 150 python3 -m pytest -m gpu -n 4 -q -rfE -p no:cacheprovider \
    tests/test_short_conv_triton.py > $OUT/gpu_tests_conv.log 2>&1
tail -3 $OUT/gpu_tests_conv.log
PYTHONPATH=$PWD timeout 300 python3 benchmarks/short_conv.py --out $OUT/conv --no-compiled > $OUT/conv.log 2>&1
grep -v -i warn $OUT/conv.log | tail -30
