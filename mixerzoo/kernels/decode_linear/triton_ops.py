"""Triton kernels of the decode step's projections (``mixerzoo.kernels.decode_linear``): ``y = x·Wᵀ + b`` for a
few rows of x.

- One row (batch 1), ``decode_linear_kernel``: a GEMV. One program owns BN = 4 output columns and walks K in chunks of
  up to 4,096, products and sums in fp32 on the CUDA cores.
- 2 to ``MAX_ROWS`` rows, ``decode_matmul_kernel``: one program owns all rows (up to BM = 128) and BN columns, and
  walks K in chunks of BK with ``tl.dot`` (tensor cores; fp32 inputs in IEEE fp32, as ``F.linear``). BN is the
  widest of 64 / 32 / 16 that still gives ``ROWS_MIN_PROGRAMS`` programs: at these sizes the weights are the bytes, and
  few programs cannot pull them at full bandwidth.

Both load their first chunk of weights (and the bias) before ``griddepcontrol.wait`` (``_launch.STEP_PDL``): the
weights never depend on the kernel before, so those reads overlap its end. Sums in fp32, the output in x's dtype.
Registered as ``torch.ops.mixerzoo.decode_linear`` (a custom op with a fake implementation), so ``torch.compile`` keeps
it as one call in the compiled step.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from mixerzoo.kernels import _launch
from mixerzoo.kernels._checks import cdiv, interpreting, next_pow2
from mixerzoo.kernels._launch import gdc_wait
from mixerzoo.kernels.decode_linear import DTYPES, MAX_ROWS

__all__ = ["decode_linear", "decode_linear_triton"]

CHUNK_BYTES = 8192  # of one weight row per chunk: BN·8 KB = 32 KB of weights per program in registers (4,096 bf16)
ROWS_BK = 64  # decode_matmul_kernel's chunk of K
ROWS_STAGES = 3  # its software-pipelining depth
ROWS_MIN_PROGRAMS = 128  # its BN: the widest of 64 / 32 / 16 with at least this many programs (16 if none has)


@triton.jit
def decode_linear_kernel(
    p_x, p_w, p_b, p_y, N, K,
    BN: tl.constexpr, BK: tl.constexpr, NK: tl.constexpr, HAS_BIAS: tl.constexpr, PDL: tl.constexpr = 0,
):  # fmt: skip
    """Rows ``o_n`` of ``y = W·x (+ b)``, W ``[N, K]`` row-major (nn.Linear's layout), over NK chunks of BK."""
    o_n = tl.program_id(0) * BN + tl.arange(0, BN)
    m_n = o_n < N
    o_k = tl.arange(0, BK)
    p_wn = p_w + o_n[:, None].to(tl.int64) * K
    # the weights and bias never depend on the kernel before: their first loads go out before the wait
    b_w = tl.load(p_wn + o_k[None, :], mask=m_n[:, None] & (o_k[None, :] < K), other=0.0)
    if HAS_BIAS:
        b_b = tl.load(p_b + o_n, mask=m_n, other=0.0).to(tl.float32)
    if PDL > 0:
        gdc_wait()
    b_x = tl.load(p_x + o_k, mask=o_k < K, other=0.0).to(tl.float32)
    acc = tl.sum(b_w.to(tl.float32) * b_x[None, :], 1)
    for j in range(1, NK):
        o_kj = j * BK + o_k
        b_w = tl.load(p_wn + o_kj[None, :], mask=m_n[:, None] & (o_kj[None, :] < K), other=0.0)
        b_x = tl.load(p_x + o_kj, mask=o_kj < K, other=0.0).to(tl.float32)
        acc += tl.sum(b_w.to(tl.float32) * b_x[None, :], 1)
    if HAS_BIAS:
        acc += b_b
    tl.store(p_y + o_n, acc.to(p_y.dtype.element_ty), mask=m_n)


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


def _rows_cfg(M: int, N: int, K: int, dtype: torch.dtype) -> dict:
    """decode_matmul_kernel's tiles: BM = all rows (16 at least, ``tl.dot``'s smallest), BN the widest of 64 / 32 / 16
    with ``ROWS_MIN_PROGRAMS`` programs, BK = ``ROWS_BK`` (16 under the interpreter: several chunks at small K)."""
    BM = max(16, next_pow2(M))
    BN = next((bn for bn in (64, 32) if cdiv(N, bn) >= ROWS_MIN_PROGRAMS), 16)
    BK = 16 if interpreting() else ROWS_BK
    precision = "interp" if interpreting() else "ieee" if dtype == torch.float32 else "tf32"  # tf32: unused at 16 bit
    stages = {} if interpreting() else dict(num_stages=ROWS_STAGES)
    return dict(BM=BM, BN=BN, BK=BK, NK=cdiv(K, BK), PRECISION=precision, num_warps=4, **stages)


def _cfg(K: int, elem: int) -> dict:
    """BN = 4 rows per program and 4 warps (session 12, call 8: fastest of BN 4 / 8 / 16 at every shape); chunks of
    ``CHUNK_BYTES`` per weight row (16 elements under the interpreter: several chunks at small shapes)."""
    BK = min(next_pow2(K), 16 if interpreting() else CHUNK_BYTES // elem)
    return dict(BN=4, BK=BK, NK=cdiv(K, BK), num_warps=4)


def _check(x: Tensor, weight: Tensor, bias: Tensor | None) -> None:
    op = "decode_linear"
    if weight.dim() != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"{op}: x [..., K] and weight [N, K] expected, got {tuple(x.shape)} and {tuple(weight.shape)}")
    if x.numel() > MAX_ROWS * weight.shape[1] or x.numel() == 0:
        raise ValueError(
            f"{op}: 1 to {MAX_ROWS} rows of x expected (K = {weight.shape[1]}), got {tuple(x.shape)}; use F.linear for "
            "more"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{op}: bias [N = {weight.shape[0]}] expected, got {tuple(bias.shape)}")
    if x.dtype not in DTYPES or weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
        raise ValueError(
            f"{op}: x, weight and bias in one of {DTYPES}, got {x.dtype}, {weight.dtype}, "
            f"{None if bias is None else bias.dtype}"
        )


@torch.library.custom_op("mixerzoo::decode_linear", mutates_args=())
def decode_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x·weightᵀ + bias`` for 1 to ``MAX_ROWS`` rows of x (``[..., K]``), in x's dtype and shape ``[..., N]``."""
    _check(x, weight, bias)
    N, K = weight.shape
    M = x.numel() // K
    xr, w = x.reshape(M, K).contiguous(), weight.contiguous()
    b = bias if bias is not None else w  # never read without HAS_BIAS
    y = torch.empty(M, N, device=x.device, dtype=x.dtype)
    if M == 1:
        cfg = _cfg(K, x.element_size())
        _launch.fast(decode_linear_kernel)[(cdiv(N, cfg["BN"]),)](
            xr, w, b, y, N, K, HAS_BIAS=bias is not None, **cfg, **_launch.pdl_kwargs(x)
        )
    else:
        cfg = _rows_cfg(M, N, K, x.dtype)
        _launch.fast(decode_matmul_kernel)[(cdiv(N, cfg["BN"]), cdiv(M, cfg["BM"]))](
            xr, w, b, y, M, N, K, HAS_BIAS=bias is not None, **cfg, **_launch.pdl_kwargs(x)
        )
    return y.view(*x.shape[:-1], N)


@decode_linear.register_fake
def _(x, weight, bias):
    return x.new_empty(*x.shape[:-1], weight.shape[0])


def decode_linear_triton(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """The decode projection on any device Triton runs on (the CPU under ``TRITON_INTERPRET=1``): tests and
    benchmarks."""
    return torch.ops.mixerzoo.decode_linear(x, weight, bias)
