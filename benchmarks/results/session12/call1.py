"""Session 12, call 1: (1) whether do_bench's L2 flush (``zero_()`` of 256 MB, which leaves up to 50 MB of dirty
lines that the timed kernel then writes back) lowers the small shapes' fraction of copy bandwidth, against a flush
that reads 256 MB (clean lines) and a CUDA graph over cold buffer sets; for torch.add, a copy and the conv forward
(default, and the tanh SiLU with two tiles); (2) the decode steps with programmatic dependent launch (``STEP_PDL`` 0 / 1 / 2), in a CUDA
graph of 20 consecutive steps over cold state sets.

    PYTHONPATH=$PWD python3 benchmarks/results/session12/call1.py
"""

# ruff: noqa: B023  (the lambdas run within their loop iteration)
import sys

import torch
from triton.testing import do_bench

sys.path.insert(0, "benchmarks")
from _common import copy_bandwidth, graph_time_us  # noqa: E402

from mixerzoo.kernels import _launch  # noqa: E402
from mixerzoo.kernels.short_conv import triton_ops as CT  # noqa: E402
from mixerzoo.kernels.short_conv.naive import gated_short_conv_reference  # noqa: E402
from mixerzoo.kernels.sliding_window import triton_ops as ST  # noqa: E402

_FLUSH = None


def bench_read_flush(fn, reps=40):
    """Median ms of fn() after reading (not writing) 256 MB: L2 holds clean lines."""
    global _FLUSH
    if _FLUSH is None:
        _FLUSH = torch.empty(2**26, dtype=torch.float32, device="cuda").normal_()
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        torch.sum(_FLUSH)
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def part1(bw):
    print(f"copy bandwidth {bw / 1e9:.0f} GB/s", flush=True)
    for B, L, C in [(4, 4096, 1024), (4, 16384, 1024), (4, 4096, 4096)]:
        nb = 3 * B * L * C * 2
        floor_us = nb / bw * 1e6
        sets = max(2, min(20, int(2.5e9 // nb) + 1))
        us_ = [torch.randn(B, L, C, device="cuda", dtype=torch.bfloat16) for _ in range(sets)]
        gs_ = [torch.randn(B, L, C, device="cuda", dtype=torch.bfloat16) for _ in range(sets)]
        ys_ = [torch.empty(B, L, C, device="cuda", dtype=torch.bfloat16) for _ in range(sets)]
        w = torch.randn(C, 3, device="cuda", dtype=torch.bfloat16) * 0.5
        bias = torch.randn(C, device="cuda", dtype=torch.bfloat16) * 0.1
        ref = gated_short_conv_reference(us_[0], gs_[0], w, bias)[0]

        def conv(i, tanh, tiles):
            CT.FWD_TANH = tanh
            CT._fwd_tiles = lambda C_: dict(BT=tiles[0], BC=tiles[1], NT=1, num_warps=tiles[2])
            return CT.gated_short_conv_triton(us_[i], gs_[i], w, bias)[0]

        fns = {
            "add": (lambda i: torch.add(us_[i], gs_[i], out=ys_[i]), 1.0),
            "copy": (lambda i: ys_[i].copy_(us_[i]), 2 / 3),
        }
        base = None
        for name, tanh, tiles in [("conv", False, (32, 128, 4)), ("conv-tanh", True, (32, 128, 4)),
                                  ("conv-tanh-16", True, (16, 128, 4)), ("conv-16", False, (16, 128, 4))]:  # fmt: skip
            y = conv(0, tanh, tiles).double()
            err = ((y - ref).norm() / ref.norm()).item()
            mx = (y - ref).abs().max().item()
            base = y if base is None else base
            dif = (y - base).abs().max().item()
            print(f"  {B}x{L}x{C} {name}: rel err {err:.4e}, max abs {mx:.3e}, max |y - conv| {dif:.3e}", flush=True)
            fns[name] = ((lambda i, t=tanh, tl_=tiles: conv(i, t, tl_)), 1.0)
        print(f"{B}x{L}x{C}: floor {floor_us:.1f} us, {sets} sets", flush=True)
        for rnd in range(2):
            for name, (fn, frac) in fns.items():
                f = floor_us * frac
                z = do_bench(lambda: fn(0), warmup=10, rep=40, return_mode="median") * 1e3
                r = bench_read_flush(lambda: fn(0)) * 1e3
                g = graph_time_us(fn, sets)
                print(f"  r{rnd} {name:13s} zero-flush {z:6.1f} us ({f / z:4.0%})  read-flush {r:6.1f} us "
                      f"({f / r:4.0%})  graph {g:6.1f} us ({f / g:4.0%})", flush=True)  # fmt: skip
        torch.cuda.empty_cache()


def part2(bw):
    H, d, W = 16, 128, 64
    for B in (1, 16, 64, 256):
        nb = 2 * B * W * H * d * 2 + 4 * B * H * d * 2
        sets = max(2, min(20, int(1e9 // nb) + 1))
        data = []
        for _ in range(sets):
            q, k, v = (torch.randn(B, H, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            ck, cv = (torch.randn(B, W, H, d, device="cuda", dtype=torch.bfloat16) for _ in range(2))
            data.append((q, k, v, ck, cv))
        pos = torch.tensor([1000], device="cuda")
        outs = {}
        for pdl in (0, 1, 2, 0, 1, 2):
            _launch.STEP_PDL = pdl
            ck0, cv0 = data[0][3].clone(), data[0][4].clone()
            o = ST.sliding_window_step_triton(*data[0][:3], ck0, cv0, pos)
            outs.setdefault(pdl, (o, ck0, cv0))
            us = graph_time_us(lambda i: ST.sliding_window_step_triton(*data[i % sets], pos), max(20, sets))
            print(
                f"window step B={B} W={W} d={d}: PDL {pdl}: {us:6.2f} us ({nb / us / 1e3 / (bw / 1e9):4.0%})",
                flush=True,
            )
        same = all(torch.equal(a, b) for m in (1, 2) for a, b in zip(outs[0], outs[m]))
        print(f"  PDL modes 1, 2 == 0 (o and rings): {same}", flush=True)
    C, K = 4096, 3
    for B in (1, 16, 64, 256):
        nb = (2 * B * C + 2 * B * (K - 1) * C + B * C) * 2
        sets = 40
        data = [(torch.randn(B, 2 * C, device="cuda", dtype=torch.bfloat16),
                 torch.randn(B, K - 1, C, device="cuda", dtype=torch.bfloat16)) for _ in range(sets)]  # fmt: skip
        w = torch.randn(C, K, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(C, device="cuda", dtype=torch.bfloat16)
        outs = {}
        h_init = data[0][1].clone()
        for pdl in (0, 1, 2, 0, 1, 2):
            _launch.STEP_PDL = pdl
            h0 = h_init.clone()
            y = CT.gated_short_conv_step_triton(data[0][0][:, :C], data[0][0][:, C:], h0, w, b)
            outs.setdefault(pdl, (y, h0))
            us = graph_time_us(lambda i: CT.gated_short_conv_step_triton(
                data[i][0][:, :C], data[i][0][:, C:], data[i][1], w, b), sets)  # fmt: skip
            print(f"conv step B={B} C={C}: PDL {pdl}: {us:6.2f} us ({nb / us / 1e3 / (bw / 1e9):4.0%})", flush=True)
        same = all(torch.equal(a, b) for m in (1, 2) for a, b in zip(outs[0], outs[m]))
        print(f"  PDL modes 1, 2 == 0 (y and state): {same}", flush=True)


if __name__ == "__main__":
    bw = copy_bandwidth() * 1e9
    which = sys.argv[1:] or ["1", "2"]
    if "2" in which:
        part2(bw)
    if "1" in which:
        part1(bw)
