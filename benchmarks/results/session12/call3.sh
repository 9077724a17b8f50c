# Session 12, call 3: the decode steps' PDL modes (0 off, 1 wait, 2 wait + early launch of the next kernel) at
# B = 1, 16, 64, 256, then the GPU tests of the conv and window kernels. bash benchmarks/results/session12/call3.sh
export PYTHONPATH=$PWD MIXERZOO_GPU_TESTS=1
timeout 150 python3 benchmarks/results/session12/call1.py 2 2>&1
timeout 250 python3 -m pytest -m gpu -n 4 -q -p no:cacheprovider tests/test_short_conv_triton.py tests/test_sliding_window_triton.py 2>&1 | tail -15
