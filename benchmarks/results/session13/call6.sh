# Session 13, call 6: the compiled batch-1 step profiled before and after the eager step in one process.
# bash benchmarks/results/session13/call6.sh
export PYTHONPATH=$PWD
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
timeout 150 python3 benchmarks/results/session13/order_profile.py 2>&1 | grep -v "$F" | grep -v "^| \`" | tail -40
