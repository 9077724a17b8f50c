"""Session 13: does a model's compiled batch-1 step time depend on what ran before it in the process? Call 1 timed
Based-360M's compiled step alone in a fresh process (``pdl_step.py``, 0.572 ms); call 3's generation table, where the
eager step of the same model ran first, 0.655 ms. Here one process and one model, the steps in the given order
(``c`` compiled, ``e`` eager, ``g`` a ``gc.collect()`` and ``torch.cuda.empty_cache()``, ``n`` eight tokens of
``model.generate`` without a CUDA graph and without compiling), e.g. ``cec``.

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
    if what == "n":
        model.generate(torch.randint(0, model.vocab_size, (1, 16), device="cuda"), 8, cuda_graph=False)
        continue
    row = bench.bench_generate(name, 1, 1024, 128, ceil, model=model, compile_step=what == "c")
    row["allocated_gb"] = torch.cuda.memory_allocated() / 1e9
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
