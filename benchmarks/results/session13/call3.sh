# Session 13, call 3: decode_matmul_kernel's tiles against cuBLAS at 16 rows (batch 16), then the generation table of
# record for the 360M pair with the library's defaults (the batch-1 GEMV on), the command of session 6's table.
# bash benchmarks/results/session13/call3.sh
export PYTHONPATH=$PWD
echo "== sweep, 16 rows"
timeout 100 python3 benchmarks/results/session13/decode_gemm_pdl.py 16 2>&1 | grep -v Warning
echo "== generation"
timeout 470 python3 benchmarks/generation.py --pair based-360m transformer-360m --batch 128 --prompt 1024 --new 1024 --prefill-len 4096 --compile-step --out $OUT/gen360 2>&1 | grep -v "Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo" | tee $OUT/gen360.log | tail -45
