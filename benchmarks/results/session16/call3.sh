# Session 16, call 3: the 1.3B generation table (stale since session 13) with each model in a process of its own,
# then the compiled, graphed prefill of 4,096 tokens at batch 1 for both 360M models (session 12's script).
# bash benchmarks/results/session16/call3.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
mkdir -p $OUT
timeout 400 python3 benchmarks/generation.py --pair based-1.3b transformer-1.3b --batch 128 --prompt 1024 --new 1024 \
  --prefill-len 4096 --compile-step --skip-largest --out $OUT/gen1300 2>&1 | grep -v "$F" | tee $OUT/gen1300.log | tail -32
for args in "based-360m 1 default" "transformer-360m 1 default"; do
  echo "== prefill $args"
  timeout 90 python3 benchmarks/results/session12/prefill_modes.py $args 2>&1 | grep -v Warning | tail -1
done
