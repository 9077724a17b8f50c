#!/usr/bin/env bash
# Session 11, call 1: window GPU tests with the new switches' defaults (off), the forward's variants (A/B), the
# convolution's forward tiles at the small shape.
set -x
cd .snap
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv
python3 -c "import torch, triton; print(torch.__version__, triton.__version__)"
timeout 200 python3 -m pytest -q -m gpu tests/test_sliding_window_triton.py -x -p no:cacheprovider 2>&1 | tail -5
timeout 260 python3 benchmarks/results/session11/sw_fwd_variants.py 2 $OUT/sw_fwd_variants.json 2>&1 | tee $OUT/sw_fwd_variants.log
timeout 120 python3 benchmarks/results/session11/conv_fwd_tiles.py 2>&1 | tee $OUT/conv_fwd_tiles.log
