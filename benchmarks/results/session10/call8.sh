#!/bin/bash
# Session 10, calls 8 and 9: the convolution table of call 7 (same code) with every thread pinned to one core
# (`--pin-cpu 5`): its first shape is a 34 µs kernel, where the host's hops between cores showed in call 7; call 9
# also with the v1 peer compiling again (its helpers had gained stride arguments).
# Run from a snapshot (`carry [".snap"]`).
cd .snap || exit 1
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
PYTHONPATH=$PWD timeout 300 python3 benchmarks/short_conv.py --out $OUT/conv --no-compiled --pin-cpu 5 \
    > $OUT/conv.log 2>&1
grep -v -i warn $OUT/conv.log | tail -22
