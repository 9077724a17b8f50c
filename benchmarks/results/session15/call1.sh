# Session 15, call 1: the split-K GEMM with PDL against cuBLAS at Based-360M's batch-128 projection shapes (written
# in session 14, not run before), then the order effect with one cuBLAS matmul (`mc`) and one batch-1 GEMV launch
# (`gc`) captured before the compiled batch-1 step.   bash benchmarks/results/session15/call1.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
mkdir -p $OUT
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
echo "== split-K"
timeout 330 python3 benchmarks/decode_gemm_splitk.py 128 64 --out $OUT 2>&1 | grep -v "$F" | tee $OUT/splitk.log | tail -60
for order in c mc gc; do
  echo "== step based-360m 1 $order"
  timeout 70 python3 benchmarks/results/session14/step.py based-360m 1 $order 2>&1 | grep -v "$F" | tail -3
done
