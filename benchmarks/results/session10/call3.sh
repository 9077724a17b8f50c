#!/bin/bash
# Session 10, call 3: where autograd's device thread costs a Taylor fwd+bwd at 4096 its host time (handoff_trace.py),
# as is and with the process pinned to one core (taskset), and the 4096 rounds against FLA pinned to one core.
# Run from a snapshot (`carry [".snap"]`).
cd .snap || exit 1
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0
nproc | tee $OUT/nproc.txt
pip install --no-deps --target /tmp/site .whl/*.whl > /dev/null 2>&1
echo "== free" | tee $OUT/handoff_trace.log
PYTHONPATH=$PWD timeout 100 python3 benchmarks/results/session10/handoff_trace.py 2>&1 | grep -v -i warn \
    | tee -a $OUT/handoff_trace.log
echo "== taskset -c 5" | tee -a $OUT/handoff_trace.log
PYTHONPATH=$PWD timeout 100 taskset -c 5 python3 benchmarks/results/session10/handoff_trace.py 2>&1 \
    | grep -v -i warn | tee -a $OUT/handoff_trace.log
PYTHONPATH=/tmp/site:$PWD timeout 150 taskset -c 5 python3 benchmarks/results/session10/taylor4096_threads.py 2>&1 \
    | grep -v -i warn | tee $OUT/taylor4096_threads_taskset.log
