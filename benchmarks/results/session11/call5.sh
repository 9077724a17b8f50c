#!/bin/bash
# Session 11, call 5: the window forward's new defaults (scale in the exponent, registers capped, the general loop
# unpipelined where the aligned loops run): the window GPU tests, then the window table of record (B=64 decode only).
# Run from a snapshot (`carry [".snap"]`).
cd .snap || exit 1
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
MIXERZOO_GPU_TESTS=1 PYTHONPATH=$PWD timeout 200 python3 -m pytest -m gpu -n 4 -q -rfE -p no:cacheprovider \
    tests/test_sliding_window_triton.py > $OUT/gpu_tests_sw.log 2>&1
tail -2 $OUT/gpu_tests_sw.log
pip install --no-deps --target /tmp/site .whl/*.whl > /dev/null 2>&1
PYTHONPATH=/tmp/site:$PWD timeout 280 python3 benchmarks/sliding_window.py --out $OUT/sw --L 8192,16384 --decode-B 64 \
    --budget-s 200 > $OUT/sw.log 2>&1
grep "^| " $OUT/sw.log | head -14
