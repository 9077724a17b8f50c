"""Session 13: the decode step's projections at batch 2–128 — cuBLAS against ``decode_matmul_kernel`` (a
tensor-core tile over all rows, launched with programmatic dependent launch, its first weight chunk loaded before
``griddepcontrol.wait``). As session 12's ``decode_gemv_pdl.py`` for batch 1: each link of a chain is an RMSNorm-like
Triton kernel over the M rows (as inductor's with PDL: wait before its first read, ``launch_dependents`` after its
last load) and then the projection of one of Based-360M's shapes, over 20 cold weight sets in one CUDA graph; µs per
link, and the weight bytes over that time as a fraction of the copy bandwidth.

    PYTHONPATH=$PWD python3 benchmarks/results/session13/decode_gemm_pdl.py [M ...]
"""

# ruff: noqa: B023  (the lambdas run within their loop iteration)
import itertools
import json
import os
import sys

import torch
import triton
import triton.language as tl

sys.path.insert(0, "benchmarks")
from _common import copy_bandwidth, graph_time_us  # noqa: E402

from mixerzoo.kernels._launch import gdc_launch_dependents, gdc_wait  # noqa: E402


# The kernel as it was in mixerzoo.kernels.decode_linear.triton_ops at 6ec22e4, where calls 2 and 3 ran it; removed
# from the library after them (slower than cuBLAS), kept here so the measurement can be rerun.
@triton.jit
def decode_matmul_kernel(
    p_x, p_w, p_b, p_y, M, N, K,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, NK: tl.constexpr, HAS_BIAS: tl.constexpr,
    PRECISION: tl.constexpr, PDL: tl.constexpr = 0,
):  # fmt: skip
    """Tile ``[o_m, o_n]`` of ``y = x·Wᵀ (+ b)``: x ``[M, K]``, W ``[N, K]`` (nn.Linear's layout) and y ``[M, N]``, all
    row-major, over NK chunks of BK."""
    o_n = tl.program_id(0) * BN + tl.arange(0, BN)
    o_m = tl.program_id(1) * BM + tl.arange(0, BM)
    o_k = tl.arange(0, BK)
    m_n, m_m = o_n < N, o_m < M
    p_wn = p_w + o_n[:, None].to(tl.int64) * K
    p_xm = p_x + o_m[:, None].to(tl.int64) * K
    # the weights and bias never depend on the kernel before: their first loads go out before the wait
    b_w = tl.load(p_wn + o_k[None, :], mask=m_n[:, None] & (o_k[None, :] < K), other=0.0)
    if HAS_BIAS:
        b_b = tl.load(p_b + o_n, mask=m_n, other=0.0).to(tl.float32)
    if PDL > 0:
        gdc_wait()
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for j in range(NK):
        o_kj = j * BK + o_k
        b_x = tl.load(p_xm + o_kj[None, :], mask=m_m[:, None] & (o_kj[None, :] < K), other=0.0)
        if PRECISION == "interp":  # the interpreter's bf16 dot returns garbage (triton 3.6): upcast the operands
            acc = tl.dot(b_x.to(tl.float32), tl.trans(b_w).to(tl.float32), acc, input_precision="ieee")
        else:
            acc = tl.dot(b_x, tl.trans(b_w), acc, input_precision=PRECISION)
        o_kn = o_kj + BK  # the next chunk's weights (none past K: masked)
        b_w = tl.load(p_wn + o_kn[None, :], mask=m_n[:, None] & (o_kn[None, :] < K), other=0.0)
    if HAS_BIAS:
        acc += b_b[None, :]
    p_ym = p_y + o_m[:, None].to(tl.int64) * N
    tl.store(p_ym + o_n[None, :], acc.to(p_y.dtype.element_ty), mask=m_m[:, None] & m_n[None, :])


@triton.jit
def norm_kernel(x, out, K: tl.constexpr, BK: tl.constexpr):
    """out[m] = x[m] / rms(x[m]), one program per row, with PDL (what precedes a projection in the step)."""
    o = tl.program_id(0) * K + tl.arange(0, BK)
    m = tl.arange(0, BK) < K
    gdc_wait()
    v = tl.load(x + o, mask=m, other=0.0).to(tl.float32)
    gdc_launch_dependents()
    r = tl.rsqrt(tl.sum(v * v, 0) / K + 1e-6)
    tl.store(out + o, (v * r).to(out.dtype.element_ty), mask=m)


SHAPES = {"conv in": (2048, 1024), "out proj": (1024, 1024), "mlp up": (5504, 1024), "mlp down": (1024, 2752),
          "window qkv": (3072, 1024), "la q/k": (256, 1024)}  # fmt: skip


def main() -> None:
    rows = [int(a) for a in sys.argv[1:]] or [128, 64, 16]
    bw = copy_bandwidth()
    print(f"copy bandwidth {bw:.0f} GB/s", flush=True)
    n_sets, results = 20, []
    for M, (name, (N, K)) in itertools.product(rows, SHAPES.items()):
        xs = [torch.randn(M, K, device="cuda", dtype=torch.bfloat16) for _ in range(n_sets)]
        xn = [torch.empty(M, K, device="cuda", dtype=torch.bfloat16) for _ in range(n_sets)]
        ws = [torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * K**-0.5 for _ in range(n_sets)]
        ys = [torch.empty(M, N, device="cuda", dtype=torch.bfloat16) for _ in range(n_sets)]
        wbytes = N * K * 2
        BKn = triton.next_power_of_2(K)

        def norm(i):
            norm_kernel[(M,)](xs[i], xn[i], K=K, BK=BKn, num_warps=4, launch_pdl=True)

        def ours(i, BN, BK, stages, pdl=True):
            kw = dict(launch_pdl=True) if pdl else {}
            decode_matmul_kernel[(triton.cdiv(N, BN), 1)](
                xn[i], ws[i], ws[i], ys[i], M, N, K, BM=max(16, triton.next_power_of_2(M)), BN=BN, BK=BK,
                NK=triton.cdiv(K, BK), HAS_BIAS=False, PRECISION="tf32", PDL=int(pdl), num_warps=4,
                num_stages=stages, **kw,
            )  # fmt: skip

        row = {"M": M, "shape": name, "N": N, "K": K}
        row["cublas"] = graph_time_us(lambda i: (norm(i), torch.mm(xn[i], ws[i].t(), out=ys[i])), n_sets)
        for BN, BK, stages in itertools.product((16, 32, 64), (64, 128), (3, 4)):
            norm(0)
            ours(0, BN, BK, stages)
            torch.cuda.synchronize()
            ref = xn[0].float() @ ws[0].float().t()
            err = ((ys[0].float() - ref).norm() / ref.norm()).item()
            if err > 1e-2:
                print(f"  M={M} {name} BN={BN} BK={BK} s={stages}: relative error {err:.2e}, skipped", flush=True)
                continue
            row[f"ours {BN}/{BK}/{stages}"] = graph_time_us(lambda i: (norm(i), ours(i, BN, BK, stages)), n_sets)
        best = min((k for k in row if k.startswith("ours")), key=row.get)
        BN, BK, stages = (int(v) for v in best.split()[1].split("/"))
        row["ours best, no PDL"] = graph_time_us(lambda i: (norm(i), ours(i, BN, BK, stages, pdl=False)), n_sets)
        row["best"] = best
        results.append(row)
        cols = ["cublas", best, "ours 32/64/3", "ours 16/64/3", "ours best, no PDL"]
        print(f"M={M} {name} N={N} K={K} ({wbytes / 1e6:.1f} MB): " + "  ".join(
            f"{k} {row[k]:.2f} us ({wbytes / row[k] / 1e3 / bw:.0%})" for k in dict.fromkeys(cols) if k in row),
            flush=True)  # fmt: skip
    if os.environ.get("OUT"):
        with open(f"{os.environ['OUT']}/decode_gemm_pdl.json", "w") as f:
            json.dump({"copy_GBps": bw, "rows": results}, f, indent=1)


if __name__ == "__main__":
    main()
