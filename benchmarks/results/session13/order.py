"""Session 13: does a model's compiled batch-1 step time depend on what ran before it in the process? Call 1 timed
Based-360M's compiled step alone in a fresh process (``pdl_step.py``, 0.572 ms); call 3's generation table, where the
eager step of the same model ran first, 0.655 ms. Here one process and one model, the steps in the given order
(``c`` compiled, ``e`` eager, ``g`` a ``gc.collect()`` and ``torch.cuda.empty_cache()``, ``n`` eight tokens of
``model.generate`` without a CUDA graph and without compiling), e.g. ``cec``. Added after call 8 for the next
session: ``N`` as many eager tokens as a timed row (128 after a 1,024-token prompt) without a graph; ``x`` the eager
step captured in a graph (its warm-up steps run) but never replayed; ``f`` / ``F`` the compiled / eager row with every
launch on a fresh CUDA stream.

    PYTHONPATH=$PWD python3 benchmarks/results/session13/order.py [MODEL [ORDER]]
"""

import gc
import json
import sys

import torch

from mixerzoo import bench

name = sys.argv[1] if len(sys.argv) > 1 else "based-360m"
ceil = bench.Ceilings(4.25e12, 756e12)  # the floors' ceilings as measured in earlier runs (only the ratio column)
model = bench._build(name, torch.bfloat16)
for what in sys.argv[2] if len(sys.argv) > 2 else "cec":
    if what == "g":
        gc.collect()
        torch.cuda.empty_cache()
        continue
    if what in "nN":
        prompt_len, new = (16, 8) if what == "n" else (1024, 128)
        model.generate(torch.randint(0, model.vocab_size, (1, prompt_len), device="cuda"), new, cuda_graph=False)
        continue
    if what == "x":
        _, states = model.prefill(torch.randint(0, model.vocab_size, (1, 1024), device="cuda"), capacity=1152)
        model._graphed_step(states, 1, False)
        torch.cuda.synchronize()
        continue
    with torch.cuda.stream(torch.cuda.Stream() if what in "fF" else torch.cuda.current_stream()):
        row = bench.bench_generate(name, 1, 1024, 128, ceil, model=model, compile_step=what in "cf")
    row["order"] = what
    row["allocated_gb"] = torch.cuda.memory_allocated() / 1e9
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
