#!/bin/bash
# Session 11, call 7: the window forward's final defaults (scale in the exponent, registers capped, the general loop
# unpipelined where the aligned loops run, the interior blocks in the diagonal loop): the window GPU tests, then the
# window table of record at L = 4096, 8192, 16384, W = 64, 128, 512, with the four decode batches.
# Run from a snapshot (`carry [".snap"]`).
cd .snap || exit 1
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
MIXERZOO_GPU_TESTS=1 PYTHONPATH=$PWD timeout 150 python3 -m pytest -m gpu -n 4 -q -rfE -p no:cacheprovider \
    tests/test_sliding_window_triton.py > $OUT/gpu_tests_sw.log 2>&1
tail -2 $OUT/gpu_tests_sw.log
pip install --no-deps --target /tmp/site .whl/*.whl > /dev/null 2>&1
PYTHONPATH=/tmp/site:$PWD timeout 380 python3 benchmarks/sliding_window.py --out $OUT/sw --L 4096,8192,16384 \
    --W 64,128,512 --decode-B 1,16,64,256 --budget-s 280 > $OUT/sw.log 2>&1
grep "^| \|Errors\|skipped" $OUT/sw.log | head -40
