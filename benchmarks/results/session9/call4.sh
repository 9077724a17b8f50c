#!/bin/bash
# Session 9, call 4: the sliding-window table (prefill fwd and fwd+bwd beside FA2-with-window through xformers and
# compiled flex_attention, L = 8192 and 16384; the decode table) with the current code. From a snapshot.
cd .snap || exit 1
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
pip install --no-deps --target /tmp/site .whl/*.whl > /dev/null 2>&1
PYTHONPATH=/tmp/site:$PWD timeout 420 python3 benchmarks/sliding_window.py --out $OUT/sw --L 8192,16384 --budget-s 200 \
    > $OUT/sw.log 2>&1
grep -v -i warn $OUT/sw.log | tail -30
