"""The decode step's GEMMs at batch 128 (Based-360M: d_model 1024, SwiGLU hidden 2752), one at a time, timed as the
step is (a CUDA graph over 20 weight sets, so every weight comes from DRAM): cuBLAS through ``F.linear`` (what the
step uses), the same with cuBLASLt preferred, and a split-K Triton kernel written for this measurement (fp32 atomics
into a zeroed buffer, then a cast: three graph nodes). µs per GEMM and the weight bytes over that time as a fraction of
the copy bandwidth. Written in session 10: ``python3 benchmarks/results/session10/decode_gemm.py``."""

import sys

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

sys.path.insert(0, "benchmarks")
from _common import copy_bandwidth, graph_time_us  # noqa: E402


@triton.jit
def _splitk_kernel(x, w, y, N, K: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                   SPLIT: tl.constexpr):  # fmt: skip
    """``y[:, n-tile] += x[:, k-slice] @ w[n-tile, k-slice]ᵀ`` (w as nn.Linear stores it, [N, K])."""
    i_n, i_k = tl.program_id(0), tl.program_id(1)
    o_m = tl.arange(0, BM)
    o_n = i_n * BN + tl.arange(0, BN)
    m_n = o_n < N
    acc = tl.zeros([BM, BN], dtype=tl.float32)
    k_per: tl.constexpr = K // SPLIT
    for kk in range(0, k_per, BK):
        o_k = i_k * k_per + kk + tl.arange(0, BK)
        a = tl.load(x + o_m[:, None] * K + o_k[None, :])
        b = tl.load(w + o_n[:, None] * K + o_k[None, :], mask=m_n[:, None], other=0.0)
        acc += tl.dot(a, tl.trans(b))
    tl.atomic_add(y + o_m[:, None] * N + o_n[None, :], acc, mask=m_n[None, :], sem="relaxed")


def splitk(x, w, y32, out, BN, BK, SPLIT, warps):
    M, K = x.shape
    N = w.shape[0]
    y32.zero_()
    _splitk_kernel[(triton.cdiv(N, BN), SPLIT)](x, w, y32, N, K=K, BM=M, BN=BN, BK=BK, SPLIT=SPLIT, num_warps=warps)
    out.copy_(y32)


bw = copy_bandwidth()
print(f"copy bandwidth {bw:.0f} GB/s")
M = 128
SHAPES = {  # (N, K): what it is in Based-360M's step
    "conv in (u, gate)": (2048, 1024),
    "out / v proj": (1024, 1024),
    "mlp up (gate, up)": (5504, 1024),
    "mlp down": (1024, 2752),
    "window qkv": (3072, 1024),
    "taylor q or k": (256, 1024),
}
CONFIGS = [(64, 128, 4, 4), (64, 128, 8, 4), (32, 128, 8, 4), (128, 64, 4, 8), (64, 64, 8, 4), (32, 256, 4, 4)]


def measure(name: str, N: int, K: int) -> None:
    x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
    ws = [torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * K**-0.5 for _ in range(20)]
    outs = [torch.empty(M, N, device="cuda", dtype=torch.bfloat16) for _ in range(20)]
    ref = F.linear(x.float(), ws[0].float())
    wbytes = N * K * 2

    def mm(i):
        torch.mm(x, ws[i].t(), out=outs[i])

    row = {}
    torch.backends.cuda.preferred_blas_library("cublas")
    row["cublas"] = graph_time_us(mm, 20)
    try:
        torch.backends.cuda.preferred_blas_library("cublaslt")
        row["cublaslt"] = graph_time_us(mm, 20)
    except Exception as e:  # noqa: BLE001
        print("cublaslt:", type(e).__name__, str(e)[:200])
    torch.backends.cuda.preferred_blas_library("cublas")
    y32 = torch.empty(M, N, device="cuda", dtype=torch.float32)
    for cfg in CONFIGS:
        BN, BK, SPLIT, warps = cfg
        if K % (SPLIT * BK):
            continue
        try:
            splitk(x, ws[0], y32, outs[0], *cfg)
            err = ((outs[0].float() - ref).abs().max() / ref.abs().max()).item()
            if err > 2e-2:
                print(f"  {name} splitk {cfg}: rel err {err:.2e}, skipped")
                continue
            row[f"splitk{cfg}"] = graph_time_us(lambda i, c=cfg: splitk(x, ws[i], y32, outs[i], *c), 20)
        except Exception as e:  # noqa: BLE001
            print(f"  {name} splitk {cfg}: {type(e).__name__}: {str(e)[:160]}")
    best = min(row, key=row.get)
    print(
        f"{name:18s} N={N:5d} K={K:5d} {wbytes / 1e6:5.1f} MB: "
        + "  ".join(f"{k} {v:.2f} µs ({wbytes / v / 1e3 / bw:.0%})" for k, v in row.items())
        + f"  -> best {best}",
        flush=True,
    )


for name, (N, K) in SHAPES.items():
    measure(name, N, K)
