"""Session 11: the sliding-window forward's variants at the W=128 cells (and W=64 for regressions), one process, one
GPU, alternated over rounds. Each variant launches ``sliding_window_fwd_kernel`` with the default plan's grid and
keywords plus its overrides (FOLD: the scale in the exponent's FFMA; ONE_LOOP: one pipelined loop for both kinds of
band; GEN_STAGES: the general band's loop stages (1: not pipelined, no shared memory of its own); BN and ALIGN: key blocks and the aligned path; num_warps / num_stages / maxnreg; call 2 also timed LAZY, a
stale row maximum, and UNROLL, the aligned loops unrolled: both slower, removed; calls 3–4 ran at f29b5db / 579a383
with ONE_LOOP, since removed; call 6 times MERGE, fewer aligned loops), is
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
ONE = dict(FOLD=True, ONE_LOOP=True)
V64 = {  # call 6: the new defaults (FOLD, 80 registers, 3 stages, GEN_STAGES=1) and fewer aligned loops
    "default": {},
    "MERGE1": dict(MERGE=1),
    "MERGE2": dict(MERGE=2),
    "MERGE3": dict(MERGE=3),
    "MERGE2 s2": dict(MERGE=2, num_stages=2),
    "MERGE3 s2": dict(MERGE=3, num_stages=2),
}
V128 = {
    "default": {},
    "MERGE1": dict(MERGE=1),
    "MERGE2": dict(MERGE=2),
    "MERGE3": dict(MERGE=3),
    "MERGE3 s3": dict(MERGE=3, num_stages=3),
}
CELLS = [(64, 128, 8192), (64, 128, 16384), (128, 128, 8192), (128, 128, 16384)]


def reference(q, k, v, W):
    L = q.shape[1]
    i = torch.arange(L, device=q.device)
    keep = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - W)
    qf, kf, vf = (t.float().transpose(1, 2) for t in (q, k, v))
    return torch.nn.functional.scaled_dot_product_attention(qf, kf, vf, attn_mask=keep).transpose(1, 2)


def launcher(q, k, v, W, over):
    grid, kw = T._fwd_plan(q, k, v, W)
    over = dict(over)
    if "BN" in over or "ALIGN" in over:  # the plan's block counts for this BN, aligned whenever the shapes allow
        BM, BN, align = kw["BM"], over.pop("BN", kw["BN"]), over.pop("ALIGN", False)
        Lq, Lk = q.shape[1], k.shape[1]
        aligned = align and (Lk - Lq) % BN == 0 and BM % BN == 0
        kw.update(BN=BN, NB=T.cdiv(min(BM + W - 1, Lk), BN), NL=T.cdiv(W - 1, BN) if aligned else 0,
                  NU=max(0, (W - BM) // BN) if aligned else 0, DIAG_MASK=2 if aligned and W >= BM else 3)  # fmt: skip
    kw = {"FOLD": True, **kw, **over}
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
    for _ in range(ROUNDS):
        for n, fn in fns.items():
            times[n].append(do_bench(fn, warmup=25, rep=100))
    base = min(times["default" if "default" in times else "base"])
    for n, ts in times.items():
        t = min(ts)
        print(
            f"d={d:3d} W={W:3d} L={L:5d} {n:20s} {' '.join(f'{x:.4f}' for x in ts)} ms  best {t:.4f}  "
            f"{t / floor:.2f}x floor  {t / base:.3f}x base",
            flush=True,
        )
        results.append(dict(d=d, W=W, L=L, variant=n, ms=ts, floor_ms=floor))
json.dump(results, open(sys.argv[2] if len(sys.argv) > 2 else "sw_fwd_variants.json", "w"), indent=1)
