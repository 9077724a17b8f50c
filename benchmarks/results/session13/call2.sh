# Session 13, call 2: decode_matmul_kernel (batches 2–128) on the GPU: the decode_linear GPU tests (GEMV and the new
# tile), its tiles swept against cuBLAS in a chain of PDL norm + projection, then the compiled, graphed Based-360M
# step at batch 128 with it (two tile settings) and without. bash benchmarks/results/session13/call2.sh
export PYTHONPATH=$PWD MIXERZOO_GPU_TESTS=1
echo "== decode_linear GPU tests"
timeout 150 python3 -m pytest -m gpu -n 4 -q -p no:cacheprovider tests/test_decode_linear.py 2>&1 | tail -6
echo "== sweep"
timeout 180 python3 benchmarks/results/session13/decode_gemm_pdl.py 128 2>&1 | grep -v Warning
echo "== steps, batch 128"
timeout 60 python3 benchmarks/results/session13/step_rows.py based-360m 128 2>&1 | grep -v Warning | tail -1
for tiles in "64 3 128" "128 3 64"; do
  MIXERZOO_DECODE_GEMM=1 timeout 60 python3 benchmarks/results/session13/step_rows.py based-360m 128 $tiles 2>&1 | grep -v Warning | tail -1
done
