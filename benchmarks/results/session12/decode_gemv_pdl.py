"""Session 12: does a decode GEMV launched with programmatic dependent launch, its weight loads issued before
``griddepcontrol.wait``, beat cuBLAS at batch 1 inside a chain like the compiled step's? Each link of the chain is an
RMSNorm-like Triton kernel (as inductor's with PDL: wait before its first read, ``launch_dependents`` after its last
load) and then the projection of Based-360M's shapes, over 20 weight sets (cold), in one CUDA graph; µs per link.

    (a) norm without PDL, then cuBLAS (``F.linear``)         (b) norm with PDL, then cuBLAS
    (c) norm with PDL, then the GEMV without PDL            (d) norm with PDL, then the GEMV with PDL, weights first

    PYTHONPATH=$PWD python3 benchmarks/results/session12/decode_gemv_pdl.py
"""

# ruff: noqa: B023  (the lambdas run within their loop iteration)
import sys

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

sys.path.insert(0, "benchmarks")
from _common import copy_bandwidth, graph_time_us  # noqa: E402

from mixerzoo.kernels._launch import gdc_launch_dependents, gdc_wait  # noqa: E402


@triton.jit
def norm_kernel(x, out, K: tl.constexpr, BK: tl.constexpr, PDL: tl.constexpr):
    """out = x / rms(x) for one row [K] (one program; what precedes a projection in the step)."""
    o = tl.arange(0, BK)
    if PDL:
        gdc_wait()
    v = tl.load(x + o, mask=o < K, other=0.0).to(tl.float32)
    if PDL:
        gdc_launch_dependents()
    r = tl.rsqrt(tl.sum(v * v, 0) / K + 1e-6)
    tl.store(out + o, (v * r).to(out.dtype.element_ty), mask=o < K)


@triton.jit
def gemv_kernel(x, w, y, N, K: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, PDL: tl.constexpr):
    """y[n] = Σ_k w[n, k]·x[k] for BN rows of w (nn.Linear's [N, K]); the weight tile is loaded before the wait."""
    o_n = tl.program_id(0) * BN + tl.arange(0, BN)
    o_k = tl.arange(0, BK)
    m = (o_n[:, None] < N) & (o_k[None, :] < K)
    b_w = tl.load(w + o_n[:, None] * K + o_k[None, :], mask=m, other=0.0)
    if PDL:
        gdc_wait()
    b_x = tl.load(x + o_k, mask=o_k < K, other=0.0).to(tl.float32)
    acc = tl.sum(b_w.to(tl.float32) * b_x[None, :], 1)
    tl.store(y + o_n, acc.to(y.dtype.element_ty), mask=o_n < N)


SHAPES = {"conv in": (2048, 1024), "out proj": (1024, 1024), "mlp up": (5504, 1024), "mlp down": (1024, 2752),
          "window qkv": (3072, 1024)}  # fmt: skip


def main() -> None:
    bw = copy_bandwidth()
    print(f"copy bandwidth {bw:.0f} GB/s", flush=True)
    n_sets = 20
    for name, (N, K) in SHAPES.items():
        BK = triton.next_power_of_2(K)
        xs = [torch.randn(1, K, device="cuda", dtype=torch.bfloat16) for _ in range(n_sets)]
        xn = [torch.empty(1, K, device="cuda", dtype=torch.bfloat16) for _ in range(n_sets)]
        ws = [torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * K**-0.5 for _ in range(n_sets)]
        ys = [torch.empty(1, N, device="cuda", dtype=torch.bfloat16) for _ in range(n_sets)]
        wbytes = N * K * 2

        def norm(i, pdl):
            kw = dict(launch_pdl=True) if pdl else {}
            norm_kernel[(1,)](xs[i], xn[i], K=K, BK=BK, PDL=pdl, num_warps=4, **kw)

        def gemv(i, pdl, BN, warps):
            kw = dict(launch_pdl=True) if pdl else {}
            gemv_kernel[(triton.cdiv(N, BN),)](
                xn[i], ws[i], ys[i], N, K=K, BN=BN, BK=BK, PDL=pdl, num_warps=warps, **kw
            )

        row = {}
        row["a norm + cublas"] = graph_time_us(
            lambda i: (norm(i, False), torch.mm(xn[i], ws[i].t(), out=ys[i])), n_sets
        )
        row["b norm(pdl) + cublas"] = graph_time_us(
            lambda i: (norm(i, True), torch.mm(xn[i], ws[i].t(), out=ys[i])), n_sets
        )
        ref = F.linear(xn[0].float(), ws[0].float())
        for BN, warps in ((4, 4), (8, 4), (16, 8)):
            if BN * BK > 32768:
                continue
            norm(0, True)
            gemv(0, True, BN, warps)
            torch.cuda.synchronize()
            ref = F.linear(xn[0].float(), ws[0].float())
            err = ((ys[0].float() - ref).norm() / ref.norm()).item()
            if err > 1e-2:
                print(f"  {name} BN={BN}: rel err {err:.2e}, skipped", flush=True)
                continue
            row[f"c gemv BN={BN} w{warps}"] = graph_time_us(
                lambda i: (norm(i, True), gemv(i, False, BN, warps)), n_sets
            )
            row[f"d gemv(pdl) BN={BN} w{warps}"] = graph_time_us(
                lambda i: (norm(i, True), gemv(i, True, BN, warps)), n_sets
            )
        print(f"{name} N={N} K={K} ({wbytes / 1e6:.1f} MB): " + "  ".join(
            f"{k} {v:.2f} us ({wbytes / v / 1e3 / bw:.0%})" for k, v in row.items()), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
