"""The decode step's projections at batch 128 — cuBLAS against a split-K Triton GEMM launched with programmatic
dependent launch (PDL). Written in session 14; not in the library.

Outcome (session 15, ``results/session15/call1``, µs per norm + projection): faster than cuBLAS at 2 of 14 shapes
only (64 rows: out-projection 5.52 against 6.04, conv out-projection 7.22 against 7.42), slower at every 128-row shape
(6.58–11.91 against 6.32–8.72). On the GPU most configurations with S > 1 failed the script's check (relative error
0.02–0.2 against cuBLAS; skipped, not timed), although the interpreter's ``--check`` passes: the cross-program
reduction has a race that was not chased, since the correct configurations lost anyway. Not a candidate as it is.

Why: at batch 128 Based-360M's compiled step spends 0.76 of its 1.33 ms of kernels in 146 cuBLAS GEMMs of M = 128
(session 13's profile), 5.2 µs each for 0.4–11 MB of weights. Session 13's tensor-core tile with PDL (one program per
BN columns walking all of K, ``results/session13/decode_gemm_pdl.py``) lost to cuBLAS at every shape: too few
programs, each reading all of x. Here program ``(n, s)`` owns columns ``[n·BN, (n+1)·BN)`` and the ``s``-th of S
slices of K: N/BN · S programs, each reading ``x[:, slice]`` and ``W[cols, slice]``. Its first weight chunk is
loaded before ``griddepcontrol.wait`` (weights never depend on the kernel before). Partial tiles go to an fp32
buffer by atomic adds; the last program of a column block to arrive (a counter, as the linear-attention step's z
hand-off) converts the sum to the output dtype, adds the bias, and zeroes the buffer and the counter for the next
call. Each link of the timed chain is an RMSNorm-like kernel with PDL and then the projection, over 20 cold weight
sets in one CUDA graph, as in session 13's script.

    PYTHONPATH=$PWD python3 benchmarks/decode_gemm_splitk.py [M ...] [--out DIR]
    TRITON_INTERPRET=1 PYTHONPATH=$PWD python3 benchmarks/decode_gemm_splitk.py --check   # the logic, on the CPU
"""

# ruff: noqa: B023  (the lambdas run within their loop iteration)
import argparse
import itertools
import json
import os
import pathlib
import sys

import torch
import triton
import triton.language as tl

from mixerzoo.kernels._launch import gdc_launch_dependents, gdc_wait

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def splitk_gemm_kernel(
    p_x, p_w, p_b, p_acc, p_count, p_y, M, N, K, KS,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, NK: tl.constexpr, S: tl.constexpr,
    HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr, PDL: tl.constexpr,
):  # fmt: skip
    """Columns ``o_n`` of ``y = x·Wᵀ (+ b)`` over the K slice ``[s·KS, (s+1)·KS)`` (NK chunks of BK): x ``[M, K]``,
    W ``[N, K]`` (nn.Linear's layout), y ``[M, N]``, all row-major; ``p_acc`` an fp32 ``[M, N]`` of zeros and
    ``p_count`` an int32 per column block, zero between calls."""
    i_n, i_s = tl.program_id(0), tl.program_id(1)
    o_n = i_n * BN + tl.arange(0, BN)
    o_m = tl.arange(0, BM)
    o_k = i_s * KS + tl.arange(0, BK)
    k_end = tl.minimum(K, (i_s + 1) * KS)
    m_n, m_m = o_n < N, o_m < M
    p_wn = p_w + o_n[:, None].to(tl.int64) * K
    p_xm = p_x + o_m[:, None].to(tl.int64) * K
    b_w = tl.load(p_wn + o_k[None, :], mask=m_n[:, None] & (o_k[None, :] < k_end), other=0.0)
    if PDL:
        gdc_wait()
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for j in range(NK):
        o_kj = o_k + j * BK
        b_x = tl.load(p_xm + o_kj[None, :], mask=m_m[:, None] & (o_kj[None, :] < k_end), other=0.0)
        if PRECISION == "interp":  # the interpreter's bf16 dot is wrong (triton 3.6): fp32 operands
            acc = tl.dot(b_x.to(tl.float32), tl.trans(b_w).to(tl.float32), acc, input_precision="ieee")
        else:
            acc = tl.dot(b_x, tl.trans(b_w), acc, input_precision=PRECISION)
        o_kn = o_kj + BK  # the next chunk's weights (none past the slice: masked)
        b_w = tl.load(p_wn + o_kn[None, :], mask=m_n[:, None] & (o_kn[None, :] < k_end), other=0.0)
    if PDL:
        gdc_launch_dependents()
    m_tile = m_m[:, None] & m_n[None, :]
    if S == 1:
        _store_output(acc, p_b, p_y, o_m, o_n, m_n, m_tile, N, HAS_BIAS)
    else:
        p_tile = p_acc + o_m[:, None].to(tl.int64) * N + o_n[None, :]
        tl.atomic_add(p_tile, acc, mask=m_tile, sem="relaxed")
        # release: this program's adds are performed before its arrival; acquire: the last arrival sees every add
        if tl.atomic_add(p_count + i_n, 1, sem="acq_rel") == S - 1:
            total = tl.load(p_tile, mask=m_tile, other=0.0, cache_modifier=".cg")
            tl.store(p_tile, tl.zeros((BM, BN), dtype=tl.float32), mask=m_tile)
            tl.atomic_xchg(p_count + i_n, 0, sem="relaxed")
            _store_output(total, p_b, p_y, o_m, o_n, m_n, m_tile, N, HAS_BIAS)


@triton.jit
def _store_output(total, p_b, p_y, o_m, o_n, m_n, m_tile, N, HAS_BIAS: tl.constexpr):
    """y[o_m, o_n] = total (+ bias), in y's dtype."""
    if HAS_BIAS:
        total += tl.load(p_b + o_n, mask=m_n, other=0.0).to(tl.float32)[None, :]
    p_ym = p_y + o_m[:, None].to(tl.int64) * N
    tl.store(p_ym + o_n[None, :], total.to(p_y.dtype.element_ty), mask=m_tile)


@triton.jit
def norm_kernel(x, out, K: tl.constexpr, BK: tl.constexpr, PDL: tl.constexpr):
    """out[m] = x[m] / rms(x[m]), one program per row (what precedes a projection in the step; inductor's kernels
    wait before their first read and let the next kernel launch after their last load)."""
    o = tl.program_id(0) * K + tl.arange(0, BK)
    m = tl.arange(0, BK) < K
    if PDL:
        gdc_wait()
    v = tl.load(x + o, mask=m, other=0.0).to(tl.float32)
    if PDL:
        gdc_launch_dependents()
    r = tl.rsqrt(tl.sum(v * v, 0) / K + 1e-6)
    tl.store(out + o, (v * r).to(out.dtype.element_ty), mask=m)


class SplitK:
    """``y = x·Wᵀ (+ b)`` for one shape with the split-K kernel; owns its fp32 buffer and counters."""

    def __init__(self, M: int, N: int, K: int, BN: int, BK: int, S: int, device, stages: int = 3, warps: int = 4):
        self.M, self.N, self.K, self.BN, self.BK = M, N, K, BN, BK
        self.KS = triton.cdiv(triton.cdiv(K, S), BK) * BK  # each slice a whole number of BK chunks
        self.S = triton.cdiv(K, self.KS)  # S or fewer: every slice non-empty
        self.BM = max(16, triton.next_power_of_2(M))
        self.acc = torch.zeros(M, N, dtype=torch.float32, device=device)
        self.count = torch.zeros(triton.cdiv(N, BN), dtype=torch.int32, device=device)
        self.stages, self.warps = stages, warps

    def __call__(self, x, w, y, b=None, pdl: bool = True):
        on_gpu = x.is_cuda and not INTERPRET
        kw = dict(launch_pdl=True, num_stages=self.stages) if pdl and on_gpu else {}
        splitk_gemm_kernel[(triton.cdiv(self.N, self.BN), self.S)](
            x, w, b if b is not None else w, self.acc, self.count, y, self.M, self.N, self.K, self.KS,
            BM=self.BM, BN=self.BN, BK=self.BK, NK=self.KS // self.BK, S=self.S, HAS_BIAS=b is not None,
            PRECISION="tf32" if on_gpu else "interp", PDL=pdl and on_gpu, num_warps=self.warps, **kw,
        )  # fmt: skip
        return y


def check() -> None:
    """The kernel against fp64 on the CPU under the interpreter: ragged N, K and slices, with and without a bias,
    twice in a row (the buffer and counters must be back at zero), S = 1 too."""
    torch.manual_seed(0)
    for M, N, K, BN, BK, S, bias in [(5, 37, 70, 16, 16, 3, True), (16, 32, 64, 16, 16, 4, False),
                                     (3, 20, 33, 16, 16, 1, True), (9, 50, 100, 32, 16, 5, False)]:  # fmt: skip
        op = SplitK(M, N, K, BN, BK, S, "cpu")
        for _ in range(2):
            x, w = torch.randn(M, K), torch.randn(N, K) * K**-0.5
            b = torch.randn(N) if bias else None
            y = op(x, w, torch.empty(M, N), b)
            ref = x.double() @ w.double().T + (b.double() if bias else 0)
            err = ((y.double() - ref).norm() / ref.norm()).item()
            assert err < 1e-5, f"M={M} N={N} K={K} BN={BN} BK={BK} S={S}: relative error {err:.2e}"
            assert not op.acc.any() and not op.count.any(), "buffer or counters not reset"
        print(f"ok: M={M} N={N} K={K} BN={BN} BK={BK} S={op.S} bias={bias}")


SHAPES = {"conv in": (4096, 1024), "conv out": (1024, 2048), "out proj": (1024, 1024), "mlp up": (5504, 1024),
          "mlp down": (1024, 2752), "window qkv": (3072, 1024), "la qkv": (1536, 1024)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="*", type=int, default=[128, 64])
    parser.add_argument("--check", action="store_true", help="check the kernel on the CPU (TRITON_INTERPRET=1)")
    parser.add_argument("--out", default=None, help="write decode_gemm_splitk.json here")
    args = parser.parse_args()
    if args.check:
        check()
        return
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from _common import copy_bandwidth, graph_time_us, projection_sets

    bw = copy_bandwidth()
    print(f"copy bandwidth {bw:.0f} GB/s", flush=True)
    n_sets, results = 20, []
    for M, (name, (N, K)) in itertools.product(args.rows, SHAPES.items()):
        xs, xn, ws, ys = projection_sets(M, N, K, n_sets)
        wbytes = N * K * 2
        BKn = triton.next_power_of_2(K)

        def norm(i):
            norm_kernel[(M,)](xs[i], xn[i], K=K, BK=BKn, PDL=True, num_warps=4, launch_pdl=True)

        row = {"M": M, "shape": name, "N": N, "K": K}
        row["cublas"] = graph_time_us(lambda i: (norm(i), torch.mm(xn[i], ws[i].t(), out=ys[i])), n_sets)
        for BN, BK, S in itertools.product((32, 64, 128), (64, 128), (1, 2, 4, 8)):
            if triton.cdiv(K, S) < BK or (BN == 128 and BK == 128):
                continue
            op = SplitK(M, N, K, BN, BK, S, "cuda")
            norm(0)
            op(xn[0], ws[0], ys[0])
            torch.cuda.synchronize()
            ref = xn[0].float() @ ws[0].float().t()
            err = ((ys[0].float() - ref).norm() / ref.norm()).item()
            key = f"splitk {BN}/{BK}/{op.S}"
            if err > 1e-2:
                print(f"  M={M} {name} {key}: relative error {err:.2e}, skipped", flush=True)
                continue
            row[key] = graph_time_us(lambda i: (norm(i), op(xn[i], ws[i], ys[i])), n_sets)
        best = min((k for k in row if k.startswith("splitk")), key=row.get)
        row["best"] = best
        results.append(row)
        print(
            f"M={M} {name} N={N} K={K} ({wbytes / 1e6:.1f} MB): "
            + "  ".join(f"{k} {row[k]:.2f} us ({wbytes / row[k] / 1e3 / bw:.0%})" for k in ("cublas", best)),
            flush=True,
        )
    if args.out:
        pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
        with open(pathlib.Path(args.out) / "decode_gemm_splitk.json", "w") as f:
            json.dump({"copy_GBps": bw, "rows": results}, f, indent=1)


if __name__ == "__main__":
    main()
