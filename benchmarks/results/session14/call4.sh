# Session 14, call 4: the 360M generation table with every compiled row of both models before any eager one (call 3
# ran each model's compiled rows first, but the Transformer's after Based's eager ones: 0.861 ms at batch 1).
# bash benchmarks/results/session14/call4.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
mkdir -p $OUT
timeout 330 python3 benchmarks/generation.py --pair based-360m transformer-360m --batch 128 --prompt 1024 --new 1024 \
  --prefill-len 4096 --compile-step --out $OUT/gen360 2>&1 | grep -v "$F" | tee $OUT/gen360.log | tail -40
