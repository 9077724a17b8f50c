"""Gated short convolution on the GPU: mixerzoo's fused Triton kernel against F.conv1d + SiLU + gate.

Run (on a CUDA machine): ``python benchmarks/short_conv.py --out benchmarks/results``. Writes
``short_conv.json`` and ``short_conv.md`` (command, GPU, versions, do_bench medians, peers in the same run).

Bytes: forward reads u, gate and writes y (3·B·L·C elements); fwd+bwd adds reading u, gate, dy and writing
du, dgate (8 in all; weight/bias are negligible). GB/s = those bytes over the median time; the copy
bandwidth is measured in the same run. Decode: CUDA-graph replays over rotating states (≥ 384 MB).
Peers: eager ``F.conv1d`` (depthwise, channels-first transposes included) + SiLU + gate, and the same
function through ``torch.compile``.
"""

# ruff: noqa: B023  (the timed closures run inside the loop iteration that defines them)
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import (  # noqa: E402  (benchmarks/ is on sys.path)
    PIN_CPU_HELP,
    bench,
    copy_bandwidth,
    environment,
    graph_time_us,
    host_overhead_rows,
    pin_cpu,
    rel,
    warm_up,
)

from mixerzoo.kernels.short_conv import gated_short_conv  # noqa: E402
from mixerzoo.kernels.short_conv import triton_ops as T  # noqa: E402
from mixerzoo.kernels.short_conv.naive import gated_short_conv_reference  # noqa: E402
from mixerzoo.kernels.short_conv.triton_ops import _conv_at, _load_x  # noqa: E402

DT = torch.bfloat16


def conv1d_gate(u, gate, w, b):
    K = w.shape[1]
    x = F.conv1d(F.pad(u.transpose(1, 2), (K - 1, 0)), w.unsqueeze(1), b, groups=w.shape[0])  # [B, C, L]
    return F.silu(x).transpose(1, 2) * gate


# The forward of commit 5ec997c (v1: one [64, 128] tile per program, time blocks the fastest grid axis), kept
# here so that the before/after ratio is measured in the same run.
@triton.jit
def conv_fwd_kernel_v1(
    p_u, p_g, p_w, p_bias, p_h0, p_y, p_ht, L, C,
    K: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr,
):  # fmt: skip
    i_t, i_c, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_t = i_t * BT + tl.arange(0, BT)
    o_c = i_c * BC + tl.arange(0, BC)
    m_c = o_c < C
    m_tc = (o_t[:, None] < L) & m_c[None, :]
    if HAS_BIAS:
        b_bias = tl.load(p_bias + o_c, mask=m_c, other=0.0).to(tl.float32)
    else:
        b_bias = tl.zeros([BC], dtype=tl.float32)
    b_z = _conv_at(p_u, p_h0, p_w, i_b, o_t, o_c, m_c, L, C, L * C, C, b_bias, K, HAS_H0)  # u contiguous
    o_y = (i_b * L + o_t[:, None]).to(tl.int64) * C + o_c[None, :]
    b_g = tl.load(p_g + o_y, mask=m_tc, other=0.0).to(tl.float32)
    b_y = b_z * tl.sigmoid(b_z) * b_g
    tl.store(p_y + o_y, b_y.to(p_y.dtype.element_ty), mask=m_tc)
    if K > 1:
        if i_t == tl.num_programs(0) - 1:  # the final state: x rows L−K+1 … L−1 in u-index
            for j in tl.static_range(K - 1):
                o_r = tl.full([1], L - K + 1 + j, tl.int32)
                b_s = _load_x(p_u, p_h0, i_b, o_r, o_c, m_c, L, C, L * C, C, K, HAS_H0)
                o_s = (i_b * (K - 1) + j).to(tl.int64) * C + o_c
                tl.store(p_ht + o_s[None, :], b_s.to(p_ht.dtype.element_ty), mask=m_c[None, :])


# timed forward only: v1's backward is the library's; the others share ours or have none
FWD_ONLY = ("v1", "nograd", "custom_op", "add", "general")


def general_fwd(u, gate, w, b):
    """The library forward with ``FWD_FAST`` off: every tile masked (detached inputs: the bare launch)."""
    saved, T.FWD_FAST = T.FWD_FAST, False
    try:
        return T.gated_short_conv_triton(u.detach(), gate.detach(), w.detach(), b.detach())[0]
    finally:
        T.FWD_FAST = saved


def conv_fwd_v1(u, gate, w, b):
    B, L, C = u.shape
    K = w.shape[1]
    y, ht = torch.empty_like(u), u.new_empty(B, K - 1, C)
    BC = min(triton.next_power_of_2(C), 128)
    BT = max(8, min(64, 8192 // BC))
    conv_fwd_kernel_v1[(triton.cdiv(L, BT), triton.cdiv(C, BC), B)](
        u, gate, w, b, u, y, ht, L, C, K=K, BT=BT, BC=BC, HAS_BIAS=True, HAS_H0=False, num_warps=4
    )
    return y


FWD_SWEEP = [  # (BT, BC, NT, num_warps), tried with --sweep
    (64, 128, 1, 4),
    (32, 256, 1, 8),
    (32, 256, 4, 8),
    (16, 512, 4, 8),
    (64, 128, 4, 8),
    (16, 256, 4, 4),
    (16, 256, 1, 4),  # small shapes: more, shorter programs in the one wave
    (32, 128, 1, 4),
    # the 4×4096×1024 tail (offline sm_90, FAST, K=3): the default [32, 256] × 8 warps has 80 registers, so 3 CTAs
    # per SM: 2,048 programs in 5.2 waves of 396; [16, 256] × 8 warps has 58 (4 per SM): 4,096 in 7.8 waves of 528
    (16, 256, 1, 8),
]


def check_grads(K: int, tol: float = 2e-2) -> float:
    """fp64-oracle check of the backward with the current tiles (bf16, B=1, L=1500, C=4096, bias); worst rel err."""
    gen = torch.Generator(device="cuda").manual_seed(K)
    u, gate = (torch.randn(1, 1500, 4096, device="cuda", generator=gen).to(DT).requires_grad_() for _ in range(2))
    w = (torch.randn(4096, K, device="cuda", generator=gen) * K**-0.5).to(DT).requires_grad_()
    b = torch.randn(4096, device="cuda", generator=gen).to(DT).requires_grad_()
    y, _ = T.gated_short_conv_triton(u, gate, w, b)
    dy = torch.randn_like(y)
    grads = torch.autograd.grad(y, (u, gate, w, b), dy)
    y_ref, _ = gated_short_conv_reference(u, gate, w, b)
    grads_ref = torch.autograd.grad(y_ref, (u, gate, w, b), dy.double())
    worst = max([rel(y, y_ref)] + [rel(g_, r_) for g_, r_ in zip(grads, grads_ref)])
    if not worst <= tol:
        raise RuntimeError(f"backward tiles {T._tiles(4096, K)}: rel err {worst:.3g} vs fp64 > {tol}")
    return worst


def sweep(meta: dict, bw: float, shapes, bwd_sweep: dict) -> None:
    """Forward tiles of FWD_SWEEP at ``shapes`` (B, L, C, K), backward BT at the K of ``bwd_sweep``; each variant
    is checked against the fp64 oracle first."""
    log = []
    fwd_tiles, bwd_tiles = T._fwd_tiles, T._tiles
    try:
        for B, L, C, K in shapes:
            gen = torch.Generator(device="cuda").manual_seed(C)
            u, gate = (torch.randn(B, L, C, device="cuda", dtype=DT, generator=gen) for _ in range(2))
            w = (torch.randn(C, K, device="cuda", generator=gen) * K**-0.5).to(DT)
            b = torch.randn(C, device="cuda", generator=gen).to(DT)
            ref = gated_short_conv_reference(u[:1, :2048], gate[:1, :2048], w, b)[0]
            for BT, BC, NT, nw in FWD_SWEEP:
                cfg = dict(BT=BT, BC=BC, NT=NT, num_warps=nw)
                T._fwd_tiles = lambda C_, c=cfg: c
                row = dict(kind="fwd", B=B, L=L, C=C, K=K, cfg=cfg)
                try:
                    T.POISON_OUTPUTS = True
                    y = T.gated_short_conv_triton(u, gate, w, b)[0]
                    T.POISON_OUTPUTS = False
                    row["rel_vs_fp64"] = err = rel(y[:1, :2048], ref)
                    if not (err <= 2e-2 and torch.isfinite(y).all()):
                        raise RuntimeError(f"rel err {err:.3g} vs fp64 or unwritten outputs")
                    row["ms"] = ms = bench(lambda: T.gated_short_conv_triton(u, gate, w, b))
                    row["frac_copy_bw"] = 3 * u.numel() * 2 / (ms * 1e-3) / 1e9 / bw
                except Exception as e:
                    row["error"] = repr(e)[:300]
                log.append(row)
                print(json.dumps(row))
            T._fwd_tiles = fwd_tiles
        B, L, C = 4, 16384, 4096
        for K, bts in bwd_sweep.items():
            gen = torch.Generator(device="cuda").manual_seed(K)
            u, gate, dy = (torch.randn(B, L, C, device="cuda", dtype=DT, generator=gen) for _ in range(3))
            w = (torch.randn(C, K, device="cuda", generator=gen) * K**-0.5).to(DT)
            b = torch.randn(C, device="cuda", generator=gen).to(DT)
            for t in (u, gate, w, b):
                t.requires_grad_()
            for BT in bts:
                T._tiles = lambda C_, K_=3, bt=BT: (bt, 128, 4)
                row = dict(kind="fwdbwd", B=B, L=L, C=C, K=K, BT=BT)
                try:
                    row["rel_vs_fp64"] = check_grads(K)
                    row["ms"] = bench(lambda: torch.autograd.grad(T.gated_short_conv_triton(u, gate, w, b)[0],
                                                                  (u, gate, w, b), dy))  # fmt: skip
                except Exception as e:
                    row["error"] = repr(e)[:300]
                log.append(row)
                print(json.dumps(row))
    finally:
        T._fwd_tiles, T._tiles, T.POISON_OUTPUTS = fwd_tiles, bwd_tiles, False
    meta["sweep"] = log


def host_overhead(profile: bool = False, reps: int = 500, device: str = "cpu") -> list[dict]:
    """CPU microbenchmark of the host path of ``gated_short_conv(..., backend="triton")`` at the table's first shape
    (B=4, L=4096, C=1024, K=3, bias, bf16; u, gate, weight, bias require grad): every Triton launch a no-op, µs per call
    (``_common.host_overhead_rows``). ``fwd`` under no_grad; ``fwd (grad)`` on inputs that require grad (the table's
    ``ours fwd``); ``fwd+bwd`` = forward + ``autograd.grad``. Run: ``python benchmarks/short_conv.py --host-overhead
    [--host-profile]`` (no GPU). Two CPU artifacts at the table's shape: tensors of ≥ 32 MB are mmap'd and unmapped
    on every call (the CUDA caching allocator reuses its blocks), and the dweight/dbias reduction is real CPU work
    (~90 µs; a small GPU kernel there); the same rows at L=256 (2 MB tensors, heap-allocated) leave the Python path."""
    cases = []
    for B, L, C, K in ((4, 4096, 1024, 3), (4, 256, 1024, 3)):
        u, gate, dy = (torch.randn(B, L, C, device=device, dtype=DT) for _ in range(3))
        w, b = torch.randn(C, K, device=device, dtype=DT) * K**-0.5, torch.randn(C, device=device, dtype=DT)
        for t in (u, gate, w, b):
            t.requires_grad_()

        def fwd(u=u, gate=gate, w=w, b=b):
            with torch.no_grad():
                gated_short_conv(u, gate, w, b, backend="triton")

        def fwd_grad(u=u, gate=gate, w=w, b=b):
            gated_short_conv(u, gate, w, b, backend="triton")

        def fwd_bwd(u=u, gate=gate, w=w, b=b, dy=dy):
            torch.autograd.grad(gated_short_conv(u, gate, w, b, backend="triton"), (u, gate, w, b), dy)

        name = f"short_conv {B}x{L}x{C} K={K}"
        cases += [(f"{name} fwd", fwd), (f"{name} fwd (grad)", fwd_grad), (f"{name} fwd+bwd", fwd_bwd)]
    return host_overhead_rows(T, cases, reps, profile=cases[-1][0] if profile else None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--sweep", action="store_true", help="time the tiles of FWD_SWEEP / BWD_SWEEP first")
    ap.add_argument("--no-compiled", action="store_true", help="skip the torch.compile peer (its compile is slow)")
    ap.add_argument("--sweep-shapes", default="4x16384x4096x3,4x16384x1024x3", help="B x L x C x K, comma-separated")
    ap.add_argument("--sweep-bwd", default="3:16/32/64,4:16/32", help="K:BT/BT,... for the backward sweep")
    ap.add_argument("--host-overhead", action="store_true", help="CPU: time the Python path with no-op launches, exit")
    ap.add_argument("--host-profile", action="store_true", help="with --host-overhead: also a cProfile of fwd+bwd")
    ap.add_argument("--host-device", default="cpu", help="with --host-overhead: cpu, or meta (no memory, no compute)")
    ap.add_argument("--pin-cpu", type=int, default=None, help=PIN_CPU_HELP)
    args = ap.parse_args()
    if args.host_overhead:
        host_overhead(profile=args.host_profile, device=args.host_device)
        return
    pin_cpu(args.pin_cpu)
    os.makedirs(args.out, exist_ok=True)
    t_start = time.time()
    bw = copy_bandwidth()
    meta = environment(bw)
    meta["pinned_cpu"] = args.pin_cpu
    if args.sweep:
        shapes = [tuple(int(x) for x in sh.split("x")) for sh in args.sweep_shapes.split(",") if sh]
        bwd = {
            int(k): [int(b) for b in v.split("/")] for k, v in (e.split(":") for e in args.sweep_bwd.split(",") if e)
        }
        sweep(meta, bw, shapes, bwd)
    impls = {
        "mixerzoo_triton": lambda u, g, w, b: T.gated_short_conv_triton(u, g, w, b)[0],
        "v1": conv_fwd_v1,
        # the same kernel on inputs that need no grad: the gap to the row above is host-side autograd overhead
        "nograd": lambda u, g, w, b: T.gated_short_conv_triton(u.detach(), g.detach(), w.detach(), b.detach())[0],
        # the path of the previous commit (the custom op's dispatcher and autograd wrapper): host time before/after
        "custom_op": lambda u, g, w, b: torch.ops.mixerzoo.gated_short_conv_fwd(u, g, w, b, None)[0],
        "conv1d_eager": conv1d_gate,
        # not a peer: torch's own elementwise kernel over the same bytes (reads u and gate, writes one tensor), the
        # fraction of copy bandwidth a plain streaming kernel reaches at this size
        "add": lambda u, g, w, b: torch.add(u, g),
        "general": general_fwd,  # the forward with FWD_FAST off (every tile masked), forward only
    }
    if not args.no_compiled:
        impls["conv1d_compiled"] = torch.compile(conv1d_gate)
    rows = []
    for B, L, C, K in [
        (4, 4096, 1024, 3),
        (4, 16384, 1024, 3),
        (4, 4096, 4096, 3),
        (4, 16384, 4096, 3),
        (4, 16384, 4096, 4),
    ]:
        gen = torch.Generator(device="cuda").manual_seed(L + C)
        u, gate, dy = (torch.randn(B, L, C, device="cuda", dtype=DT, generator=gen) for _ in range(3))
        w = (torch.randn(C, K, device="cuda", generator=gen) * K**-0.5).to(DT)
        b = torch.randn(C, device="cuda", generator=gen).to(DT)
        for t in (u, gate, w, b):
            t.requires_grad_()
        n = B * L * C * 2
        row = dict(B=B, L=L, C=C, K=K, fwd_bytes=3 * n, fwdbwd_bytes=8 * n)
        if not rows:  # the table's first row: every implementation's fwd and fwd+bwd, 2 s each
            with torch.no_grad():
                warm_up([lambda f=f: f(u, gate, w, b) for f in impls.values()])
            warm_up([lambda: torch.autograd.grad(impls["mixerzoo_triton"](u, gate, w, b), (u, gate, w, b), dy)])
            meta["warm_up"] = (
                f"2 s of fwd of every implementation and 2 s of ours fwd+bwd at {B}x{L}x{C} K={K} before the first "
                "row; 2 s of the decode step before the decode table's first row"
            )
        with torch.no_grad():
            y_ours = impls["mixerzoo_triton"](u, gate, w, b)
            row["rel_vs_fp64"] = rel(
                y_ours[:1, :2048], gated_short_conv_reference(u[:1, :2048], gate[:1, :2048], w, b)[0]
            )
        for name, f in impls.items():
            try:
                if name != "add":  # a different function: nothing to compare
                    with torch.no_grad():
                        row[f"{name}_rel_vs_mixerzoo"] = rel(f(u, gate, w, b).float(), y_ours.float())
                row[f"{name}_fwd_ms"] = ms = bench(lambda f=f: f(u, gate, w, b))
                row[f"{name}_fwd_GBps"] = 3 * n / (ms * 1e-3) / 1e9
                if name in FWD_ONLY:
                    continue
                row[f"{name}_fwdbwd_ms"] = ms = bench(
                    lambda f=f: torch.autograd.grad(f(u, gate, w, b), (u, gate, w, b), dy)
                )
                row[f"{name}_fwdbwd_GBps"] = 8 * n / (ms * 1e-3) / 1e9
            except Exception as e:
                row[f"{name}_error"] = repr(e)[:200]
        # the kernel without the host: CUDA graphs of consecutive forwards over cold input sets (ours bare, and add)
        n_sets = max(2, min(20, math.ceil(2.5e9 / (3 * n))))
        with torch.no_grad():
            cold = [(torch.randn_like(u), torch.randn_like(gate)) for _ in range(n_sets)]
            wd, bd = w.detach(), b.detach()
            for name, f in (("nograd", lambda i: T.gated_short_conv_triton(*cold[i], wd, bd)[0]),
                            ("add", lambda i: torch.add(*cold[i]))):  # fmt: skip
                row[f"{name}_graph_ms"] = ms = graph_time_us(f, n_sets) / 1e3
                row[f"{name}_graph_GBps"] = 3 * n / (ms * 1e-3) / 1e9
        cold = None  # free the sets before the next shape
        rows.append(row)
        print(json.dumps({k_: (round(v_, 4) if isinstance(v_, float) else v_) for k_, v_ in row.items()}))

    dec = []
    C, K = 4096, 3
    for B in (1, 16, 64, 256):
        set_bytes = 2 * B * (K - 1) * C * 2 + 3 * B * C * 2  # state read+write, u, gate, y
        n_sets = max(1, min(256, math.ceil(384e6 / set_bytes)))
        gen = torch.Generator(device="cuda").manual_seed(B)
        w = (torch.randn(C, K, device="cuda", generator=gen) * K**-0.5).to(DT)
        b = torch.randn(C, device="cuda", generator=gen).to(DT)
        sets = [
            tuple(torch.randn(*s, device="cuda", dtype=DT, generator=gen) for s in ((B, C), (B, C), (B, K - 1, C)))
            for _ in range(n_sets)
        ]
        row = dict(B=B, C=C, K=K, bytes=set_bytes, sets=n_sets)
        if not dec:  # the decode table's first row, 2 s
            warm_up([lambda: [T.gated_short_conv_step_triton(*sets[i], w, b) for i in range(n_sets)]])

        def ours(i):
            u, g, h = sets[i]
            T.gated_short_conv_step_triton(u, g, h, w, b)

        def torch_step(i):
            u, g, h = sets[i]
            win = torch.cat([h, u.unsqueeze(1)], 1)  # [B, K, C]
            y = F.silu((win * w.T.unsqueeze(0)).sum(1) + b) * g
            h.copy_(win[:, 1:])
            return y

        for name, fn in (("mixerzoo_triton", ours), ("torch_eager_ops", torch_step)):
            try:
                us = graph_time_us(fn, n_sets)
                row[f"{name}_us"] = us
                row[f"{name}_GBps"] = set_bytes / (us * 1e-6) / 1e9
            except Exception as e:
                row[f"{name}_error"] = repr(e)[:200]
        dec.append(row)
        print(json.dumps({k_: (round(v_, 4) if isinstance(v_, float) else v_) for k_, v_ in row.items()}))
    meta["elapsed_s"] = time.time() - t_start
    res = dict(meta=meta, prefill=rows, decode=dec)
    with open(os.path.join(args.out, "short_conv.json"), "w") as f:
        json.dump(res, f, indent=1)

    def fmt(x):
        return "–" if x is None else f"{x:.3f}"

    lines = [
        "# Gated short convolution, H200 (mixerzoo fused Triton vs F.conv1d + SiLU + gate)",
        "",
        f"Command: `{meta['command']}`  ",
        f"GPU: {meta['gpu']}; torch {meta['torch']}, triton {meta['triton']}; copy bandwidth {bw:.0f} GB/s; {meta['date']}"
        + (
            f"; every thread pinned to CPU {meta['pinned_cpu']} (`--pin-cpu`)"
            if meta.get("pinned_cpu") is not None
            else ""
        ),
        "",
        "bf16. ms = do_bench median (cold L2); GB/s of minimal bytes (fwd: u, gate, y; fwd+bwd: 8 tensors).",
        f"Warm-up: {meta.get('warm_up', 'none')}.",
        "",
        "`ours` = the public eager path with inputs that need grad (one autograd.Function); `no-grad` = the same on "
        "detached inputs (the bare launch); `custom op` = the dispatcher path of the previous commit (the same kernel).",
        "",
        "`u + gate` = torch.add over the same bytes (u and gate read, one tensor written): what a plain streaming "
        "kernel reaches at this size, for scale.",
        "",
        "`general` = the forward with `triton_ops.FWD_FAST` off (every tile on the masked path; the default FAST path "
        "runs unmasked interior tiles with an approximate sigmoid).",
        "",
        "`graph` = the kernel without the host: a CUDA graph of consecutive forwards over cold input sets (no-grad "
        "launch, and `u + gate`), ms per forward. At small shapes do_bench's columns include host time (the next "
        "launch is not queued before the L2 flush ends) and the write-back of the flush's dirty lines.",
        "",
        "| B | L | C | K | ours fwd ms | GB/s | / copy bw | u + gate / copy bw | ours graph ms | ours graph / copy bw | "
        "u + gate graph / copy bw | general fwd ms | general / copy bw | "
        "no-grad fwd ms | no-grad / copy bw | "
        "custom op fwd ms | "
        "v1 fwd ms | v1 / copy bw | conv1d eager | conv1d compiled | "
        "ours f+b ms | GB/s | conv1d eager f+b | conv1d compiled f+b |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        gbps = r.get("mixerzoo_triton_fwd_GBps")
        lines.append(
            f"| {r['B']} | {r['L']} | {r['C']} | {r['K']} | {fmt(r.get('mixerzoo_triton_fwd_ms'))} | {fmt(gbps)} | "
            f"{fmt(gbps / bw if gbps else None)} | {fmt(r['add_fwd_GBps'] / bw if r.get('add_fwd_GBps') else None)} | "
            f"{fmt(r.get('nograd_graph_ms'))} | "
            f"{fmt(r['nograd_graph_GBps'] / bw if r.get('nograd_graph_GBps') else None)} | "
            f"{fmt(r['add_graph_GBps'] / bw if r.get('add_graph_GBps') else None)} | "
            f"{fmt(r.get('general_fwd_ms'))} | "
            f"{fmt(r['general_fwd_GBps'] / bw if r.get('general_fwd_GBps') else None)} | "
            f"{fmt(r.get('nograd_fwd_ms'))} | "
            f"{fmt(r['nograd_fwd_GBps'] / bw if r.get('nograd_fwd_GBps') else None)} | "
            f"{fmt(r.get('custom_op_fwd_ms'))} | {fmt(r.get('v1_fwd_ms'))} | "
            f"{fmt(r['v1_fwd_GBps'] / bw if r.get('v1_fwd_GBps') else None)} | {fmt(r.get('conv1d_eager_fwd_ms'))} | "
            f"{fmt(r.get('conv1d_compiled_fwd_ms'))} | {fmt(r.get('mixerzoo_triton_fwdbwd_ms'))} | "
            f"{fmt(r.get('mixerzoo_triton_fwdbwd_GBps'))} | {fmt(r.get('conv1d_eager_fwdbwd_ms'))} | "
            f"{fmt(r.get('conv1d_compiled_fwdbwd_ms'))} |"
        )
    lines += [
        "",
        "## Decode step (CUDA-graph replay, µs per step)",
        "",
        "| B | C | K | KB | ours µs | ours GB/s | torch ops µs | torch ops GB/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in dec:
        lines.append(
            f"| {r['B']} | {r['C']} | {r['K']} | {r['bytes'] / 1e3:.0f} | {fmt(r.get('mixerzoo_triton_us'))} | "
            f"{fmt(r.get('mixerzoo_triton_GBps'))} | {fmt(r.get('torch_eager_ops_us'))} | {fmt(r.get('torch_eager_ops_GBps'))} |"
        )
    errs = {k: v for r in rows + dec for k, v in r.items() if k.endswith("error")}
    lines += ["", f"Errors: {json.dumps(errs) if errs else 'none'}", ""]
    if "sweep" in meta:
        lines += ["## Tile sweep (each checked against the fp64 oracle first)", ""]
        lines += [f"- {json.dumps(r)}" for r in meta["sweep"]]
        lines += [""]
    with open(os.path.join(args.out, "short_conv.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
