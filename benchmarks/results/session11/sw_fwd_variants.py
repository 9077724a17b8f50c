"""Session 11: the sliding-window forward's variants at the W=128 cells (and W=64 for regressions), one process, one
GPU, alternated over rounds. Each variant launches ``sliding_window_fwd_kernel`` with the default plan's grid and
keywords plus its overrides (FOLD: the scale in the exponent's FFMA; LAZY: the accumulator rescaled only when some
row's maximum grew by more than 2^LAZY; UNROLL: the aligned loops unrolled; num_warps / num_stages / maxnreg), is
checked against an fp32 SDPA reference with the band mask, then timed with ``do_bench`` (cold L2, medians).

    python3 sw_fwd_variants.py [rounds]
"""

import json
import sys

import torch
from triton.testing import do_bench

from mixerzoo.kernels.sliding_window import triton_ops as T

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
B, H, BW = 4, 16, 4.25e12
V64 = {
    "base": {},
    "FOLD": dict(FOLD=True),
    "FOLD LAZY8": dict(FOLD=True, LAZY=8),
    "FOLD UNROLL": dict(FOLD=True, UNROLL=True),
    "FOLD LAZY8 UNROLL": dict(FOLD=True, LAZY=8, UNROLL=True),
    "FOLD s2": dict(FOLD=True, num_stages=2),
    "FOLD s2 r96": dict(FOLD=True, num_stages=2, maxnreg=96),
    "FOLD LAZY8 s2 r96": dict(FOLD=True, LAZY=8, num_stages=2, maxnreg=96),
    "FOLD s4": dict(FOLD=True, num_stages=4),
}
V128 = {
    "base": {},
    "FOLD": dict(FOLD=True),
    "FOLD LAZY8": dict(FOLD=True, LAZY=8),
    "FOLD UNROLL": dict(FOLD=True, UNROLL=True),
    "FOLD w8 s2": dict(FOLD=True, num_warps=8, num_stages=2),
    "FOLD w8 s3": dict(FOLD=True, num_warps=8, num_stages=3),
    "FOLD LAZY8 w8 s2": dict(FOLD=True, LAZY=8, num_warps=8, num_stages=2),
    "FOLD s2": dict(FOLD=True, num_stages=2),
}
CELLS = [(64, 128, 8192), (64, 128, 16384), (128, 128, 8192), (128, 128, 16384), (64, 64, 16384), (128, 64, 16384)]


def reference(q, k, v, W):
    L = q.shape[1]
    i = torch.arange(L, device=q.device)
    keep = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - W)
    qf, kf, vf = (t.float().transpose(1, 2) for t in (q, k, v))
    return torch.nn.functional.scaled_dot_product_attention(qf, kf, vf, attn_mask=keep).transpose(1, 2)


def launcher(q, k, v, W, over):
    grid, kw = T._fwd_plan(q, k, v, W)
    kw = {**kw, **over}
    o = torch.empty_like(q)
    lse = torch.empty(q.shape[0], H, q.shape[1], device=q.device, dtype=torch.float32)
    scale = q.shape[-1] ** -0.5
    args = (q, k, v, o, lse, q.shape[1], k.shape[1], W, scale * T.LOG2E, *q.stride()[:3], *k.stride()[:3],
            *v.stride()[:3])  # fmt: skip

    def fn():
        T.sliding_window_fwd_kernel[grid](*args, **kw)

    return fn, o


results = []
for d, W, L in CELLS:
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(B, L, H, d, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(3))
    ref = reference(q[:1, :2048], k[:1, :2048], v[:1, :2048], W)
    floor = 4 * B * L * H * d * 2 / BW * 1e3
    variants = V64 if d == 64 else V128
    fns = {}
    for name, over in variants.items():
        small = [t[:1, :2048].contiguous() for t in (q, k, v)]
        fn_small, o_small = launcher(*small, W, over)
        fn_small()
        torch.cuda.synchronize()
        err = (o_small.float() - ref).abs().max().item()
        fns[name] = launcher(q, k, v, W, over)[0]
        fns[name]()
        print(f"d={d} W={W} L={L} {name:20s} max|err| vs fp32 {err:.2e}", flush=True)
        results.append(dict(d=d, W=W, L=L, variant=name, err=err))
    times = {n: [] for n in fns}
    for r in range(ROUNDS):
        for n, fn in fns.items():
            times[n].append(do_bench(fn, warmup=25, rep=100))
    base = min(times["base"])
    for n, ts in times.items():
        t = min(ts)
        print(f"d={d:3d} W={W:3d} L={L:5d} {n:20s} {' '.join(f'{x:.4f}' for x in ts)} ms  best {t:.4f}  "
              f"{t / floor:.2f}x floor  {t / base:.3f}x base", flush=True)
        results.append(dict(d=d, W=W, L=L, variant=n, ms=ts, floor_ms=floor))
json.dump(results, open(sys.argv[2] if len(sys.argv) > 2 else "sw_fwd_variants.json", "w"), indent=1)
