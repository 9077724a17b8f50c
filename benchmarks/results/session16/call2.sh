# Session 16, call 2: the 360M generation table with each model in a process of its own and RoPE inside the attention
# step kernel by default (call 1).   bash benchmarks/results/session16/call2.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
mkdir -p $OUT
timeout 560 python3 benchmarks/generation.py --pair based-360m transformer-360m --batch 128 --prompt 1024 --new 1024 \
  --prefill-len 4096 --compile-step --out $OUT/gen360 2>&1 | grep -v "$F" | tee $OUT/gen360.log | tail -45
