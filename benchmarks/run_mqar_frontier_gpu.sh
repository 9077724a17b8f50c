#!/usr/bin/env bash
# One device call: the MQAR state-size frontier (ablations/state_size_frontier.py) at --scale medium on one GPU.
# Resumable across calls: carry `mqar_db` (the database a previous call brought back) and finished runs are skipped.
# Usage (device tool, carry=["mqar_db"] when resuming):
#   MPS=1 WORKERS=32 SWEEP_TIMEOUT=420 bash benchmarks/run_mqar_frontier_gpu.sh
# Brings back $OUT/frontier_medium.sqlite (a consistent copy of the database) and $OUT/mqar_frontier.log;
# the table and plots are made from the database with `mixerzoo report` on any machine.
set -o pipefail
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0 MIXERZOO_DATA_CACHE=/tmp/mqar_cache PYTHONPATH=$PWD
OUT=${OUT:-/tmp/mqar_out}
mkdir -p "$OUT" mqar_db
DB=mqar_db/frontier_medium.sqlite
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
t0=$(date +%s)
# MPS=1: one MPS server for all worker processes, so the small kernels of many runs share the GPU concurrently
# instead of time-slicing between contexts; falls back to plain contexts if it cannot start.
if [ "${MPS:-0}" = "1" ]; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps_pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps_log
  mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
  if nvidia-cuda-mps-control -d && timeout 60 python3 -c "import torch; print('MPS ok', (torch.ones(4, device='cuda') * 2).sum().item())"; then
    echo "MPS on"
  else
    echo quit | nvidia-cuda-mps-control; unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY; echo "MPS off"
  fi
fi
# Draw the paper's segments once (about 30 s) so the workers read them from the cache instead of each drawing them.
python3 -c "from mixerzoo.tasks.mqar import MQARTask; MQARTask().build()" || exit 1
echo "data ready ($(( $(date +%s) - t0 )) s)"
# SIGTERM at the timeout: the sweep finishes no half run and loses no finished one; the next call resumes.
timeout -s TERM "${SWEEP_TIMEOUT:-420}" python3 ablations/state_size_frontier.py --scale medium --db "$DB" \
  --workers "${WORKERS:-12}" --no-report --no-progress 2>&1 | grep -v "^DEBUG" | tee "$OUT/mqar_frontier.log" | tail -15
echo "sweep rc=$? ($(( $(date +%s) - t0 )) s)"
python3 - "$DB" "$OUT/frontier_medium.sqlite" <<'PY'
import sqlite3, sys
src, dst = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
src.backup(dst)
rows = dst.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
print("runs by status:", rows)
for row in dst.execute("SELECT spec, d_model, lr, accuracy, wall_time, json_extract(metrics, '$.epochs'), substr(error, -300) "
                       "FROM runs ORDER BY finished_at"):
    print(*row)
PY
