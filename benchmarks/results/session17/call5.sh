# Session 17, call 5: benchmarks/gemm_chain.py again, now with the bound of record: the GEMMs alone plus the fastest
# attention plus the memory-bound part at copy bandwidth (decode: the mixers' states; prefill: every projection's
# input and output), both pairs.
# bash benchmarks/results/session17/call5.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
mkdir -p $OUT
timeout 200 python3 benchmarks/gemm_chain.py --out $OUT/chain360 2>&1 | grep -v "$F" | tee $OUT/chain360.log | tail -8
timeout 250 python3 benchmarks/gemm_chain.py --models based-1.3b transformer-1.3b --out $OUT/chain1300 2>&1 \
  | grep -v "$F" | tee $OUT/chain1300.log | tail -8
