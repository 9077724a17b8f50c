"""Session 14: graphed decode steps of several models in one process, in the given order, each ``MODEL:BATCH:STEP``
(``c`` compiled, ``e`` eager): does another model's compiled capture slow a compiled step as an eager one does?

    PYTHONPATH=$PWD python3 benchmarks/results/session14/step2.py based-360m:1:c transformer-360m:1:c
"""

import json
import sys

import torch

from mixerzoo import bench

ceil = bench.Ceilings(4.25e12, 756e12)  # the floors' ceilings as measured in earlier runs (only the ratio column)
models = {}
for item in sys.argv[1:]:
    name, batch, what = item.split(":")
    model = models.setdefault(name, bench._build(name, torch.bfloat16))
    row = bench.bench_generate(name, int(batch), 1024, 128, ceil, model=model, compile_step=what == "c")
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
