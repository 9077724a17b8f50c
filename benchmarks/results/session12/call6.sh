# Session 12, call 6: the model GPU tests with the compiled step's inductor PDL on (the new default), then the
# compiled, graphed Based-360M step at batch 1 and 128 with the library's defaults. bash benchmarks/results/session12/call6.sh
export PYTHONPATH=$PWD MIXERZOO_GPU_TESTS=1
timeout 300 python3 -m pytest -m gpu -n 4 -q -p no:cacheprovider tests/test_models.py 2>&1 | tail -6
for args in "based-360m 1 1 1" "based-360m 128 1 1"; do
  echo "== $args"
  timeout 66 python3 benchmarks/results/session12/pdl_step.py $args 2>&1 | grep -v Warning | tail -1
done
