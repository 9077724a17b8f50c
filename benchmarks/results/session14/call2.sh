# Session 14, call 2: the GPU tests of the changed kernels (the batch-1 MLP's fused GEMVs, the linear-attention step
# reading slices of the fused q/k/v projection) and the models; then the graphed decode steps with them.
# bash benchmarks/results/session14/call2.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MIXERZOO_GPU_TESTS=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
mkdir -p $OUT
timeout 240 python3 -m pytest -m gpu -n 4 -q -p no:cacheprovider tests/test_decode_linear.py tests/test_models.py \
  tests/test_linear_attention_triton.py 2>&1 | grep -v "$F" | tail -25 | tee $OUT/gpu_tests.log
s() { echo "== $*"; timeout 100 python3 benchmarks/results/session14/step.py "$@" 2>&1 | grep -v "$F" | grep '"step"\|Error\|error'; }
{
s based-360m 1 c
s transformer-360m 1 c
s based-360m 128 c
s based-360m 1 cc
s based-360m 1 tc
} 2>&1 | tee $OUT/steps.log
