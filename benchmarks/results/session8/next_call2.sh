#!/bin/bash
# The next device session's second call (after making the A/B's winners the default): the training table with FLA
# (parallel_based, fused_chunk_based, chunk_linear_attn at each map's D) and SDPA in the same run. ~1 min, plus
# ~2 min of FLA autotuning per D (64, 16, 32); writes $OUT/train/linear_attention.{md,json}.
cd .snap || exit 1
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
pip install --no-deps --target /tmp/site .whl/*.whl > /dev/null 2>&1
PYTHONPATH=/tmp/site:$PWD timeout 560 python3 benchmarks/linear_attention.py --out $OUT/train --sections train --quick \
    --fla-chunk > $OUT/train.log 2>&1
tail -40 $OUT/train.log
