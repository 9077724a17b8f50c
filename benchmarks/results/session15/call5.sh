# Session 15, call 5: after call 4's Transformer-360M batch-128 row (7.27 ms against 6.18 in session 14), with the
# prefetch of chunk 1 moved back before chunk 0's reductions: that row alone, with early reads on / off, and on after
# a 120 GB allocation; then batch 1.   bash benchmarks/results/session15/call5.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
for args in "128 1024 1 0" "128 1024 0 0" "128 1024 1 120" "1 128 1 0"; do
  echo "== transformer-360m $args"
  timeout 110 python3 benchmarks/results/session15/ab.py transformer-360m $args 2>&1 | grep -v "$F" | tail -2
done
