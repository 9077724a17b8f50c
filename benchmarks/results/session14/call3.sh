# Session 14, call 3: the batch-1 MLP fusions one at a time (call 2 had both on: 0.590 ms), then the 360M generation
# table with the library's defaults (fusions off; linear attention's q/k/v in one projection; compiled rows first).
# bash benchmarks/results/session14/call3.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
mkdir -p $OUT
for fused in norm act; do
  echo "== based-360m 1 c MIXERZOO_DECODE_FUSED_MLP=$fused"
  MIXERZOO_DECODE_FUSED_MLP=$fused timeout 70 python3 benchmarks/results/session14/step.py based-360m 1 c 2>&1 \
    | grep -v "$F" | grep '"step"\|Error'
done 2>&1 | tee $OUT/fused.log
timeout 440 python3 benchmarks/generation.py --pair based-360m transformer-360m --batch 128 --prompt 1024 --new 1024 \
  --prefill-len 4096 --compile-step --out $OUT/gen360 2>&1 | grep -v "$F" | tee $OUT/gen360.log | tail -40
