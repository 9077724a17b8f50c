# Session 15, call 3: the window/attention decode kernel with its first chunk read before the PDL wait (the mixers'
# early_reads) and the split combine in the last program (no second launch): every GPU test, then the compiled,
# graphed step of Transformer-360M at batch 1 and 128 and Based-360M at batch 1, one process each.
# bash benchmarks/results/session15/call3.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MIXERZOO_GPU_TESTS=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
mkdir -p $OUT
timeout 330 python3 -m pytest -m gpu -n 4 -q -p no:cacheprovider tests/ 2>&1 | tail -40 | tee $OUT/gpu_tests.log
for args in "transformer-360m 1" "based-360m 1" "transformer-360m 128"; do
  echo "== step $args c"
  timeout 80 python3 benchmarks/results/session14/step.py $args c 2>&1 | grep -v "$F" | tail -3
done
