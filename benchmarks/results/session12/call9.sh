# Session 12, call 9, NOT RUN (too little device time was left to start a machine): the batch-1 decode GEMV
# (mixerzoo.kernels.decode_linear, MIXERZOO_DECODE_GEMV=1) on the GPU: its tests, then the compiled, graphed Based-360M step at batch 1. bash benchmarks/results/session12/call9.sh
export PYTHONPATH=$PWD MIXERZOO_GPU_TESTS=1 MIXERZOO_DECODE_GEMV=1
timeout 75 python3 -m pytest -m gpu -n 4 -q -p no:cacheprovider tests/test_decode_linear.py 2>&1 | tail -4
timeout 45 python3 benchmarks/results/session12/pdl_step.py based-360m 1 1 1 2>&1 | grep -v Warning | tail -1
