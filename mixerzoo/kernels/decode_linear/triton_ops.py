"""Triton kernel of the batch-1 decode projection (``mixerzoo.kernels.decode_linear``): ``y = W·x + b``.

One program owns BN = 4 output rows and walks K in chunks of up to 4,096, the first chunk of weights (and the bias)
loaded before ``griddepcontrol.wait`` (``_launch.STEP_PDL``): the weights never depend on the kernel before. Products
and the sum in fp32, the output in x's dtype. Registered as ``torch.ops.mixerzoo.decode_linear`` (a custom op with a
fake implementation), so ``torch.compile`` keeps it as one call in the compiled step.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from mixerzoo.kernels import _launch
from mixerzoo.kernels._checks import cdiv, interpreting, next_pow2
from mixerzoo.kernels._launch import gdc_wait
from mixerzoo.kernels.decode_linear import DTYPES

__all__ = ["decode_linear", "decode_linear_triton"]

CHUNK_BYTES = 8192  # of one weight row per chunk: BN·8 KB = 32 KB of weights per program in registers (4,096 bf16)


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


def _cfg(K: int, elem: int) -> dict:
    """BN = 4 rows per program and 4 warps (session 12, call 8: fastest of BN 4 / 8 / 16 at every shape); chunks of
    ``CHUNK_BYTES`` per weight row (16 elements under the interpreter: several chunks at small shapes)."""
    BK = min(next_pow2(K), 16 if interpreting() else CHUNK_BYTES // elem)
    return dict(BN=4, BK=BK, NK=cdiv(K, BK), num_warps=4)


def _check(x: Tensor, weight: Tensor, bias: Tensor | None) -> None:
    op = "decode_linear"
    if weight.dim() != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"{op}: x [..., K] and weight [N, K] expected, got {tuple(x.shape)} and {tuple(weight.shape)}")
    if x.numel() != weight.shape[1]:
        raise ValueError(f"{op}: one row of x expected (x.numel() == K = {weight.shape[1]}), got {tuple(x.shape)}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{op}: bias [N = {weight.shape[0]}] expected, got {tuple(bias.shape)}")
    if x.dtype not in DTYPES or weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
        raise ValueError(
            f"{op}: x, weight and bias in one of {DTYPES}, got {x.dtype}, {weight.dtype}, "
            f"{None if bias is None else bias.dtype}"
        )


@torch.library.custom_op("mixerzoo::decode_linear", mutates_args=())
def decode_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x·weightᵀ + bias`` for one row x (``[..., K]`` with one row in all), in x's dtype and shape ``[..., N]``."""
    _check(x, weight, bias)
    N, K = weight.shape
    xr, w = x.reshape(K).contiguous(), weight.contiguous()
    y = torch.empty(N, device=x.device, dtype=x.dtype)
    cfg = _cfg(K, x.element_size())
    _launch.fast(decode_linear_kernel)[(cdiv(N, cfg["BN"]),)](
        xr, w, bias if bias is not None else w, y, N, K, HAS_BIAS=bias is not None, **cfg, **_launch.pdl_kwargs(x)
    )
    return y.view(*x.shape[:-1], N)


@decode_linear.register_fake
def _(x, weight, bias):
    return x.new_empty(*x.shape[:-1], weight.shape[0])


def decode_linear_triton(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """The GEMV on any device Triton runs on (the CPU under ``TRITON_INTERPRET=1``): tests and benchmarks."""
    return torch.ops.mixerzoo.decode_linear(x, weight, bias)
