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
import platform
import sys
import time

import torch
import torch.nn.functional as F
import triton
from triton.testing import do_bench

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mixerzoo.kernels.short_conv import triton_ops as T  # noqa: E402
from mixerzoo.kernels.short_conv.naive import gated_short_conv_reference  # noqa: E402

DT = torch.bfloat16


def bench(fn) -> float:
    return do_bench(fn, warmup=10, rep=40, return_mode="median")


def copy_bandwidth() -> float:
    x = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    return 2 * x.numel() / (do_bench(lambda: y.copy_(x), warmup=10, rep=50, return_mode="median") * 1e-3) / 1e9


def rel(a, b) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def conv1d_gate(u, gate, w, b):
    K = w.shape[1]
    x = F.conv1d(F.pad(u.transpose(1, 2), (K - 1, 0)), w.unsqueeze(1), b, groups=w.shape[0])  # [B, C, L]
    return F.silu(x).transpose(1, 2) * gate


def graph_time_us(step, n_sets: int, replays: int = 20) -> float:
    for i in range(n_sets):
        step(i)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(n_sets):
            step(i)
    graph.replay()
    torch.cuda.synchronize()
    t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(5):
        t0.record()
        for _ in range(replays):
            graph.replay()
        t1.record()
        torch.cuda.synchronize()
        times.append(t0.elapsed_time(t1) * 1e3 / (replays * n_sets))
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t_start = time.time()
    bw = copy_bandwidth()
    props = torch.cuda.get_device_properties(0)
    meta = dict(
        command="python " + " ".join(sys.argv),
        gpu=f"{props.name}, {props.multi_processor_count} SMs",
        torch=torch.__version__,
        triton=triton.__version__,
        python=platform.python_version(),
        copy_GBps=bw,
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    compiled = torch.compile(conv1d_gate)
    impls = {
        "mixerzoo_triton": lambda u, g, w, b: T.gated_short_conv_triton(u, g, w, b)[0],
        "conv1d_eager": conv1d_gate,
        "conv1d_compiled": compiled,
    }
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
        with torch.no_grad():
            y_ours = impls["mixerzoo_triton"](u, gate, w, b)
            row["rel_vs_fp64"] = rel(
                y_ours[:1, :2048], gated_short_conv_reference(u[:1, :2048], gate[:1, :2048], w, b)[0]
            )
        for name, f in impls.items():
            try:
                with torch.no_grad():
                    row[f"{name}_rel_vs_mixerzoo"] = rel(f(u, gate, w, b).float(), y_ours.float())
                row[f"{name}_fwd_ms"] = ms = bench(lambda f=f: f(u, gate, w, b))
                row[f"{name}_fwd_GBps"] = 3 * n / (ms * 1e-3) / 1e9
                row[f"{name}_fwdbwd_ms"] = ms = bench(
                    lambda f=f: torch.autograd.grad(f(u, gate, w, b), (u, gate, w, b), dy)
                )
                row[f"{name}_fwdbwd_GBps"] = 8 * n / (ms * 1e-3) / 1e9
            except Exception as e:
                row[f"{name}_error"] = repr(e)[:200]
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
        f"GPU: {meta['gpu']}; torch {meta['torch']}, triton {meta['triton']}; copy bandwidth {bw:.0f} GB/s; {meta['date']}",
        "",
        "bf16. ms = do_bench median (cold L2); GB/s of minimal bytes (fwd: u, gate, y; fwd+bwd: 8 tensors).",
        "",
        "| B | L | C | K | ours fwd ms | GB/s | / copy bw | conv1d eager | conv1d compiled | ours f+b ms | GB/s | "
        "conv1d eager f+b | conv1d compiled f+b |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        gbps = r.get("mixerzoo_triton_fwd_GBps")
        lines.append(
            f"| {r['B']} | {r['L']} | {r['C']} | {r['K']} | {fmt(r.get('mixerzoo_triton_fwd_ms'))} | {fmt(gbps)} | "
            f"{fmt(gbps / bw if gbps else None)} | {fmt(r.get('conv1d_eager_fwd_ms'))} | "
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
    with open(os.path.join(args.out, "short_conv.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
