# Session 17, call 1: the projections of a step / prefill replayed alone (new benchmarks/gemm_chain.py) for both
# pairs, then a fresh profile of the 360M prefill of 4,096 tokens at batch 1, compiled and graphed (the profile of
# record, results/prefill_profile.md, is session 4's).
# bash benchmarks/results/session17/call1.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
mkdir -p $OUT
nvidia-smi --query-gpu=name,driver_version --format=csv | tee $OUT/gpu.txt
timeout 150 python3 benchmarks/gemm_chain.py --out $OUT/chain360 2>&1 | grep -v "$F" | tee $OUT/chain360.log | tail -8
timeout 200 python3 benchmarks/gemm_chain.py --models based-1.3b transformer-1.3b --out $OUT/chain1300 2>&1 \
  | grep -v "$F" | tee $OUT/chain1300.log | tail -8
timeout 220 python3 benchmarks/prefill_profile.py --compile --graph --batch 1 --top 15 --out $OUT/prefill 2>&1 \
  | grep -v "$F" > $OUT/prefill.log
grep "^## " $OUT/prefill.log
