# Session 14, call 7 (run inline, this file written after it): Transformer-360M's compiled batch-1 step after
# Based-360M's compiled step at batch 128.
export PYTHONPATH=$PWD
timeout 100 python3 benchmarks/results/session14/step2.py based-360m:128:c transformer-360m:1:c 2>&1 | grep '"step"\|Error'
