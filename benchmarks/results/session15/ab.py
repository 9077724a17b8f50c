"""Session 15: Transformer-360M's compiled, graphed step at one batch and the table's 1,024 new tokens, alone in its
process, with the attention step's early reads on or off, optionally after allocating and freeing a large buffer
(does the caching allocator's state explain the batch-128 row's 7.27 ms in call 4, against 6.18 in session 14?).

    PYTHONPATH=$PWD python3 benchmarks/results/session15/ab.py MODEL BATCH NEW EARLY(0|1) BIG_GB
"""

import json
import sys

import torch

from mixerzoo import bench
from mixerzoo.mixers import attention

name, batch, new, early, big_gb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if not early:
    step = attention.sliding_window_attention_step
    attention.sliding_window_attention_step = lambda *a, **kw: step(*a, **{**kw, "early_reads": False})
if big_gb:
    x = torch.empty(big_gb << 30, dtype=torch.uint8, device="cuda")
    del x
ceil = bench.Ceilings(4.25e12, 756e12)  # the floors' ceilings as measured in earlier runs (only the ratio column)
row = bench.bench_generate(name, batch, 1024, new, ceil, compile_step=True)
row.update(early=early, big_gb=big_gb)
print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
