# Session 13, call 8: is what the eager step leaves behind the loss of PDL overlap? Both orders with the compiled
# step's inductor PDL off; and a few eager tokens without a CUDA graph before the compiled step.
# bash benchmarks/results/session13/call8.sh
export PYTHONPATH=$PWD
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
for order in c ec; do
  echo "== $order, MIXERZOO_STEP_INDUCTOR_PDL=0"
  MIXERZOO_STEP_INDUCTOR_PDL=0 timeout 60 python3 benchmarks/results/session13/order.py based-360m $order 2>&1 | grep -v "$F" | tail -1
done
echo "== nc"
timeout 60 python3 benchmarks/results/session13/order.py based-360m nc 2>&1 | grep -v "$F" | tail -1
