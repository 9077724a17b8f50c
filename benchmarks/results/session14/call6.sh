# Session 14, call 6: Transformer-360M's compiled batch-1 step after Based-360M's compiled one in the same process
# (alone, call 5: 0.747 ms; in call 4's table, after all of Based's compiled rows: 0.851 ms).
# bash benchmarks/results/session14/call6.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
timeout 110 python3 benchmarks/results/session14/step2.py based-360m:1:c transformer-360m:1:c 2>&1 | grep '"step"\|Error'
