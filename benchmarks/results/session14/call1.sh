# Session 14, call 1: session 13's planned first call (the order effect, session13/call9.sh: seven small processes)
# and every GPU test with the library's defaults (the batch-1 GEMV on).
# bash benchmarks/results/session14/call1.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MIXERZOO_GPU_TESTS=1
mkdir -p $OUT
nvidia-smi --query-gpu=name,driver_version --format=csv | tee $OUT/gpu.txt
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a $OUT/gpu.txt
bash benchmarks/results/session13/call9.sh 2>&1 | tee $OUT/order.log
timeout 330 python3 -m pytest -m gpu -n 4 -q -p no:cacheprovider tests/ 2>&1 | tail -30 | tee $OUT/gpu_tests.log
