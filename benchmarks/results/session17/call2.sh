# Session 17, call 2: Based-360M's compiled decode step near its largest batch (12,968 in the table of record) as two
# halves on two CUDA streams in one graph (session16/split.py) against one group: at batch 128 the halves did not
# overlap at all (session 16); here each half's compute-bound GEMMs might overlap the other's memory-bound state
# update. 12,800 sequences (a little under the largest, for the second group's buffers), 32 timed steps.
# bash benchmarks/results/session17/call2.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
for args in "12800 1 1 40" "12800 2 2 40" "12800 2 1 40"; do
  echo "== split based-360m $args"
  timeout 170 python3 benchmarks/results/session16/split.py based-360m $args 2>&1 | grep -v "$F" | tail -3
done
