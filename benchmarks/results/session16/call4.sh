# Session 16, call 4: the order-effect probes written in session 15 (Based-360M's compiled batch-1 step alone, and
# after a captured graph of a memset, an aten kernel, a cuBLAS matmul or the PDL GEMV, each followed by the GEMV),
# then the compiled, graphed prefill of 4,096 tokens at 1.3B (not timed since linear attention's fused q/k/v).
# bash benchmarks/results/session16/call4.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
mkdir -p $OUT
for order in c zc ac mc gc; do
  echo "== probe based-360m 1 $order"
  timeout 60 python3 benchmarks/results/session15/probe.py based-360m 1 $order 2>&1 | grep -v "$F" | tail -1
done
for args in "based-1.3b 1 default" "transformer-1.3b 1 default"; do
  echo "== prefill $args"
  timeout 100 python3 benchmarks/results/session12/prefill_modes.py $args 2>&1 | grep -v Warning | tail -1
done
