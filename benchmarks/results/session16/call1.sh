# Session 16, call 1: every GPU test (the window step's last fix from session 15, and the RoPE-in-step tests, have not
# run on the GPU yet), then Transformer-360M's compiled, graphed step at batch 1 and 128 with RoPE inside the attention
# step kernel and without, one process each.   bash benchmarks/results/session16/call1.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MIXERZOO_GPU_TESTS=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
mkdir -p $OUT
timeout 330 python3 -m pytest -m gpu -n 4 -q -p no:cacheprovider tests/ 2>&1 | tail -40 | tee $OUT/gpu_tests.log
for args in "1 128 1 0" "128 1024 1 0"; do
  for rope in 0 1; do
    echo "== transformer-360m $args rope_in_step=$rope"
    MIXERZOO_ROPE_IN_STEP=$rope timeout 80 python3 benchmarks/results/session15/ab.py transformer-360m $args 2>&1 \
      | grep -v "$F" | tail -2
  done
done
