"""What a plain copy reaches at the decode steps' sizes: ``dst.copy_(src)`` moving the same bytes (half read, half
written) as the convolution step at B = 64 / 256 (3.67 / 14.68 MB) and the window step at B=64 (34.6 MB), timed as
the steps are (``_common.graph_time_us``: CUDA-graph replays over 20 rotating buffer sets, so caches are cold), as a
fraction of the 1 GiB copy bandwidth. Written in session 10: ``python3 benchmarks/results/session10/graph_copy_floor.py``."""

import sys

import torch

sys.path.insert(0, "benchmarks")
from _common import copy_bandwidth, graph_time_us  # noqa: E402

bw = copy_bandwidth()
print(f"copy bandwidth (1 GiB) {bw:.0f} GB/s")
for label, total in (("conv step B=64", 3_670_000), ("conv step B=256", 14_680_000), ("window step B=64", 34_600_000)):
    n = total // 2 // 2  # bf16 elements read (and as many written)
    sets = [(torch.randn(n, device="cuda", dtype=torch.bfloat16), torch.empty(n, device="cuda", dtype=torch.bfloat16))
            for _ in range(20)]  # fmt: skip
    us = graph_time_us(lambda i, sets=sets: sets[i][1].copy_(sets[i][0]), len(sets))
    print(
        f"{label:18s} {total / 1e6:6.2f} MB: copy {us:6.2f} µs per step = {total / us / 1e3 / bw:.0%} of copy bandwidth"
    )
