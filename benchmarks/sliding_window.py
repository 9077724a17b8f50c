"""Sliding-window attention on the GPU: mixerzoo's Triton kernels against FlashAttention-2 with a window and flex.

Run (on a CUDA machine): ``python benchmarks/sliding_window.py --out benchmarks/results``. Writes
``sliding_window.json`` (every number, with the command, GPU and versions) and ``sliding_window.md``.

Method: bf16 random-normal inputs; ``triton.testing.do_bench`` medians (it flushes a 256 MB buffer before
every call, so each call starts with a cold L2); fwd+bwd = forward plus ``autograd.grad`` of a random
upstream gradient. Floors: minimal bytes over the measured copy bandwidth (forward reads q, k, v and writes
o; fwd+bwd moves 12 such tensors). Decode: CUDA-graph replays of one step per sequence over rotating ring
buffers (≥ 384 MB working set, so steps do not run out of L2); bytes = ring read + q, new k/v, o.
Peers in the same run: FA2 with ``window_size=(W − 1, 0)`` (xformers' ``LowerTriangularFromBottomRightLocal
AttentionMask``, which dispatches to torch's FA2; benchmark-only flag ``_built_with_cuda = True`` because the
wheel's extension does not load on this image), ``flex_attention`` (compiled, sliding-window block mask) and,
for decode, SDPA over the ring buffer.
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
import triton
import triton.language as tl

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import bench, copy_bandwidth, environment, graph_time_us, host_overhead_rows, rel, warm_up  # noqa: E402  (benchmarks/ is on sys.path)

from mixerzoo.kernels.sliding_window import sliding_window_attention  # noqa: E402
from mixerzoo.kernels.sliding_window import triton_ops as T  # noqa: E402
from mixerzoo.kernels.sliding_window.naive import sliding_window_reference  # noqa: E402

DT = torch.bfloat16


def peers(meta: dict):
    out = {}
    try:
        import xformers
        import xformers.ops as xops
        import xformers.ops.fmha.common as common
        from xformers.ops.fmha.attn_bias import LowerTriangularFromBottomRightLocalAttentionMask as Local

        common._built_with_cuda = True  # benchmark only: the fmha ops used here call torch's own kernels
        meta["xformers"] = xformers.__version__
        meta["xformers_note"] = "set xformers.ops.fmha.common._built_with_cuda = True (benchmark only)"

        def fa2(q, k, v, w):  # the dispatcher picks fa2F/fa2B (FlashAttention-2 2.5.7 inside torch)
            return xops.memory_efficient_attention(q, k, v, attn_bias=Local(w))

        out["fa2_window"] = (fa2, fa2)
    except Exception as e:  # fall back to torch's FA2 entry point (forward only)
        meta["xformers_error"] = repr(e)[:300]

        def fa2_aten(q, k, v, w):
            return torch.ops.aten._flash_attention_forward(
                q,
                k,
                v,
                None,
                None,
                q.shape[1],
                k.shape[1],
                0.0,
                True,
                False,
                window_size_left=w - 1,
                window_size_right=0,
            )[0]

        out["fa2_window"] = (fa2_aten, None)
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        w_t = torch.zeros((), dtype=torch.int64, device="cuda")

        def sw(b, h, qi, ki):
            return (qi >= ki) & (qi - ki < w_t)

        flex = torch.compile(flex_attention, dynamic=True)
        masks = {}

        current = {"w": None}

        def flex_fn(q, k, v, w):
            key = (q.shape[1], w)
            if current["w"] != w:  # the mask_mod reads w_t inside the kernel: keep it equal to this call's W
                w_t.fill_(w)
                current["w"] = w
            if key not in masks:
                masks[key] = create_block_mask(sw, None, None, q.shape[1], k.shape[1], device="cuda")
            o = flex(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), block_mask=masks[key])
            return o.transpose(1, 2)

        out["flex"] = (flex_fn, flex_fn)
    except Exception as e:
        meta["flex_error"] = repr(e)[:300]
    return out


def run_prefill(res: dict, bw: float, Ls, Ws, Ds, deadline: float, save=lambda: None) -> None:
    B, H = 4, 16
    impls = {"mixerzoo_triton": (lambda q, k, v, w: T.sliding_window_triton(q, k, v, w),) * 2}
    impls.update(peers(res["meta"]))
    for d in Ds:
        for W in Ws:
            for L in Ls:
                if time.time() > deadline:
                    res["meta"].setdefault("skipped", []).append(f"prefill d={d} W={W} L={L} (time budget)")
                    continue
                g = torch.Generator(device="cuda").manual_seed(L + W + d)
                q, k, v, do = (torch.randn(B, L, H, d, device="cuda", dtype=DT, generator=g) for _ in range(4))
                for t in (q, k, v):
                    t.requires_grad_()
                floor_f = 4 * q.numel() * 2 / (bw * 1e9) * 1e3
                row = dict(d=d, W=W, L=L, floor_fwd_ms=floor_f, floor_fwdbwd_ms=3 * floor_f)
                # every implementation's fwd and fwd+bwd before the row is timed: 2 s before the table's first row,
                # 0.25 s before the others (the first d=128 row of the 15:19 run had FA2 fwd 0.423 ms, 0.272 before)
                secs = 0.25 if res["prefill"] else 2.0
                with torch.no_grad():
                    warm_up([lambda f=f: f(q, k, v, W) for f, _ in impls.values()], secs)
                warm_up(
                    [lambda f=f: torch.autograd.grad(f(q, k, v, W), (q, k, v), do) for _, f in impls.values() if f],
                    secs,
                )
                ref_o = None
                for name, (f_fwd, f_train) in impls.items():
                    try:
                        with torch.no_grad():
                            o = f_fwd(q, k, v, W)
                        if ref_o is None:
                            ref_o = o
                            if L == Ls[0]:  # oracle check on the first 1024 queries (dense fp64 is L² memory)
                                s = (slice(0, 1), slice(0, 1024))
                                row["rel_vs_fp64"] = rel(o[s], sliding_window_reference(q[s], k[s], v[s], W))
                        row[f"{name}_rel_vs_mixerzoo"] = rel(o.float(), ref_o.float())
                        row[f"{name}_fwd_ms"] = bench(lambda f=f_fwd: f(q, k, v, W))
                        if f_train is not None:
                            row[f"{name}_fwdbwd_ms"] = bench(
                                lambda f=f_train: torch.autograd.grad(f(q, k, v, W), (q, k, v), do)
                            )
                    except Exception as e:
                        row[f"{name}_error"] = repr(e)[:200]
                res["prefill"].append(row)
                save()
                print(json.dumps({k_: (round(v_, 4) if isinstance(v_, float) else v_) for k_, v_ in row.items()}))


def sweep_tiles(res: dict, L: int = 16384, Ws=(64, 128), Ds=(64, 128), deadline: float = math.inf) -> None:
    """Pick the tiles per (kernel, head dim, W) from ``T.TILE_CANDIDATES`` (first = library default), then keep them
    for the run. Forward: fwd time; dkdv, then dq: fwd+bwd time. Every candidate is first checked against the fp64
    oracle (B=1, L=1024: o, dq, dk, dv), a failing one is never timed."""
    default_cfg = T._cfg
    chosen: dict = {}

    def cfg(kind, bd, window, elem=2):  # bf16 only here: the sweep's picks are the 16-bit tiles
        return dict(chosen.get((kind, bd, window)) or default_cfg(kind, bd, window, elem))

    T._cfg = cfg
    B, H = 4, 16
    log = []
    for d in Ds:
        for W in Ws:
            g = torch.Generator(device="cuda").manual_seed(W + d)
            q, k, v, do = (torch.randn(B, L, H, d, device="cuda", dtype=DT, generator=g) for _ in range(4))
            q.requires_grad_(), k.requires_grad_(), v.requires_grad_()
            sq, sk, sv, sdo = (t[:1, :1024].detach().clone() for t in (q, k, v, do))
            for t in (sq, sk, sv):
                t.requires_grad_()
            ref = sliding_window_reference(sq, sk, sv, W)  # fp64
            ref_grads = torch.autograd.grad(ref, (sq, sk, sv), sdo.double())
            if not log:  # before the first timed candidate: the default tiles' fwd+bwd, 2 s
                warm_up([lambda: torch.autograd.grad(T.sliding_window_triton(q, k, v, W), (q, k, v), do)])
            for kind in ("fwd", "dkdv", "dq"):
                cands = T.TILE_CANDIDATES[(kind, d)]
                best = None
                for c in cands:
                    if time.time() > deadline and c is not cands[0]:  # out of time: the default only
                        res["meta"].setdefault("skipped", []).append(f"tile {kind} d={d} W={W} {c} (time budget)")
                        continue
                    chosen[(kind, d, W)] = c
                    T.clear_plans()  # the launch plans are cached per tile function: this one changed its answer
                    entry = dict(d=d, W=W, kind=kind, cfg=c)
                    try:
                        T.POISON_OUTPUTS = True
                        o = T.sliding_window_triton(sq, sk, sv, W)
                        grads = torch.autograd.grad(o, (sq, sk, sv), sdo)
                        T.POISON_OUTPUTS = False
                        entry["rel_vs_fp64"] = errs = [rel(o, ref)] + [rel(a, b) for a, b in zip(grads, ref_grads)]
                        if not (errs[0] <= 1.5e-2 and max(errs[1:]) <= 6e-2):  # the bf16 tolerances of the tests
                            raise RuntimeError(f"rel err vs fp64 {errs}")
                        if kind == "fwd":
                            with torch.no_grad():
                                entry["ms"] = bench(lambda: T.sliding_window_triton(q, k, v, W))
                        else:
                            entry["ms"] = bench(
                                lambda: torch.autograd.grad(T.sliding_window_triton(q, k, v, W), (q, k, v), do)
                            )
                    except Exception as e:
                        entry["error"] = repr(e)[:300]
                    finally:
                        T.POISON_OUTPUTS = False
                    log.append(entry)
                    print(json.dumps(entry))
                    if "ms" in entry and (best is None or entry["ms"] < best[0]):
                        best = (entry["ms"], c)
                chosen[(kind, d, W)] = best[1] if best else cands[0]
                T.clear_plans()
    T.clear_plans()
    res["meta"]["tile_sweep"] = log
    res["meta"]["tiles_chosen"] = {f"{k}_d{d}_W{w}": c for (k, d, w), c in chosen.items()}


# The decode kernel of commit 5ec997c (v1: one program per (sequence, kv head), broadcast-multiply in a 3-D
# layout, 2-byte loads), kept here so that the before/after ratio is measured in the same run.
@triton.jit(do_not_specialize=["pos_int"])
def step_kernel_v1(
    p_q, p_k, p_v, p_ck, p_cv, p_pos, pos_int, p_o, W, scale_log2,
    H: tl.constexpr, HKV: tl.constexpr, D: tl.constexpr, DV: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
    BG: tl.constexpr, BW: tl.constexpr, NW: tl.constexpr, POS_TENSOR: tl.constexpr,
):  # fmt: skip
    """One program: sequence i_b, kv head i_hk, its G query heads; the ring buffer ``[B, W, HKV, ·]``."""
    i_bh = tl.program_id(0)
    i_b, i_hk = i_bh // HKV, i_bh % HKV
    G: tl.constexpr = H // HKV
    if POS_TENSOR:
        pos = tl.load(p_pos).to(tl.int64)
    else:
        pos = pos_int.to(tl.int64)
    slot = pos % W
    n_valid = tl.minimum(pos + 1, W)
    o_g, o_d, o_dv = tl.arange(0, BG), tl.arange(0, BD), tl.arange(0, BDV)
    m_g, m_d, m_dv = o_g < G, o_d < D, o_dv < DV
    p_qb = p_q + i_b.to(tl.int64) * (H * D) + (i_hk * G) * D
    b_q = tl.load(p_qb + o_g[:, None] * D + o_d[None, :], mask=m_g[:, None] & m_d[None, :], other=0.0).to(tl.float32)
    b_kn = tl.load(p_k + i_bh.to(tl.int64) * D + o_d, mask=m_d, other=0.0)
    b_vn = tl.load(p_v + i_bh.to(tl.int64) * DV + o_dv, mask=m_dv, other=0.0)
    p_ckb = p_ck + (i_b * W).to(tl.int64) * (HKV * D) + i_hk * D
    p_cvb = p_cv + (i_b * W).to(tl.int64) * (HKV * DV) + i_hk * DV
    b_mi = tl.full([BG], -1e30, dtype=tl.float32)
    b_li = tl.zeros([BG], dtype=tl.float32)
    b_acc = tl.zeros([BG, BDV], dtype=tl.float32)
    for j in range(0, NW):
        o_w = j * BW + tl.arange(0, BW)
        m_w = o_w < n_valid
        b_k = tl.load(p_ckb + o_w[:, None] * (HKV * D) + o_d[None, :], mask=m_w[:, None] & m_d[None, :], other=0.0)
        b_v = tl.load(p_cvb + o_w[:, None] * (HKV * DV) + o_dv[None, :], mask=m_w[:, None] & m_dv[None, :], other=0.0)
        # the slot being replaced holds the new token: take it from registers (no read-after-write in the kernel)
        b_k = tl.where(o_w[:, None] == slot, b_kn[None, :].to(b_k.dtype), b_k).to(tl.float32)
        b_v = tl.where(o_w[:, None] == slot, b_vn[None, :].to(b_v.dtype), b_v).to(tl.float32)
        b_s = tl.sum(b_q[:, None, :] * b_k[None, :, :], 2) * scale_log2  # [BG, BW]
        b_s = tl.where(m_w[None, :], b_s, float("-inf"))
        b_mn = tl.maximum(b_mi, tl.max(b_s, 1))
        b_p = tl.exp2(b_s - b_mn[:, None])
        b_alpha = tl.exp2(b_mi - b_mn)
        b_li = b_li * b_alpha + tl.sum(b_p, 1)
        b_acc = b_acc * b_alpha[:, None] + tl.sum(b_p[:, :, None] * b_v[None, :, :], 1)
        b_mi = b_mn
    b_o = b_acc / b_li[:, None]
    p_ob = p_o + i_b.to(tl.int64) * (H * DV) + (i_hk * G) * DV
    tl.store(p_ob + o_g[:, None] * DV + o_dv[None, :], b_o.to(p_o.dtype.element_ty), mask=m_g[:, None] & m_dv[None, :])
    tl.store(p_ckb + slot * (HKV * D) + o_d, b_kn.to(p_ck.dtype.element_ty), mask=m_d)
    tl.store(p_cvb + slot * (HKV * DV) + o_dv, b_vn.to(p_cv.dtype.element_ty), mask=m_dv)


def step_v1(q, k, v, cache_k, cache_v, position):
    B, H, D = q.shape
    W, HKV = cache_k.shape[1], cache_k.shape[2]
    BD = BDV = max(16, triton.next_power_of_2(D))
    BG = triton.next_power_of_2(H // HKV)
    BW = max(1, min(triton.next_power_of_2(W), 8192 // (BG * BD)))
    o = torch.empty_like(q)
    step_kernel_v1[(B * HKV,)](
        q, k, v, cache_k, cache_v, position, 0, o, W, D**-0.5 * T.LOG2E, NW=triton.cdiv(W, BW),
        H=H, HKV=HKV, D=D, DV=D, BD=BD, BDV=BDV, BG=BG, BW=BW, POS_TENSOR=True, num_warps=4,
    )  # fmt: skip
    return o


def graph_us(step, n_sets: int, steps: int, replays: int = 20) -> tuple[float, float]:
    """(µs per step with ``max(steps, n_sets)`` consecutive steps in one CUDA graph, cycling over the ``n_sets`` input
    sets so that every step reads a cold ring; µs per launch of a graph that holds one step). A generation graph holds
    the whole model step: the first number is the kernel's; the second adds the fixed cost of one graph launch."""
    us = graph_time_us(lambda i: step(i % n_sets), max(steps, n_sets), replays)
    ones = []
    for i in range(n_sets):
        ones.append(torch.cuda.CUDAGraph())
        with torch.cuda.graph(ones[-1]):
            step(i)
    t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(5):
        t0.record()
        for _ in range(replays):
            for gr in ones:
                gr.replay()
        t1.record()
        torch.cuda.synchronize()
        times.append(t0.elapsed_time(t1) * 1e3 / (replays * n_sets))
    return us, sorted(times)[2]


def run_decode(res: dict, bw: float, Bs, Ws, d: int = 128, H: int = 16, sweep: bool = False, steps: int = 20) -> None:
    """Each variant is first checked against the fp64 oracle (a full ring, position 10·W + 3), then timed."""
    import torch.nn.functional as F

    default_step_cfg = T._step_cfg
    for W in Ws:
        for B in Bs:
            set_bytes = 2 * B * W * H * d * 2
            n_sets = max(1, min(64, math.ceil(384e6 / set_bytes)))
            g = torch.Generator(device="cuda").manual_seed(B)
            sets = []
            for _ in range(n_sets):
                ck, cv = (torch.randn(B, W, H, d, device="cuda", dtype=DT, generator=g) for _ in range(2))
                q, k, v = (torch.randn(B, H, d, device="cuda", dtype=DT, generator=g) for _ in range(3))
                sets.append((q, k, v, ck, cv))
            pos = torch.full((), 10 * W + 3, dtype=torch.int64, device="cuda")
            slot = pos % W
            moved = set_bytes + 4 * B * H * d * 2  # ring read + q, k, v, o
            row = dict(
                W=W, B=B, d=d, H=H, bytes=moved, sets=n_sets, steps_per_graph=max(steps, n_sets),
                default_cfg=default_step_cfg(B, H, W, d),
            )  # fmt: skip

            def sdpa(i):
                q, k, v, ck, cv = sets[i]
                ck.index_copy_(1, slot.reshape(1), k.unsqueeze(1))
                cv.index_copy_(1, slot.reshape(1), v.unsqueeze(1))
                F.scaled_dot_product_attention(q.unsqueeze(2), ck.transpose(1, 2), cv.transpose(1, 2))

            variants = {"mixerzoo_triton": (T.sliding_window_step_triton, None), "v1": (step_v1, None)}
            if sweep:
                for c in T.STEP_CANDIDATES:
                    name = f"S{c['S']}_BW{c['BW']}_w{c['num_warps']}" + ("_pf" if c.get("PREFETCH") else "")
                    variants[name] = (T.sliding_window_step_triton, c)
            variants["sdpa_ring"] = (None, None)
            variants["read_ring"] = (None, None)  # not a peer: torch reductions over the same ring bytes, for scale

            def read_ring(i):
                _, _, _, ck, cv = sets[i]
                torch.amax(ck, 1), torch.amax(cv, 1)

            if not res["decode"]:  # the table's first row: the default step over every ring set and SDPA, 2 s
                warm_up([lambda: [T.sliding_window_step_triton(*sets[i], pos) for i in range(n_sets)],
                         lambda: [sdpa(i) for i in range(n_sets)]])  # fmt: skip
            for name, (fn, cfg) in variants.items():
                T._step_cfg = default_step_cfg if cfg is None else (lambda *a, c=cfg: c)
                try:
                    if fn is not None:  # oracle check on a copy of set 0 (the step writes the ring in place)
                        q, k, v, ck, cv = (t.clone() for t in sets[0])
                        T.POISON_OUTPUTS = True
                        o = fn(q, k, v, ck, cv, pos)
                        T.POISON_OUTPUTS = False
                        ref = sliding_window_reference(q.unsqueeze(1), ck, cv, W)[:, 0]
                        row[f"{name}_rel_vs_fp64"] = err = rel(o, ref)
                        ring_ok = torch.equal(ck[:, int(slot)], k) and torch.equal(cv[:, int(slot)], v)
                        if not (err <= 1.5e-2 and ring_ok):
                            raise RuntimeError(f"{name}: rel err {err:.3g} vs fp64, ring slot written: {ring_ok}")

                        def step(i, fn=fn):
                            q, k, v, ck, cv = sets[i]
                            fn(q, k, v, ck, cv, pos)
                    else:
                        step = read_ring if name == "read_ring" else sdpa
                    us, us_one = graph_us(step, n_sets, steps)
                    row[f"{name}_us"], row[f"{name}_us_1step_graph"] = us, us_one
                    row[f"{name}_GBps"] = moved / (us * 1e-6) / 1e9
                    row[f"{name}_frac_copy_bw"] = row[f"{name}_GBps"] / bw
                except Exception as e:
                    row[f"{name}_error"] = repr(e)[:300]
                finally:
                    T.POISON_OUTPUTS = False
            T._step_cfg = default_step_cfg
            timed = [k[: -len("_us")] for k in row if k.endswith("_us") and k[0] == "S"]
            if timed:
                row["best_variant"] = min(timed, key=lambda n: row[n + "_us"])
            res["decode"].append(row)
            print(json.dumps({k_: (round(v_, 4) if isinstance(v_, float) else v_) for k_, v_ in row.items()}))


def fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def write_md(res: dict, path: str) -> None:
    m = res["meta"]
    lines = [
        "# Sliding-window attention, H200 (mixerzoo Triton vs FA2-window vs flex)",
        "",
        f"Command: `{m['command']}`  ",
        f"GPU: {m['gpu']}; torch {m['torch']}, triton {m['triton']}, xformers {m.get('xformers', '–')}; "
        f"copy bandwidth {m['copy_GBps']:.0f} GB/s (read+write); {m['date']}",
        "",
        "B=4, H=16, bf16. ms = do_bench median (cold L2). `×FA2`, `×flex` = peer time / ours (>1: ours faster).",
        f"Warm-up: {m.get('warm_up', 'none (runs before 2026-11-28 15:30)')}.",
        "",
        "| d | W | L | ours fwd | FA2 fwd | flex fwd | floor fwd | ours/floor | ours f+b | FA2 f+b | flex f+b | "
        "×FA2 f+b | ×flex f+b | floor f+b |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in res["prefill"]:
        o_f, o_b = r.get("mixerzoo_triton_fwd_ms"), r.get("mixerzoo_triton_fwdbwd_ms")
        fa_f, fa_b = r.get("fa2_window_fwd_ms"), r.get("fa2_window_fwdbwd_ms")
        fl_f, fl_b = r.get("flex_fwd_ms"), r.get("flex_fwdbwd_ms")

        def ratio(a, b):
            return f"{a / b:.2f}×" if a and b else "–"

        lines.append(
            f"| {r['d']} | {r['W']} | {r['L']} | {fmt(o_f)} | {fmt(fa_f)} | {fmt(fl_f)} | {fmt(r['floor_fwd_ms'])} | "
            f"{ratio(o_f, r['floor_fwd_ms'])} | {fmt(o_b)} | {fmt(fa_b)} | {fmt(fl_b)} | {ratio(fa_b, o_b)} | "
            f"{ratio(fl_b, o_b)} | {fmt(r['floor_fwdbwd_ms'])} |"
        )
    lines += [
        "",
        "## Decode step (µs per step: CUDA graph of ≥ 20 consecutive steps over rotating cold rings; `1-step graph` ="
        " one graph launch per step; GB/s of minimal bytes, fraction of copy bandwidth; `read-ring`: not a peer, two"
        " torch reductions (`amax` over the window) that read the same ring bytes in the same graph, for scale)",
        "",
        "| W | B | d | MB | steps/graph | default cfg | ours µs | ours / copy bw | ours µs, 1-step graph | best variant | "
        "best µs | best / copy bw | v1 µs | v1 / copy bw | SDPA-ring µs | SDPA-ring / copy bw | read-ring / copy bw |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in res["decode"]:
        cfg = r.get("default_cfg", {})
        best = r.get("best_variant")
        lines.append(
            f"| {r['W']} | {r['B']} | {r['d']} | {r['bytes'] / 1e6:.1f} | {r.get('steps_per_graph')} | "
            f"S={cfg.get('S')} BW={cfg.get('BW')} w{cfg.get('num_warps')}{' pf' if cfg.get('PREFETCH') else ''} | "
            f"{fmt(r.get('mixerzoo_triton_us'))} | {fmt(r.get('mixerzoo_triton_frac_copy_bw'))} | "
            f"{fmt(r.get('mixerzoo_triton_us_1step_graph'))} | {best or '–'} | "
            f"{fmt(r.get(f'{best}_us'))} | {fmt(r.get(f'{best}_frac_copy_bw'))} | "
            f"{fmt(r.get('v1_us'))} | {fmt(r.get('v1_frac_copy_bw'))} | "
            f"{fmt(r.get('sdpa_ring_us'))} | {fmt(r.get('sdpa_ring_frac_copy_bw'))} | "
            f"{fmt(r.get('read_ring_frac_copy_bw'))} |"
        )
    sweep_rows = [(r, k[: -len("_us")]) for r in res["decode"] for k in r if k.startswith("S") and k.endswith("_us")]
    if sweep_rows:
        lines += ["", "Step variants (µs / fraction of copy bw / µs with a 1-step graph / rel err vs fp64):", ""]
        lines += [
            f"- W={r['W']} B={r['B']} {n}: {r[n + '_us']:.2f} µs, {r[n + '_frac_copy_bw']:.3f}, "
            f"{r[n + '_us_1step_graph']:.2f} µs, {r.get(n + '_rel_vs_fp64', float('nan')):.2e}"
            for r, n in sweep_rows
        ]
    errs = {k: v for r in res["prefill"] + res["decode"] for k, v in r.items() if k.endswith("error")}
    lines += ["", f"Errors: {json.dumps(errs) if errs else 'none'}; skipped: {m.get('skipped', 'none')}", ""]
    if "tile_sweep" in m:
        lines += [
            "## Tile sweep (B=4, H=16, L=16384; fwd: fwd ms; dkdv, dq: fwd+bwd ms; first row of each group = default;"
            " rel err vs fp64 of o, dq, dk, dv at L=1024)",
            "",
        ]
        for r in m["tile_sweep"]:
            err = ", ".join(f"{e:.1e}" for e in r.get("rel_vs_fp64", []))
            lines.append(
                f"- d={r['d']} W={r['W']} {r['kind']} {r['cfg']}: {fmt(r.get('ms'))} ms ({err}) {r.get('error', '')}"
            )
        lines += ["", f"Chosen for the table above: `{json.dumps(m['tiles_chosen'])}`", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def host_overhead(profile: bool = False, reps: int = 500, device: str = "cpu") -> list[dict]:
    """CPU microbenchmark of the host path of ``sliding_window_attention(..., backend="triton")`` at the prefill
    table's L=8192 row (B=4, H=16, d=64, W=64, bf16; q, k, v require grad): every Triton launch a no-op, µs per call
    (``_common.host_overhead_rows``). ``fwd`` under no_grad; ``fwd (grad)`` on the inputs that require grad (the table's
    ``ours fwd``); ``fwd+bwd`` = forward + ``autograd.grad``. Run: ``python benchmarks/sliding_window.py
    --host-overhead [--host-profile]`` (no GPU; bf16 CPU tensors are fine: nothing computes on them). CPU artifact at
    L=8192: tensors of ≥ 32 MB are mmap'd and unmapped on every call (~15 µs each; the CUDA caching allocator reuses
    its blocks); the same rows at L=512 (4 MB tensors, heap-allocated) leave the Python path. ``--host-device meta``:
    no memory at all, but the custom ops then run their fake kernels (no launch code), so it flatters the old path."""
    B, H, d, W = 4, 16, 64, 64
    cases = []
    for L in (8192, 512):
        q, k, v, do = (torch.randn(B, L, H, d, device=device, dtype=DT) for _ in range(4))
        for t in (q, k, v):
            t.requires_grad_()

        def fwd(q=q, k=k, v=v):
            with torch.no_grad():
                sliding_window_attention(q, k, v, W, backend="triton")

        def fwd_grad(q=q, k=k, v=v):
            sliding_window_attention(q, k, v, W, backend="triton")

        def fwd_bwd(q=q, k=k, v=v, do=do):
            torch.autograd.grad(sliding_window_attention(q, k, v, W, backend="triton"), (q, k, v), do)

        cases += [(f"sliding_window L={L} fwd", fwd), (f"sliding_window L={L} fwd (grad)", fwd_grad),
                  (f"sliding_window L={L} fwd+bwd", fwd_bwd)]  # fmt: skip
    return host_overhead_rows(T, cases, reps, profile=cases[-1][0] if profile else None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--budget-s", type=float, default=200.0, help="stop adding prefill rows after this")
    ap.add_argument("--L", default="8192,16384")
    ap.add_argument("--W", default="64,128", help="windows of the prefill table")
    ap.add_argument("--sweep", action="store_true", help="first pick the tiles (triton_ops.TILE_CANDIDATES)")
    ap.add_argument("--step-sweep", action="store_true", help="also time the decode variants (STEP_CANDIDATES)")
    ap.add_argument("--steps", type=int, default=20, help="decode steps per CUDA graph (at least the ring sets)")
    ap.add_argument("--decode-only", action="store_true", help="skip the prefill (fwd, fwd+bwd) table")
    ap.add_argument("--decode-W", default="64", help="ring sizes of the decode table (2048: the attn KV cache's)")
    ap.add_argument("--decode-B", default="1,16,64,256", help="batch sizes of the decode table")
    ap.add_argument("--decode-d", type=int, default=128, help="head dim of the decode table")
    ap.add_argument("--host-overhead", action="store_true", help="CPU: time the Python path with no-op launches, exit")
    ap.add_argument("--host-profile", action="store_true", help="with --host-overhead: also a cProfile of fwd+bwd")
    ap.add_argument("--host-device", default="cpu", help="with --host-overhead: cpu, or meta (no memory, no compute)")
    args = ap.parse_args()
    if args.host_overhead:
        host_overhead(profile=args.host_profile, device=args.host_device)
        return
    os.makedirs(args.out, exist_ok=True)
    t_start = time.time()
    bw = copy_bandwidth()
    res = dict(
        meta=environment(bw),
        prefill=[],
        decode=[],
    )
    Ls = [int(x) for x in args.L.split(",")]
    res["meta"]["warm_up"] = (
        "2 s before the first row of each table (decode: the default step over every ring set, then SDPA; tile sweep: "
        "the default tiles' fwd+bwd; prefill: fwd, then fwd+bwd of every implementation), 0.25 s + 0.25 s before each "
        "later prefill row"
    )

    def save() -> None:  # after every phase and prefill row: a run cut by its timeout still leaves its numbers
        res["meta"]["elapsed_s"] = time.time() - t_start
        with open(os.path.join(args.out, "sliding_window.json"), "w") as f:
            json.dump(res, f, indent=1)
        write_md(res, os.path.join(args.out, "sliding_window.md"))

    run_decode(
        res, bw, Bs=[int(x) for x in args.decode_B.split(",")], Ws=[int(x) for x in args.decode_W.split(",")],
        d=args.decode_d, sweep=args.step_sweep, steps=args.steps,
    )  # fmt: skip
    save()
    if not args.decode_only:
        if args.sweep:
            sweep_tiles(res, deadline=t_start + 0.6 * args.budget_s)
            save()
        Ws = [int(x) for x in args.W.split(",")]
        run_prefill(res, bw, Ls=Ls, Ws=Ws, Ds=(64, 128), deadline=t_start + args.budget_s, save=save)
    save()
    print(open(os.path.join(args.out, "sliding_window.md")).read())


if __name__ == "__main__":
    main()
