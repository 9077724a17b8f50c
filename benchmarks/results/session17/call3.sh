# Session 17, call 3: the 360M generation table with the prefill of record in it (compiled and graphed), each model in
# a process of its own; the plan of session 16 (notes/next_device_session.md).
# bash benchmarks/results/session17/call3.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
mkdir -p $OUT
timeout 570 python3 benchmarks/generation.py --pair based-360m transformer-360m --batch 128 --prompt 1024 --new 1024 \
  --prefill-len 4096 --compile-step --compile-prefill --graph-prefill --out $OUT/gen360 2>&1 | grep -v "$F" \
  | tee $OUT/gen360.log | tail -40
