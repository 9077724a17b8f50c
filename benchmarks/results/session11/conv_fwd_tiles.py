"""Session 11: the gated short convolution's forward tiles at 4×4096×1024 (the shape below 80% of copy bandwidth)
and two larger shapes, one process. Each tile launches ``gated_short_conv_fwd_kernel`` with the default launch's
arguments and its own ``BT, BC, NT, num_warps``; checked against the default's output, then timed two ways: ``do_bench``
(cold L2, as the benchmark) and a CUDA graph of 20 launches over 20 buffer sets (≥ 2 GB between reuses: cold). Beside
them, ``torch.add(u, gate)`` over the same bytes, timed the same two ways.

    python3 conv_fwd_tiles.py
"""

import torch
from triton.testing import do_bench

from mixerzoo.kernels.short_conv import triton_ops as T

BW = 4.228e12
TILES = [(32, 256, 1, 8), (32, 256, 1, 4), (16, 256, 1, 4), (16, 256, 1, 8), (32, 128, 1, 4), (16, 128, 1, 4),
         (64, 256, 1, 8), (8, 512, 1, 4), (16, 512, 1, 8), (32, 256, 2, 8), (32, 512, 1, 8)]  # fmt: skip
SHAPES = [(4, 4096, 1024), (4, 16384, 1024), (4, 4096, 4096)]


def launch(u, g, w, y, ht, tile):
    B, L, C = u.shape
    BT, BC, NT, nw = tile
    grid = (T.cdiv(C, BC), T.cdiv(L, BT * NT), B)
    T.gated_short_conv_fwd_kernel[grid](u, g, w, u, u, y, ht, L, C, L * C, C, L * C, C, K=3, BT=BT, BC=BC, NT=NT,
                                        HAS_BIAS=False, HAS_H0=False, FAST=True, num_warps=nw)  # fmt: skip


def graph_time(fn_i, n=20):
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        for i in range(n):
            fn_i(i)
    torch.cuda.synchronize()
    gr = torch.cuda.CUDAGraph()
    with torch.cuda.graph(gr):
        for i in range(n):
            fn_i(i)
    for _ in range(3):
        gr.replay()
    torch.cuda.synchronize()
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
    ts = []
    for _ in range(10):
        ev[0].record()
        gr.replay()
        ev[1].record()
        torch.cuda.synchronize()
        ts.append(ev[0].elapsed_time(ev[1]) / n)
    ts.sort()
    return ts[len(ts) // 2]


def run_shape(B: int, L: int, C: int) -> None:
    nbytes = 3 * B * L * C * 2
    floor = nbytes / BW * 1e3
    sets = max(2, min(20, int(2.5e9 // nbytes) + 1))
    bufs = [
        (torch.randn(B, L, C, device="cuda", dtype=torch.bfloat16), torch.randn(B, L, C, device="cuda", dtype=torch.bfloat16))
        for _ in range(sets)
    ]  # fmt: skip
    w = torch.randn(C, 3, device="cuda", dtype=torch.bfloat16)
    ys = [torch.empty(B, L, C, device="cuda", dtype=torch.bfloat16) for _ in range(sets)]
    ht = torch.empty(B, 2, C, device="cuda", dtype=torch.bfloat16)
    launch(*bufs[0], w, ys[0], ht, TILES[0])
    ref = ys[0].clone()
    t_add = do_bench(lambda: torch.add(*bufs[0], out=ys[0]))
    g_add = graph_time(lambda i: torch.add(*bufs[i % sets], out=ys[i % sets]))
    print(
        f"{B}x{L}x{C}: floor {floor * 1e3:.1f} us; u+gate do_bench {t_add * 1e3:.1f} us ({floor / t_add:.0%}), "
        f"graph {g_add * 1e3:.1f} us ({floor / g_add:.0%}); {sets} buffer sets",
        flush=True,
    )
    for r in range(2):
        for tile in TILES:
            if tile[1] > C:
                continue
            launch(*bufs[0], w, ys[0], ht, tile)
            torch.cuda.synchronize()
            same = torch.equal(ys[0], ref)
            t = do_bench(lambda tile=tile: launch(*bufs[0], w, ys[0], ht, tile))
            tg = graph_time(lambda i, tile=tile: launch(*bufs[i % sets], w, ys[i % sets], ht, tile))
            print(
                f"  round {r} BT={tile[0]:3d} BC={tile[1]:4d} NT={tile[2]} w{tile[3]}: do_bench {t * 1e3:6.1f} us "
                f"({floor / t:.0%})  graph {tg * 1e3:6.1f} us ({floor / tg:.0%})  equal {same}",
                flush=True,
            )


for B, L, C in SHAPES:
    run_shape(B, L, C)
    torch.cuda.empty_cache()
