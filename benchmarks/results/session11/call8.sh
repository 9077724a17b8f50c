#!/bin/bash
# Session 11, call 8: the linear-attention training table of record with the state rule of session 10 (parallel
# from 64 chunks) and the benchmark's FLA child timing fused_chunk_linear_attn before chunk_linear_attn at each D
# (benchmarks/notes/next_device_session.md), every thread pinned to one core. Run from a snapshot.
cd .snap || exit 1
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
pip install --no-deps --target /tmp/site .whl/*.whl > /dev/null 2>&1
PYTHONPATH=/tmp/site:$PWD timeout 530 python3 benchmarks/linear_attention.py --out $OUT/train --sections train \
    --fla-chunk --fla-chunk-d 64,16,32 --pin-cpu 5 2>&1 | tee $OUT/train.log | grep -v -i warn | tail -40
