#!/bin/bash
# Session 10, call 2: the training table (L = 4096, 8192, 16384) with FLA's Based kernels, FLA chunk_linear_attn at
# D=64 (a child process; D=16 and 32 fault on this stack) and SDPA, each fwd+bwd also with the backward on the calling
# thread, and autograd's hand-off measured first. Run from a snapshot (`carry [".snap"]`).
cd .snap || exit 1
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
pip install --no-deps --target /tmp/site .whl/*.whl > /dev/null 2>&1
PYTHONPATH=/tmp/site:$PWD timeout 420 python3 benchmarks/linear_attention.py --out $OUT/train --sections train --quick \
    --fla-chunk --fla-chunk-d 64 > $OUT/train.log 2>&1
grep -v -i warn $OUT/train.log | tail -40
