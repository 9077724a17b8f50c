# Session 12, call 2: the GPU tests of the conv and window kernels (tanh SiLU, [16, 128] tiles, PDL steps), then the
# conv benchmark of record and the window decode table. Run from the snapshot root: bash benchmarks/results/session12/call2.sh
set -x
export PYTHONPATH=$PWD MIXERZOO_GPU_TESTS=1
nvidia-smi --query-gpu=name,driver_version --format=csv
timeout 220 python3 -m pytest -m gpu -n 4 -q -p no:cacheprovider tests/test_short_conv_triton.py tests/test_sliding_window_triton.py 2>&1 | tail -15
timeout 200 python3 benchmarks/short_conv.py --out $OUT/conv --no-compiled --pin-cpu 5 2>&1 | tail -5
timeout 110 python3 benchmarks/sliding_window.py --out $OUT/sw --decode-only --decode-B 1,16,64,256 --budget-s 60 2>&1 | tail -5
