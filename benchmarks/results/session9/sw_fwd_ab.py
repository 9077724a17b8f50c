"""Sliding-window forward (and fwd+bwd) ms at the benchmark's eight prefill cells (B=4, H=16, bf16, d ∈ {64, 128},
W ∈ {64, 128}, L ∈ {8192, 16384}) with whatever ``mixerzoo`` is first on the path: session 9 runs it from two trees
alternately (before and after the forward's per-block masks, ``call5.sh``) to compare them on one GPU in one call.
Prints one line per cell: fwd ms, fwd+bwd ms (``triton.testing.do_bench`` medians) and fwd over the memory floor
(q, k, v, o bytes over 4.227 TB/s, call 4's copy bandwidth)."""

import sys

import torch
from triton.testing import do_bench

from mixerzoo.kernels.sliding_window import sliding_window_attention

tag = sys.argv[1] if len(sys.argv) > 1 else ""
B, H, BW = 4, 16, 4.227e12


def cell(d: int, W: int, L: int) -> None:
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v, do = (torch.randn(B, L, H, d, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(4))
    t_f = do_bench(lambda: sliding_window_attention(q, k, v, W, backend="triton"), warmup=25, rep=100)
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    t_fb = do_bench(
        lambda: torch.autograd.grad(sliding_window_attention(*leaves, W, backend="triton"), leaves, do),
        warmup=25, rep=100,
    )  # fmt: skip
    floor = 4 * B * L * H * d * 2 / BW * 1e3
    print(f"{tag} d={d:3d} W={W:3d} L={L:5d} fwd {t_f:.3f} ms ({t_f / floor:.2f}x floor)  fwd+bwd {t_fb:.3f} ms",
          flush=True)  # fmt: skip


for d in (64, 128):
    for W in (64, 128):
        for L in (8192, 16384):
            cell(d, W, L)
