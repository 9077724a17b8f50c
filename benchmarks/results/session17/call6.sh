# Session 17, call 6: the `attn[sdpa=...]` option and the `transformer-*-fa2` presets (SDPA pinned to its
# FlashAttention-2 kernel, the paper's baseline): their GPU tests, then the prefill of 4,096 tokens at batch 1 of
# Based against both Transformer baselines (torch's pick, cuDNN, and FlashAttention-2) in one run per size.
# bash benchmarks/results/session17/call6.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MIXERZOO_GPU_TESTS=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
mkdir -p $OUT
timeout 200 python3 -m pytest -m gpu -q -p no:cacheprovider tests/test_mixers.py tests/test_models.py \
  -k "sdpa or fa2 or graphed_prefill or attention_decode" 2>&1 | tail -5 | tee $OUT/gpu_tests.log
for size in 360m 1.3b; do
  timeout 200 python3 -m mixerzoo.cli bench prefill based-$size transformer-$size transformer-$size-fa2 --batch 1 \
    --prompt 4096 --compile --cuda-graph --json $OUT/prefill_$size.json 2>&1 | grep -v "$F" | grep -v "^{" \
    | tee $OUT/prefill_$size.log | tail -22
done
