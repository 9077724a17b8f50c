"""Session 13: which kernels of Based-360M's compiled batch-1 step get slower once the eager step has run in the
process (call 5: 0.571 ms compiled first, 0.653 ms after the eager step, also after gc.collect()). Profiles the
compiled step, then the eager one, then the compiled one again (``decode_profile.profile_decode``), and prints the
kernels whose time per step changed by more than 2 µs.

    PYTHONPATH=$PWD python3 benchmarks/results/session13/order_profile.py
"""

import json
import os
import sys

import torch

sys.path.insert(0, "benchmarks")
from decode_profile import graph_kernel_us, profile_decode  # noqa: E402

from mixerzoo import bench  # noqa: E402

ceil = bench.Ceilings(4.25e12, 756e12)
us = graph_kernel_us()
model = bench._build("based-360m", torch.bfloat16)
rows = [profile_decode(model, "based-360m", 1, 1024, 60, step, ceil, us) for step in (True, False, True)]
first, last = ({r["short"]: r["ms"] for r in rows[i]["top"]} for i in (0, 2))
print("\n| kernel | compiled first, ms | after eager, ms |\n|---|---:|---:|")
for k in sorted(set(first) | set(last), key=lambda k: -abs(last.get(k, 0) - first.get(k, 0))):
    if abs(last.get(k, 0) - first.get(k, 0)) > 2e-3:
        print(f"DIFF | `{k}` | {first.get(k, 0):.4f} | {last.get(k, 0):.4f} |")
if os.environ.get("OUT"):
    with open(f"{os.environ['OUT']}/order_profile.json", "w") as f:
        json.dump(rows, f, indent=1)
