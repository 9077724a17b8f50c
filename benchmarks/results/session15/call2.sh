# Session 15, call 2: where Transformer-360M's compiled, graphed batch-1 step spends its 0.75 ms (3.5× its floor;
# Based-360M's is 2.8×): the decode profile at batch 1, top 24 kernels.   bash benchmarks/results/session15/call2.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
mkdir -p $OUT
timeout 300 python3 benchmarks/decode_profile.py --models transformer-360m based-360m --batch 1 --compile-step --top 24 \
  --out $OUT 2>&1 | grep -v "$F" | tee $OUT/profile.log | tail -90
