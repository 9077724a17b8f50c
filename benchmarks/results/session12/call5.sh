# Session 12, call 5: the compiled, graphed decode step of Based-360M (batch 1, 128) and Transformer-360M (batch 1)
# with and without programmatic dependent launch. bash benchmarks/results/session12/call5.sh
export PYTHONPATH=$PWD
for args in "based-360m 1 0 0" "based-360m 1 0 1" "based-360m 1 1 1" "based-360m 128 0 0" "based-360m 128 0 1" \
            "based-360m 128 1 1" "transformer-360m 1 0 0" "transformer-360m 1 1 1"; do
  echo "== $args"
  timeout 66 python3 benchmarks/results/session12/pdl_step.py $args 2>&1 | grep -v Warning | tail -3
done
