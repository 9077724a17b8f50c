# Session 13, call 4: the batch-1 compiled step's time against what ran before it in the process (order.py), then the
# 1.3B pair's generation table with the library's defaults (session 6's command for it).
# bash benchmarks/results/session13/call4.sh
export PYTHONPATH=$PWD
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
echo "== order"
timeout 120 python3 benchmarks/results/session13/order.py 2>&1 | grep -v "$F" | tail -3
echo "== generation 1.3B"
timeout 400 python3 benchmarks/generation.py --pair based-1.3b transformer-1.3b --batch 128 --prompt 1024 --new 1024 --prefill-len 4096 --compile-step --skip-largest --out $OUT/gen13 2>&1 | grep -v "$F" | tee $OUT/gen13.log | tail -30
