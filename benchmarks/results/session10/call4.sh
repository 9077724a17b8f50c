#!/bin/bash
# Session 10, call 4: the training table at every L (1024 … 16384) with every thread pinned to one CPU core
# (--pin-cpu 5), FLA's Based kernels, FLA chunk_linear_attn at D=64 (a child process) and SDPA in the same run; each
# fwd+bwd also with the backward on the calling thread. Run from a snapshot (`carry [".snap"]`).
cd .snap || exit 1
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
pip install --no-deps --target /tmp/site .whl/*.whl > /dev/null 2>&1
PYTHONPATH=/tmp/site:$PWD timeout 480 python3 benchmarks/linear_attention.py --out $OUT/train --sections train \
    --fla-chunk --fla-chunk-d 64 --pin-cpu 5 > $OUT/train.log 2>&1
grep -v -i warn $OUT/train.log | tail -60
