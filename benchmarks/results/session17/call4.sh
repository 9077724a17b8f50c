# Session 17, call 4: the 1.3B generation table with the prefill of record in it (compiled and graphed), each model in
# a process of its own (session 16's table of record has the eager prefill in it).
# bash benchmarks/results/session17/call4.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
mkdir -p $OUT
timeout 570 python3 benchmarks/generation.py --pair based-1.3b transformer-1.3b --batch 128 --prompt 1024 --new 1024 \
  --prefill-len 4096 --compile-step --compile-prefill --graph-prefill --skip-largest --out $OUT/gen1300 2>&1 \
  | grep -v "$F" | tee $OUT/gen1300.log | tail -36
