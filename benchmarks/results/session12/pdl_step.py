"""Session 12: the whole graphed decode step with programmatic dependent launch, one configuration per process
(inductor reads its PDL switch when it compiles): ``inductor_pdl`` (``torch._inductor.config.triton.enable_pdl``:
inductor's fused kernels wait for the kernel before them at their first access and let the next one launch after
their last load) and ``step_pdl`` (``mixerzoo.kernels._launch.STEP_PDL``, the window / conv step kernels).

    PYTHONPATH=$PWD python3 benchmarks/results/session12/pdl_step.py MODEL BATCH INDUCTOR_PDL STEP_PDL
"""

import json
import sys

import torch

from mixerzoo import bench
from mixerzoo.kernels import _launch

name, batch, inductor_pdl, step_pdl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cfg = torch._inductor.config.triton
print(f"torch {torch.__version__}; inductor has enable_pdl: {hasattr(cfg, 'enable_pdl')}", flush=True)
cfg.enable_pdl = bool(inductor_pdl)
_launch.STEP_PDL = step_pdl
ceil = bench.Ceilings(4.25e12, 756e12)  # the floors' ceilings as measured in earlier runs (only the ratio column)
row = bench.bench_generate(name, batch, 1024, 129, ceil, compile_step=True)
row.update(inductor_pdl=inductor_pdl, step_pdl=step_pdl)
print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
