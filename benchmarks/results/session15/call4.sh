# Session 15, call 4: the 360M generation table with the final order (compiled rows first, largest batches last) and
# the early-read window/attention step, then the compiled, graphed prefill of 4,096 tokens at batch 1 (session 12's
# script) after linear attention's fused q/k/v projection.   bash benchmarks/results/session15/call4.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
mkdir -p $OUT
timeout 330 python3 benchmarks/generation.py --pair based-360m transformer-360m --batch 128 --prompt 1024 --new 1024 \
  --prefill-len 4096 --compile-step --out $OUT/gen360 2>&1 | grep -v "$F" | tee $OUT/gen360.log | tail -45
for args in "based-360m 1 default" "transformer-360m 1 default"; do
  echo "== prefill $args"
  timeout 100 python3 benchmarks/results/session12/prefill_modes.py $args 2>&1 | grep -v Warning | tail -1
done
