"""Session 12: the compiled, graphed prefill of 4,096 tokens against its FLOP floor, one configuration per process:
the default inductor mode at batch 1 and 4, and ``max-autotune-no-cudagraphs`` (Triton GEMM templates, epilogue
fusion) at batch 1.

    PYTHONPATH=$PWD python3 benchmarks/results/session12/prefill_modes.py MODEL BATCH MODE
"""

import json
import sys

import torch

from mixerzoo import bench

name, batch, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ceil = bench.measure_ceilings()
row = bench.bench_prefill(name, batch, 4096, ceil, compile=True if mode == "default" else mode, cuda_graph=True)
row["matmul_tflops"] = ceil.matmul_flops_per_s / 1e12
print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
torch.cuda.synchronize()
