#!/bin/bash
# Session 10, call 1: the linear-attention GPU tests with the forward's chunk contributions in bf16 (FWD_CHUNKS_BF16,
# the new default), per-launch times with it on and off, and Taylor at 4096 against FLA parallel_based with autograd's
# device thread and with the backward on the calling thread (taylor4096_threads.py). Run from a snapshot
# (`carry [".snap"]`, command `bash .snap/benchmarks/results/session10/call1.sh`).
cd .snap || exit 1
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a $OUT/gpu.txt
pip install --no-deps --target /tmp/site .whl/*.whl > /dev/null 2>&1
MIXERZOO_GPU_TESTS=1 PYTHONPATH=$PWD timeout 200 python3 -m pytest -m gpu -n 4 -q -rfE -p no:cacheprovider \
    tests/test_linear_attention_triton.py > $OUT/gpu_tests_la.log 2>&1
tail -3 $OUT/gpu_tests_la.log
for env in "MIXERZOO_LA_FWD_CHUNKS_BF16=1" "MIXERZOO_LA_FWD_CHUNKS_BF16=0"; do
    echo "== la_launches $env" | tee -a $OUT/la_launches.log
    env $env PYTHONPATH=$PWD timeout 60 python3 benchmarks/results/session7/la_launches.py 2>&1 | grep -v -i warn \
        | tee -a $OUT/la_launches.log
done
PYTHONPATH=/tmp/site:$PWD timeout 150 python3 benchmarks/results/session10/taylor4096_threads.py 2>&1 \
    | grep -v -i warn | tee $OUT/taylor4096_threads.log
