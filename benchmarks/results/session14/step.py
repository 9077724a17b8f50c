"""Session 14: one model's graphed decode step at one batch, the steps in the given order in one process, as
``session13/order.py`` (``c`` compiled, ``e`` eager), plus ``t``: a trivial CUDA graph captured and replayed first
(does any earlier capture slow the compiled step?). Added after call 7 for the next session: ``m`` a graph of one
cuBLAS matmul of the model's width, ``g`` a graph of one launch of the batch-1 GEMV (a Triton kernel launched with
PDL), each captured and replayed once: which part of an eager step's capture (``xc``: 0.664 against 0.579 ms) slows
the compiled step? (While this script was written the batch-1 step also fused the MLP's norm and activation into
its GEMVs; that fusion was slower and was removed before session 14 ended.)

    PYTHONPATH=$PWD python3 benchmarks/results/session14/step.py MODEL BATCH ORDER
"""

import json
import sys

import torch

from mixerzoo import bench

name, batch, order = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ceil = bench.Ceilings(4.25e12, 756e12)  # the floors' ceilings as measured in earlier runs (only the ratio column)
model = bench._build(name, torch.bfloat16)
for what in order:
    if what in "tmg":
        a = torch.zeros(1024, device="cuda")
        x = torch.randn(128 if what == "m" else 1, 1024, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(3072, 1024, device="cuda", dtype=torch.bfloat16)
        if what == "g":  # compile and load the GEMV outside the capture
            torch.ops.mixerzoo.decode_linear(x, w, None)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            if what == "t":
                a += 1
            elif what == "m":
                x @ w.t()
            else:
                torch.ops.mixerzoo.decode_linear(x, w, None)
        graph.replay()
        torch.cuda.synchronize()
        continue
    row = bench.bench_generate(name, batch, 1024, 128, ceil, model=model, compile_step=what == "c")
    row["order"] = what
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
