"""Where the host's time goes in one Taylor fwd+bwd at L=4096 (B=4, H=16, d′=16, dv=64, bf16) with autograd's device
thread and with the backward on the calling thread: timestamps around the forward, around ``autograd.grad``, and at
the entry and exit of the backward's body (``triton_ops._bwd_call``, on whichever thread runs it); 300 calls back to
back, no sync (as in ``do_bench`` when the host is the bottleneck); medians in µs, alternated over 3 rounds. A tiny
op's ``autograd.grad`` gives the engine's own hand-off. Written in session 10:
``python3 benchmarks/results/session10/handoff_trace.py`` (run it under ``taskset -c N`` to pin every thread to one
core)."""

import statistics
import sys
import threading
import time

import torch

sys.path.insert(0, ".")
from mixerzoo.feature_maps import feature_map  # noqa: E402
from mixerzoo.kernels.linear_attention import linear_attention  # noqa: E402
from mixerzoo.kernels.linear_attention import triton_ops as T  # noqa: E402

B, H, DK, DV, L = 4, 16, 16, 64, 4096
g = torch.Generator(device="cuda").manual_seed(0)
q, k = (torch.randn(B, L, H, DK, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_() for _ in range(2))
v = torch.randn(B, L, H, DV, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_()
do = torch.randn_like(v)
fm = feature_map("taylor", DK).cuda()
marks: list = []
real_bwd = T._bwd_call


def traced_bwd(*args, **kwargs):
    t_in = time.perf_counter()
    out = real_bwd(*args, **kwargs)
    marks.append((t_in, time.perf_counter(), threading.get_ident() == threading.main_thread().ident))
    return out


T._bwd_call = traced_bwd


def run(n: int) -> dict:
    rows = []
    marks.clear()
    for _ in range(n):
        t0 = time.perf_counter()
        o = linear_attention(q, k, v, fm)
        t1 = time.perf_counter()
        torch.autograd.grad(o, (q, k, v), do)
        t2 = time.perf_counter()
        rows.append((t0, t1, t2))
    torch.cuda.synchronize()
    assert len(marks) == n
    med = lambda xs: statistics.median(xs) * 1e6  # noqa: E731
    return dict(
        fwd=med([t1 - t0 for t0, t1, _ in rows]),
        to_bwd=med([m[0] - r[1] for r, m in zip(rows, marks)]),
        bwd_body=med([m[1] - m[0] for m in marks]),
        back=med([r[2] - m[1] for r, m in zip(rows, marks)]),
        total=med([t2 - t0 for t0, _, t2 in rows]),
        on_main=sum(m[2] for m in marks) / n,
    )


x = torch.randn(1024, device="cuda", requires_grad=True)
gx = torch.ones(1024, device="cuda")


def tiny(n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        torch.autograd.grad(x * 2, x, gx)
    t = (time.perf_counter() - t0) / n * 1e6
    torch.cuda.synchronize()
    return t


for _ in range(20):
    torch.autograd.grad(linear_attention(q, k, v, fm), (q, k, v), do)
torch.cuda.synchronize()
for rnd in range(3):
    for threads in (True, False):
        with torch.autograd.set_multithreading_enabled(threads):
            run(20)
            r = run(300)
            t = tiny(300)
        where = "device thread " if threads else "calling thread"
        print(
            f"round {rnd} {where}: µs fwd {r['fwd']:.0f}, grad call → backward body {r['to_bwd']:.0f}, body "
            f"{r['bwd_body']:.0f}, body end → grad returns {r['back']:.0f}; fwd+bwd {r['total']:.0f} "
            f"(body on the main thread: {r['on_main']:.0%}); tiny op's fwd+bwd {t:.0f}",
            flush=True,
        )
