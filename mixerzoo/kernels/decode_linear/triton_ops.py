"""Triton kernel of the batch-1 decode projections (``mixerzoo.kernels.decode_linear``): ``y = W·x + b``, and the
same with the work before it fused into the loads of x.

One program owns BN = 4 output rows and walks K in chunks of up to 4,096, the first chunk of weights (and the bias)
loaded before ``griddepcontrol.wait`` (``_launch.STEP_PDL``): the weights never depend on the kernel before. Products
and the sum in fp32, the output in x's dtype. What x is (``PROLOGUE``):

- 0, ``decode_linear``: x itself.
- 1, ``decode_add_norm_linear``: ``s = x + h``, then ``RMSNorm(s)·g``, rounded as ``RMSNorm`` rounds (s, the
  normalized row and its product with g each in x's dtype). Every program computes the norm of the whole row (a few
  KB, from L2) and program 0 stores s: the residual add, the norm and the projection in one launch.
- 2 / 3, ``decode_act_linear``: ``silu(a)·b`` of u = [a, b] (the SwiGLU MLP's down-projection) or ``gelu(u)``,
  rounded as eager torch rounds them.

Registered as ``torch.ops.mixerzoo.decode_linear`` / ``decode_add_norm_linear`` / ``decode_act_linear`` (custom ops
with fake implementations), so ``torch.compile`` keeps each as one call in the compiled step.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from mixerzoo.kernels import _launch
from mixerzoo.kernels._checks import cdiv, interpreting, next_pow2
from mixerzoo.kernels._launch import gdc_wait
from mixerzoo.kernels.decode_linear import ACTIVATIONS, DTYPES

__all__ = ["decode_act_linear", "decode_add_norm_linear", "decode_linear", "decode_linear_triton"]

CHUNK_BYTES = 8192  # of one weight row per chunk: BN·8 KB = 32 KB of weights per program in registers (4,096 bf16)
PROLOGUES = {"none": 0, "add_norm": 1, "swiglu": 2, "gelu": 3}


@triton.jit
def _rounded(v, DT: tl.constexpr):
    """v (fp32) rounded to x's dtype and back: where eager torch stores an intermediate in that dtype."""
    return v.to(DT).to(tl.float32)


@triton.jit
def _x_chunk(p_x, p_h, p_g, o_k, K, r, PROLOGUE: tl.constexpr, DT: tl.constexpr):
    """Elements ``o_k`` of the projection's input, in fp32 (``PROLOGUE``: the module docstring)."""
    m = o_k < K
    a = tl.load(p_x + o_k, mask=m, other=0.0).to(tl.float32)
    if PROLOGUE == 1:
        s = _rounded(a + tl.load(p_h + o_k, mask=m, other=0.0).to(tl.float32), DT)
        g = _rounded(tl.load(p_g + o_k, mask=m, other=0.0).to(tl.float32), DT)
        a = _rounded(_rounded(s * r, DT) * g, DT)
    elif PROLOGUE == 2:
        b = tl.load(p_x + K + o_k, mask=m, other=0.0).to(tl.float32)
        a = _rounded(_rounded(a / (1.0 + tl.exp(-a)), DT) * b, DT)
    elif PROLOGUE == 3:
        a = _rounded(0.5 * a * (1.0 + tl.math.erf(a * 0.7071067811865476)), DT)
    return a


@triton.jit
def decode_linear_kernel(
    p_x, p_h, p_g, p_s, p_w, p_b, p_y, N, K, eps,
    BN: tl.constexpr, BK: tl.constexpr, NK: tl.constexpr, HAS_BIAS: tl.constexpr, PROLOGUE: tl.constexpr,
    PDL: tl.constexpr = 0,
):  # fmt: skip
    """Rows ``o_n`` of ``y = W·x (+ b)``, W ``[N, K]`` row-major (nn.Linear's layout), over NK chunks of BK; x as
    ``PROLOGUE`` makes it from ``p_x`` (and ``p_h``, ``p_g``; ``p_s`` receives ``x + h``)."""
    DT = p_y.dtype.element_ty
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
    r = 1.0
    if PROLOGUE == 1:  # the row's rms: every program reads all of x and h; program 0 stores their sum
        b_ss = tl.zeros([BK], dtype=tl.float32)
        for j in range(NK):
            o_kj = j * BK + o_k
            m_k = o_kj < K
            b_x = tl.load(p_x + o_kj, mask=m_k, other=0.0).to(tl.float32)
            b_s = _rounded(b_x + tl.load(p_h + o_kj, mask=m_k, other=0.0).to(tl.float32), DT)
            b_ss += b_s * b_s
            if tl.program_id(0) == 0:
                tl.store(p_s + o_kj, b_s.to(DT), mask=m_k)
        r = tl.rsqrt(tl.sum(b_ss, 0) / K + eps)
    acc = tl.sum(b_w.to(tl.float32) * _x_chunk(p_x, p_h, p_g, o_k, K, r, PROLOGUE, DT)[None, :], 1)
    for j in range(1, NK):
        o_kj = j * BK + o_k
        b_w = tl.load(p_wn + o_kj[None, :], mask=m_n[:, None] & (o_kj[None, :] < K), other=0.0)
        acc += tl.sum(b_w.to(tl.float32) * _x_chunk(p_x, p_h, p_g, o_kj, K, r, PROLOGUE, DT)[None, :], 1)
    if HAS_BIAS:
        acc += b_b
    tl.store(p_y + o_n, acc.to(DT), mask=m_n)


def _cfg(K: int, elem: int) -> dict:
    """BN = 4 rows per program and 4 warps (session 12, call 8: fastest of BN 4 / 8 / 16 at every shape); chunks of
    ``CHUNK_BYTES`` per weight row (16 elements under the interpreter: several chunks at small shapes)."""
    BK = min(next_pow2(K), 16 if interpreting() else CHUNK_BYTES // elem)
    return dict(BN=4, BK=BK, NK=cdiv(K, BK), num_warps=4)


def _check(op: str, x: Tensor, weight: Tensor, bias: Tensor | None, width: int = 1, tensors: dict | None = None):
    """x holds one row of ``width``·K elements (K = weight's columns); the bias is ``[N]``; every tensor in one dtype
    of ``DTYPES`` (``tensors``: the op's others, by name, each of K elements)."""
    if weight.dim() != 2 or x.shape[-1] != width * weight.shape[1]:
        raise ValueError(
            f"{op}: x [..., {width if width > 1 else ''}K] and weight [N, K] expected, "
            f"got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    if x.numel() != x.shape[-1]:
        raise ValueError(f"{op}: one row of x expected (x.numel() == x.shape[-1]), got {tuple(x.shape)}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{op}: bias [N = {weight.shape[0]}] expected, got {tuple(bias.shape)}")
    others = {"weight": weight, "bias": bias, **(tensors or {})}
    for name, t in (tensors or {}).items():
        if t.numel() != weight.shape[1]:
            raise ValueError(f"{op}: {name} of K = {weight.shape[1]} elements expected, got {tuple(t.shape)}")
    if x.dtype not in DTYPES or any(t is not None and t.dtype != x.dtype for t in others.values()):
        got = ", ".join(f"{n} {None if t is None else t.dtype}" for n, t in {"x": x, **others}.items())
        raise ValueError(f"{op}: every tensor in one of {DTYPES}, got {got}")


def _launch_gemv(x, h, g, s, weight, bias, eps: float, prologue: str) -> Tensor:
    """y ``[N]`` = weight · (x as ``prologue`` makes it) + bias, on x's device, in x's dtype."""
    N, K = weight.shape
    w = weight.contiguous()
    y = torch.empty(N, device=x.device, dtype=x.dtype)
    cfg = _cfg(K, x.element_size())
    _launch.fast(decode_linear_kernel)[(cdiv(N, cfg["BN"]),)](
        x, h, g, s, w, bias if bias is not None else w, y, N, K, eps, HAS_BIAS=bias is not None,
        PROLOGUE=PROLOGUES[prologue], **cfg, **_launch.pdl_kwargs(x),
    )  # fmt: skip
    return y


@torch.library.custom_op("mixerzoo::decode_linear", mutates_args=())
def decode_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x·weightᵀ + bias`` for one row x (``[..., K]`` with one row in all), in x's dtype and shape ``[..., N]``."""
    _check("decode_linear", x, weight, bias)
    xr = x.reshape(-1).contiguous()
    y = _launch_gemv(xr, xr, xr, xr, weight, bias, 0.0, "none")
    return y.view(*x.shape[:-1], weight.shape[0])


@decode_linear.register_fake
def _(x, weight, bias):
    return x.new_empty(*x.shape[:-1], weight.shape[0])


@torch.library.custom_op("mixerzoo::decode_add_norm_linear", mutates_args=())
def decode_add_norm_linear(
    x: Tensor, h: Tensor, norm_weight: Tensor, eps: float, weight: Tensor, bias: Tensor | None
) -> tuple[Tensor, Tensor]:
    """``(s, y)``: ``s = x + h`` and ``y = weight · (RMSNorm(s) · norm_weight) + bias``, for one row x and h
    (``[..., K]``), s in x's shape, y ``[..., N]``; RMSNorm as ``models.block.RMSNorm`` computes it."""
    _check("decode_add_norm_linear", x, weight, bias, tensors={"h": h, "norm_weight": norm_weight})
    if h.shape != x.shape:
        raise ValueError(
            f"decode_add_norm_linear: x and h of one shape expected, got {tuple(x.shape)}, {tuple(h.shape)}"
        )
    xr, hr, g = x.reshape(-1).contiguous(), h.reshape(-1).contiguous(), norm_weight.reshape(-1).contiguous()
    s = torch.empty_like(xr)
    y = _launch_gemv(xr, hr, g, s, weight, bias, float(eps), "add_norm")
    return s.view(x.shape), y.view(*x.shape[:-1], weight.shape[0])


@decode_add_norm_linear.register_fake
def _(x, h, norm_weight, eps, weight, bias):
    return torch.empty_like(x), x.new_empty(*x.shape[:-1], weight.shape[0])


@torch.library.custom_op("mixerzoo::decode_act_linear", mutates_args=())
def decode_act_linear(u: Tensor, act: str, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``weight · act(u) + bias`` for one row u: ``act`` ``"swiglu"`` (u = [a, b] of 2K elements: ``silu(a)·b``) or
    ``"gelu"`` (u of K elements); in u's dtype, shape ``[..., N]``."""
    if act not in ACTIVATIONS:
        raise ValueError(f"decode_act_linear: act must be one of {ACTIVATIONS}, got {act!r}")
    _check("decode_act_linear", u, weight, bias, width=2 if act == "swiglu" else 1)
    ur = u.reshape(-1).contiguous()
    y = _launch_gemv(ur, ur, ur, ur, weight, bias, 0.0, act)
    return y.view(*u.shape[:-1], weight.shape[0])


@decode_act_linear.register_fake
def _(u, act, weight, bias):
    return u.new_empty(*u.shape[:-1], weight.shape[0])


def decode_linear_triton(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """The GEMV on any device Triton runs on (the CPU under ``TRITON_INTERPRET=1``): tests and benchmarks."""
    return torch.ops.mixerzoo.decode_linear(x, weight, bias)
