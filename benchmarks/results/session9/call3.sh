#!/bin/bash
# Session 9, call 3 (the defaults after call 1's A/B): every GPU test of the three kernel families, the training
# table with FLA (Based kernels, and chunk_linear_attn at each map's D in child processes) and SDPA, and five
# alternated rounds of Taylor at 4096 against FLA parallel_based. Run from a snapshot (`carry [".snap"]`).
cd .snap || exit 1
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a $OUT/gpu.txt
MIXERZOO_GPU_TESTS=1 PYTHONPATH=$PWD timeout 200 python3 -m pytest -m gpu -n 4 -q -rfE -p no:cacheprovider \
    tests/test_linear_attention_triton.py tests/test_sliding_window_triton.py tests/test_short_conv_triton.py \
    > $OUT/gpu_tests_defaults.log 2>&1
tail -3 $OUT/gpu_tests_defaults.log
pip install --no-deps --target /tmp/site .whl/*.whl > /dev/null 2>&1
PYTHONPATH=/tmp/site:$PWD timeout 90 python3 benchmarks/results/session9/taylor4096_repeat.py 2>&1 | grep -v -i warn \
    | tee $OUT/taylor4096_repeat.log
PYTHONPATH=/tmp/site:$PWD timeout 330 python3 benchmarks/linear_attention.py --out $OUT/train --sections train --quick \
    --fla-chunk > $OUT/train.log 2>&1
grep -v -i warn $OUT/train.log | tail -32
