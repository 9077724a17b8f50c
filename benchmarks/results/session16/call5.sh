# Session 16, call 5: Based-360M's compiled decode step at batch 128 as two groups of 64 on two CUDA streams in one
# graph, against one group of 128 and two groups on one stream (session16/split.py), one process each.
# bash benchmarks/results/session16/call5.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
for args in "128 2 2" "128 1 1" "128 2 1" "128 4 4"; do
  echo "== split based-360m $args"
  timeout 70 python3 benchmarks/results/session16/split.py based-360m $args 2>&1 | grep -v "$F" | tail -3
done
