# Session 13, call 1: the batch-1 decode GEMV (MIXERZOO_DECODE_GEMV=1) on the GPU: its tests, the compiled, graphed
# Based-360M step at batch 1 with it, the model GPU tests with it, then a profile of Based-360M's compiled step at
# batch 1 and 128 (what is left), then the Transformer's batch-1 step with it. bash benchmarks/results/session13/call1.sh
export PYTHONPATH=$PWD MIXERZOO_GPU_TESTS=1 MIXERZOO_DECODE_GEMV=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
echo "== GEMV GPU tests"
timeout 90 python3 -m pytest -m gpu -n 4 -q -p no:cacheprovider tests/test_decode_linear.py 2>&1 | tail -4
echo "== based-360m batch 1, GEMV on"
timeout 66 python3 benchmarks/results/session12/pdl_step.py based-360m 1 1 1 2>&1 | grep -v Warning | tail -1
echo "== model GPU tests, GEMV on"
timeout 200 python3 -m pytest -m gpu -n 4 -q -p no:cacheprovider tests/test_models.py 2>&1 | tail -4
echo "== profile"
timeout 150 python3 benchmarks/decode_profile.py --models based-360m --batch 1 128 --compile-step --out $OUT/profile 2>&1 | grep -v Warning | tail -80
echo "== transformer-360m batch 1, GEMV on"
timeout 60 python3 benchmarks/results/session12/pdl_step.py transformer-360m 1 1 1 2>&1 | grep -v Warning | tail -1
