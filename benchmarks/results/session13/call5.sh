# Session 13, call 5: why the compiled batch-1 step is slower after the eager one ran (call 4: 0.572 → 0.653 ms):
# two captures of the compiled step alone; eager, then a gc.collect() and empty_cache(), then compiled.
# bash benchmarks/results/session13/call5.sh
export PYTHONPATH=$PWD
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
for order in cc egc; do
  echo "== $order"
  timeout 110 python3 benchmarks/results/session13/order.py based-360m $order 2>&1 | grep -v "$F" | tail -3
done
