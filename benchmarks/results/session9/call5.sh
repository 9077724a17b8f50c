#!/bin/bash
# Session 9, call 5: the sliding-window forward's per-block masks (oldest blocks: the window test only; diagonal
# blocks: causality and bounds). The window GPU tests on the new tree, then sw_fwd_ab.py from the old tree (.snap_old,
# before the change) and the new one (.snap), alternated twice, then the window table (B=64 decode only).
cd .snap || exit 1
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
MIXERZOO_GPU_TESTS=1 PYTHONPATH=$PWD timeout 150 python3 -m pytest -m gpu -n 4 -q -rfE -p no:cacheprovider \
    tests/test_sliding_window_triton.py > $OUT/gpu_tests_sw.log 2>&1
tail -2 $OUT/gpu_tests_sw.log
for round in 1 2; do
    for tree in .snap_old .snap; do
        PYTHONPATH=$PWD/../$tree timeout 80 python3 benchmarks/results/session9/sw_fwd_ab.py "$tree" 2>&1 \
            | grep -v -i warn | tee -a $OUT/sw_fwd_ab.log
    done
done
pip install --no-deps --target /tmp/site .whl/*.whl > /dev/null 2>&1
PYTHONPATH=/tmp/site:$PWD timeout 200 python3 benchmarks/sliding_window.py --out $OUT/sw --L 8192,16384 --decode-B 64 \
    --budget-s 150 > $OUT/sw.log 2>&1
grep "^| " $OUT/sw.log | head -14
