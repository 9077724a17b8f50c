"""Session 15, for the next device session: which capture before it slows a compiled, graphed decode step (the order
effect)? Each letter of ORDER, in one process:

- ``c``: the model's compiled step at BATCH, timed (``bench.bench_generate``, 128 new tokens);
- ``z``: a CUDA graph of ``torch.zeros`` (a memset node) and then one batch-1 GEMV launched with PDL on it;
- ``a``: a graph of an aten elementwise kernel (no PDL) and then the GEMV;
- ``m``: a graph of one cuBLAS matmul (one warm-up matmul outside the capture first; session 15's ``mc`` probe of
  ``session14/step.py`` died without it) and then the GEMV;
- ``g``: a graph of the GEMV alone (session 15, call 1: no effect, 0.559 against 0.557 ms).

Each graph is captured, replayed once and kept alive (as a model's graph is). Session 14: the capture of the eager
step, never replayed, is enough (0.579 → 0.664 ms); the eager step's graph holds aten kernels, memsets, cuBLAS-free
GEMVs and the mixers' PDL kernels, so these letters take it apart.

    PYTHONPATH=$PWD python3 benchmarks/results/session15/probe.py MODEL BATCH ORDER    # e.g. based-360m 1 zc
"""

import json
import sys

import torch

from mixerzoo import bench

name, batch, order = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ceil = bench.Ceilings(4.25e12, 756e12)  # the floors' ceilings as measured in earlier runs (only the ratio column)
model = bench._build(name, torch.bfloat16)
kept = []  # the probes' graphs stay alive, as a model's captured step does
for what in order:
    if what == "c":
        row = bench.bench_generate(name, batch, 1024, 128, ceil, model=model, compile_step=True)
        row["order"] = order
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        continue
    x = torch.randn(1, 1024, device="cuda", dtype=torch.bfloat16)
    xm = torch.randn(128, 1024, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(3072, 1024, device="cuda", dtype=torch.bfloat16)
    torch.ops.mixerzoo.decode_linear(x, w, None)  # compile and load the GEMV outside the capture
    xm @ w.t()  # and cuBLAS's handle and workspace
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        if what == "z":
            y = torch.zeros(1, 1024, device="cuda", dtype=torch.bfloat16)  # a memset node, no kernel
        elif what == "a":
            y = x * 2.0
        elif what == "m":
            y = (xm @ w.t())[:1, :1024]
        else:
            y = x
        torch.ops.mixerzoo.decode_linear(y, w, None)
    graph.replay()
    torch.cuda.synchronize()
    kept.append(graph)
    print(f"captured and replayed probe {what!r}", flush=True)
