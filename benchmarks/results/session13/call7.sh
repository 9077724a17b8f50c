# Session 13, call 7: what differs when the compiled step is compiled after the eager step ran (call 5): each order in
# its own inductor and Triton caches, the generated output code kept; and eager-then-compiled without the fast
# launcher. bash benchmarks/results/session13/call7.sh
export PYTHONPATH=$PWD
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
for order in c ec; do
  echo "== $order"
  TORCHINDUCTOR_CACHE_DIR=/tmp/ind_$order TRITON_CACHE_DIR=/tmp/tri_$order timeout 120 python3 benchmarks/results/session13/order.py based-360m $order 2>&1 | grep -v "$F" | tail -2
  mkdir -p $OUT/code_$order
  grep -l "def call(" -r /tmp/ind_$order --include=*.py | while read f; do cp "$f" $OUT/code_$order/; done
  ls -la $OUT/code_$order | tail -3
done
echo "== ec, MIXERZOO_FAST_LAUNCH=0"
MIXERZOO_FAST_LAUNCH=0 timeout 100 python3 benchmarks/results/session13/order.py based-360m ec 2>&1 | grep -v "$F" | tail -2
