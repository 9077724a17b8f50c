# Session 14, call 5: Transformer-360M's compiled batch-1 step alone in its process (call 4's table: 0.851 ms after
# Based's compiled rows; session 13, alone: 0.743 ms).
# bash benchmarks/results/session14/call5.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
timeout 100 python3 benchmarks/results/session14/step.py transformer-360m 1 c 2>&1 | grep '"step"\|Error'
