# Session 12, call 7: the compiled, graphed prefill (4,096 tokens) of Based-360M and Transformer-360M at batch 1 and 4
# (default mode) and at batch 1 with max-autotune-no-cudagraphs. bash benchmarks/results/session12/call7.sh
export PYTHONPATH=$PWD
for args in "based-360m 1 default" "transformer-360m 1 default" "based-360m 4 default" "transformer-360m 4 default" \
            "based-360m 1 max-autotune-no-cudagraphs" "transformer-360m 1 max-autotune-no-cudagraphs"; do
  echo "== $args"
  timeout 150 python3 benchmarks/results/session12/prefill_modes.py $args 2>&1 | grep -v Warning | tail -1
done
