"""Triton kernels for the gated short convolution: ``y = silu(causal_dwconv_K(u) + bias) ⊙ gate``.

Legend: ``u, gate, y [B, L, C]`` (channels contiguous), ``weight [C, K]`` (tap K−1 multiplies the
current token), ``bias [C]``, ``state [B, K−1, C]`` = the K−1 inputs before the first token, oldest
first. Think of ``x = [state, u]`` (length K−1+L): output t reads ``x[t … t+K−1]``, i.e. the inputs
``u[t−K+1 … t]``; ``u`` index ``i < 0`` is ``state[K−1+i]`` (zeros without a state).

Every op is memory-bound (K multiply-adds per element): one program owns a ``[BT, BC]`` tile of
(time, channel) and reads the K−1 earlier rows through the cache, so HBM sees u and gate once and
y once. The backward recomputes the convolution (nothing but the inputs is saved) and builds
``du[t] = Σ_k w[k]·dz[t+K−1−k]`` from K shifted recomputations of ``dz`` (no dz round trip through
HBM); per-tile partial sums of ``dweight``/``dbias`` go to an fp32 buffer that torch reduces
(deterministic, no atomics). The decode step updates the state in place (no host sync: capturable).

Registered as ``torch.ops.mixerzoo.gated_short_conv_fwd/bwd/step`` (``torch.library.custom_op``
with fake and autograd registrations), so ``torch.compile`` traces through them.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

from mixerzoo.kernels import _launch
from mixerzoo.kernels._checks import cdiv, interpreting, next_pow2, unit_stride_rows
from mixerzoo.kernels._launch import gdc_launch_dependents, gdc_wait

__all__ = ["gated_short_conv_step_triton", "gated_short_conv_triton"]


@triton.jit
def _load_x(p_u, p_h0, i_b, o_i, o_c, m_c, L, C, sbu, stu, K: tl.constexpr, HAS_H0: tl.constexpr):
    """``x`` at u-index rows ``o_i`` (may be < 0: the state, or zeros) as fp32 ``[BT, BC]``; u's batch and time
    strides ``sbu``, ``stu`` (its channels contiguous)."""
    m_u = (o_i[:, None] >= 0) & (o_i[:, None] < L) & m_c[None, :]
    o_u = i_b.to(tl.int64) * sbu + o_i[:, None].to(tl.int64) * stu + o_c[None, :]
    b_x = tl.load(p_u + o_u, mask=m_u, other=0.0).to(tl.float32)
    if HAS_H0:
        m_h = (o_i[:, None] < 0) & (o_i[:, None] >= -(K - 1)) & m_c[None, :]
        o_h = (i_b * (K - 1) + K - 1 + o_i[:, None]).to(tl.int64) * C + o_c[None, :]
        b_x += tl.load(p_h0 + o_h, mask=m_h, other=0.0).to(tl.float32)
    return b_x


@triton.jit
def _conv_at(p_u, p_h0, p_w, i_b, o_t, o_c, m_c, L, C, sbu, stu, b_bias, K: tl.constexpr, HAS_H0: tl.constexpr):
    """Pre-activation ``z[t] = bias + Σ_k w[k]·u[t−K+1+k]`` for rows ``o_t`` (fp32 ``[BT, BC]``)."""
    b_z = tl.zeros([o_t.shape[0], o_c.shape[0]], dtype=tl.float32) + b_bias[None, :]
    for k in tl.static_range(K):
        b_w = tl.load(p_w + o_c * K + k, mask=m_c, other=0.0).to(tl.float32)  # [BC]
        b_z += b_w[None, :] * _load_x(p_u, p_h0, i_b, o_t - (K - 1) + k, o_c, m_c, L, C, sbu, stu, K, HAS_H0)
    return b_z


LOG2E = tl.constexpr(1.4426950408889634)


@triton.jit
def _silu_gate(b_z, b_g, FAST: tl.constexpr):
    """``silu(z)·g`` in fp32. ``FAST``: the sigmoid's reciprocal as ``div.full`` (approximate, ≤ 2 ulp) of
    ``1 + 2^(−z·log2 e)`` instead of ``tl.sigmoid``'s IEEE division and its range checks."""
    if FAST:
        return tl.fdiv(b_z, 1.0 + tl.exp2(-b_z * LOG2E), ieee_rounding=False) * b_g
    else:
        return b_z * tl.sigmoid(b_z) * b_g


@triton.jit
def _silu_gate_tanh(b_z, b_g):
    """``silu(z)·g = h·(1 + tanh h)·g`` with ``h = z/2``: one ``tanh.approx.f32`` (one MUFU op per element, where
    ``_silu_gate``'s FAST form issues two: ex2 and the reciprocal). tanh.approx's error (about 2^−11, absolute near
    ±1, so about |h|·2^−11 where silu(z) is near 0) is below bf16's rounding of O(1) values: bf16 outputs only
    (``FWD_TANH``), and never under the interpreter (inline PTX)."""
    b_h = 0.5 * b_z
    b_t = tl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=f,f", [b_h], dtype=tl.float32, is_pure=True, pack=1)
    return (b_h * b_t + b_h) * b_g


@triton.jit
def gated_short_conv_fwd_kernel(
    p_u, p_g, p_w, p_bias, p_h0, p_y, p_ht, L, C, sbu, stu, sbg, stg,
    K: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, NT: tl.constexpr, HAS_BIAS: tl.constexpr,
    HAS_H0: tl.constexpr, FAST: tl.constexpr, TANH: tl.constexpr = False,
):  # fmt: skip
    """One program: channels ``o_c`` of sequence i_b over NT consecutive ``BT``-row tiles (rows
    ``i_t·NT·BT …``); the K−1 halo rows of each tile were loaded by the tile before it (L1 hits). Channel
    blocks are the fastest grid axis, so neighbouring programs read neighbouring bytes of the same rows. u and gate
    are read through their batch and time strides (views of one projection need no copy); y is contiguous.

    ``FAST`` (``FWD_FAST``): a tile with every row and channel in range and no state rows in its halo takes an
    unmasked path with int64 bases per tile and int32 offsets inside it, and the approximate sigmoid reciprocal
    (``_silu_gate``); other tiles take the general path. Host: only when ``BT·stride`` fits in int32."""
    i_c, i_t, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_c = i_c * BC + tl.arange(0, BC)
    m_c = o_c < C
    if HAS_BIAS:
        b_bias = tl.load(p_bias + o_c, mask=m_c, other=0.0).to(tl.float32)
    else:
        b_bias = tl.zeros([BC], dtype=tl.float32)
    r_t = tl.arange(0, BT)
    for j in range(NT):
        t0 = (i_t * NT + j) * BT
        if FAST and (t0 >= K - 1) and (t0 + BT <= L) and (i_c * BC + BC <= C):
            # interior tile: no masks; one int64 base per tensor, int32 offsets within the tile
            p_ut = p_u + i_b.to(tl.int64) * sbu + t0.to(tl.int64) * stu + o_c[None, :]
            b_z = tl.zeros([BT, BC], dtype=tl.float32) + b_bias[None, :]
            for k in tl.static_range(K):
                b_w = tl.load(p_w + o_c * K + k).to(tl.float32)
                b_z += b_w[None, :] * tl.load(p_ut + (r_t[:, None] + (k - (K - 1))) * stu).to(tl.float32)
            p_gt = p_g + i_b.to(tl.int64) * sbg + t0.to(tl.int64) * stg
            b_g = tl.load(p_gt + r_t[:, None] * stg + o_c[None, :]).to(tl.float32)
            p_yt = p_y + (i_b.to(tl.int64) * L + t0) * C
            if TANH:
                b_y = _silu_gate_tanh(b_z, b_g)
            else:
                b_y = _silu_gate(b_z, b_g, True)
            tl.store(p_yt + r_t[:, None] * C + o_c[None, :], b_y.to(p_y.dtype.element_ty))
        else:
            o_t = t0 + r_t
            m_tc = (o_t[:, None] < L) & m_c[None, :]
            o_y = (i_b * L + o_t[:, None]).to(tl.int64) * C + o_c[None, :]
            o_g = i_b.to(tl.int64) * sbg + o_t[:, None].to(tl.int64) * stg + o_c[None, :]
            b_g = tl.load(p_g + o_g, mask=m_tc, other=0.0).to(tl.float32)
            b_z = _conv_at(p_u, p_h0, p_w, i_b, o_t, o_c, m_c, L, C, sbu, stu, b_bias, K, HAS_H0)
            b_y = _silu_gate(b_z, b_g, FAST)
            tl.store(p_y + o_y, b_y.to(p_y.dtype.element_ty), mask=m_tc)
    if K > 1:
        if i_t == tl.num_programs(1) - 1:  # the final state: x rows L−K+1 … L−1 in u-index
            for r in tl.static_range(K - 1):
                o_r = tl.full([1], L - K + 1 + r, tl.int32)
                b_s = _load_x(p_u, p_h0, i_b, o_r, o_c, m_c, L, C, sbu, stu, K, HAS_H0)
                o_s = (i_b * (K - 1) + r).to(tl.int64) * C + o_c
                tl.store(p_ht + o_s[None, :], b_s.to(p_ht.dtype.element_ty), mask=m_c[None, :])


@triton.jit
def gated_short_conv_bwd_kernel(
    p_u, p_g, p_w, p_bias, p_h0, p_dy, p_dht, p_du, p_dg, p_dh0, p_dwp, p_dbp, L, C, sbu, stu, sbg, stg,
    K: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr,
    HAS_DHT: tl.constexpr,
):  # fmt: skip
    """Rows in x-space: with a state the program rows start at u-index −(K−1) (those rows are the state's grads).
    u and gate through their strides (as the forward); dy, du and dgate contiguous."""
    i_t, i_c, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    if HAS_H0:
        o_i = i_t * BT + tl.arange(0, BT) - (K - 1)
    else:
        o_i = i_t * BT + tl.arange(0, BT)
    o_c = i_c * BC + tl.arange(0, BC)
    m_c = o_c < C
    if HAS_BIAS:
        b_bias = tl.load(p_bias + o_c, mask=m_c, other=0.0).to(tl.float32)
    else:
        b_bias = tl.zeros([BC], dtype=tl.float32)
    b_dx = tl.zeros([BT, BC], dtype=tl.float32)
    for s in tl.static_range(K):
        # dz at rows o_i + s (zero outside 0 … L−1) feeds dx[o_i] through tap K−1−s
        o_t = o_i + s
        m_t = (o_t[:, None] >= 0) & (o_t[:, None] < L) & m_c[None, :]
        b_z = _conv_at(p_u, p_h0, p_w, i_b, o_t, o_c, m_c, L, C, sbu, stu, b_bias, K, HAS_H0)
        o_y = (i_b * L + o_t[:, None]).to(tl.int64) * C + o_c[None, :]
        o_g = i_b.to(tl.int64) * sbg + o_t[:, None].to(tl.int64) * stg + o_c[None, :]
        b_g = tl.load(p_g + o_g, mask=m_t, other=0.0).to(tl.float32)
        b_dy = tl.load(p_dy + o_y, mask=m_t, other=0.0).to(tl.float32)
        b_sig = tl.sigmoid(b_z)
        b_dz = b_dy * b_g * b_sig * (1.0 + b_z * (1.0 - b_sig))
        b_w = tl.load(p_w + o_c * K + (K - 1 - s), mask=m_c, other=0.0).to(tl.float32)
        b_dx += b_w[None, :] * b_dz
        if s == 0:
            tl.store(p_dg + o_y, (b_dy * b_z * b_sig).to(p_dg.dtype.element_ty), mask=m_t)
            o_p = ((i_b * tl.num_programs(0) + i_t) * C + o_c).to(tl.int64)  # partial-sum row of this program
            if HAS_BIAS:
                tl.store(p_dbp + o_p, tl.sum(b_dz, axis=0), mask=m_c)
            for k in tl.static_range(K):
                b_x = _load_x(p_u, p_h0, i_b, o_t - (K - 1) + k, o_c, m_c, L, C, sbu, stu, K, HAS_H0)
                tl.store(p_dwp + o_p * K + k, tl.sum(b_dz * b_x, axis=0), mask=m_c)
    if HAS_DHT:  # the final state is x rows L−K+1 … L−1: its gradient adds to theirs
        o_j = o_i - (L - K + 1)
        m_j = (o_j[:, None] >= 0) & (o_j[:, None] < K - 1) & m_c[None, :]
        b_dx += tl.load(p_dht + (i_b * (K - 1) + o_j[:, None]).to(tl.int64) * C + o_c[None, :], mask=m_j, other=0.0)
    m_u = (o_i[:, None] >= 0) & (o_i[:, None] < L) & m_c[None, :]
    tl.store(p_du + (i_b * L + o_i[:, None]).to(tl.int64) * C + o_c[None, :], b_dx.to(p_du.dtype.element_ty), mask=m_u)
    if HAS_H0:
        m_h = (o_i[:, None] < 0) & m_c[None, :]
        o_h = (i_b * (K - 1) + K - 1 + o_i[:, None]).to(tl.int64) * C + o_c[None, :]
        tl.store(p_dh0 + o_h, b_dx.to(p_dh0.dtype.element_ty), mask=m_h)


@triton.jit
def gated_short_conv_step_kernel(
    p_u, p_g, p_h, p_w, p_bias, p_y, C, sbu, sbg, K: tl.constexpr, BC: tl.constexpr, HAS_BIAS: tl.constexpr,
    PDL: tl.constexpr = 0,
):  # fmt: skip
    """One token; the program owns channels ``o_c`` of sequence ``i_b``: reads the K−1 state rows, then shifts them.
    u and gate rows at batch strides ``sbu``, ``sbg`` (views of one projection); y contiguous. ``PDL``: as the
    window's step (``_launch.STEP_PDL``)."""
    if PDL > 0:
        gdc_wait()
    if PDL > 1:
        gdc_launch_dependents()
    i_c, i_b = tl.program_id(0), tl.program_id(1)
    o_c = i_c * BC + tl.arange(0, BC)
    m_c = o_c < C
    b_u = tl.load(p_u + i_b.to(tl.int64) * sbu + o_c, mask=m_c, other=0.0)
    b_z = tl.load(p_w + o_c * K + (K - 1), mask=m_c, other=0.0).to(tl.float32) * b_u.to(tl.float32)
    if HAS_BIAS:
        b_z += tl.load(p_bias + o_c, mask=m_c, other=0.0).to(tl.float32)
    for k in tl.static_range(K - 1):
        b_h = tl.load(p_h + (i_b * (K - 1) + k).to(tl.int64) * C + o_c, mask=m_c, other=0.0)
        b_z += tl.load(p_w + o_c * K + k, mask=m_c, other=0.0).to(tl.float32) * b_h.to(tl.float32)
        if k > 0:  # state row k moves to row k−1; every load of row k precedes this store
            tl.store(p_h + (i_b * (K - 1) + k - 1).to(tl.int64) * C + o_c, b_h, mask=m_c)
    if K > 1:
        tl.store(p_h + (i_b * (K - 1) + K - 2).to(tl.int64) * C + o_c, b_u.to(p_h.dtype.element_ty), mask=m_c)
    b_g = tl.load(p_g + i_b.to(tl.int64) * sbg + o_c, mask=m_c, other=0.0).to(tl.float32)
    tl.store(p_y + i_b * C + o_c, _silu_gate(b_z, b_g, False).to(p_y.dtype.element_ty), mask=m_c)


def _tiles(C: int, K: int = 3) -> tuple[int, int, int]:
    """Backward (BT, BC, num_warps): 16-byte channel vectors; BT shrinks with K so the K² recomputed tiles of
    ``dz`` fit in registers. H200, B=4 L=16384 C=4096 fwd+bwd: K=3 BT=64 3.70 ms, 32 3.29, 16 4.23; K=4 BT=64
    16.2 ms (2 KB/thread spilled), 32 4.72 (56 B spilled), 16 6.71."""
    BC = min(next_pow2(C), 128)
    BT = max(8, min(64 if K <= 2 else 32 if K <= 4 else 16, 8192 // BC))
    return BT, BC, 4


def _fwd_tiles(C: int) -> dict:
    """Forward tiles ``[BT, BC]``, NT of them per program along time: [16, 128] × 4 warps for every K.

    H200, fraction of copy bandwidth at 4×16384×4096 / 4×16384×1024 / 4×4096×1024 (K=3 unless said):
    - session 10 (``results/session10/call5``, ``call6``): [32, 256] × 8 warps 92 / 88 / 71%, [32, 128] × 4 warps
      91 / 86 / 70%; K=4 [32, 128] × 4 88 / 83 / 65%, [32, 256] × 8 75 / 73 / 60%, [64, 128] × 4 (208 registers
      offline) 71 / 69 / 56%;
    - session 11 (``results/session11/call2``, ``conv_fwd_tiles.py``, bare launches, two rounds, do_bench at
      4×4096×4096 / 4×16384×1024 / 4×4096×1024): [32, 128] × 4 92 / 93 / 74%, [16, 128] × 4 91 / 92 / 74%,
      [32, 256] × 8 79 / 80 / 66%, [16, 256] × 4 87 / 88 / 71%; several tiles per program (NT=2) 53 / 53 / 46%;
    - session 12 (``results/session12/call1``, CUDA graph over cold buffer sets, 4×4096×4096 / 4×16384×1024 /
      4×4096×1024): [32, 128] 89 / 90 / 82%, [16, 128] 89 / 90 / 83%; with the tanh SiLU (``FWD_TANH``, bf16)
      [32, 128] 87 / 88 / 80%, [16, 128] **92 / 94 / 86%**."""
    if interpreting():
        return dict(BT=16, BC=min(next_pow2(C), 128), NT=2, num_warps=4)
    return dict(BT=16, BC=min(next_pow2(C), 128), NT=1, num_warps=4)


def _contig(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


# The forward kernel's FAST path (unmasked interior tiles, int32 in-tile offsets, approximate sigmoid reciprocal).
# Offline sm_90 compile (K=3, BT=32, BC=256, 8 warps, bf16): the general path retires 36 SASS instructions per element
# (near the SM's issue rate at copy bandwidth), FAST ~23. H200, same run (session 5, benchmarks/short_conv.py, bare
# launch): 61 -> 69% of copy bandwidth at 4x4096x1024, 76 -> 88% at 4x16384x1024, 75 -> 86% at 4x4096x4096,
# 81 -> 92% at 4x16384x4096 (K=3); K=4 unchanged (70%). On by default; ``MIXERZOO_CONV_FWD_FAST=0`` turns it off.
FWD_FAST: bool = os.environ.get("MIXERZOO_CONV_FWD_FAST", "1") == "1"

# The FAST path's SiLU through one ``tanh.approx.f32`` (``_silu_gate_tanh``) for bf16 outputs on the GPU (fp16 and
# fp32 keep the sigmoid: their rounding is as fine as tanh.approx's error). Session 12, call 1 (bf16, [16, 128]
# tiles): the error against fp64 unchanged to four digits (1.6600e-03 relative at 4×4096×1024), the largest
# difference from the sigmoid form's output 0.0625 (one bf16 ulp at |y| in [8, 16)), 90 -> 94% of copy bandwidth at
# 4×16384×1024. ``MIXERZOO_CONV_FWD_TANH=0`` turns it off.
FWD_TANH: bool = os.environ.get("MIXERZOO_CONV_FWD_TANH", "1") == "1"

POISON_OUTPUTS = False  # tests set this: outputs start as NaN, so an element no program writes shows up


def _empty(*shape: int, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    t = torch.empty(shape, device=like.device, dtype=like.dtype if dtype is None else dtype)
    return t.fill_(float("nan")) if POISON_OUTPUTS else t


def _fwd(u: Tensor, gate: Tensor, weight: Tensor, bias: Tensor | None, h0: Tensor | None) -> tuple[Tensor, Tensor]:
    """The forward launch, shared by the custom op (torch.compile) and the eager path."""
    (u, su), (gate, sg) = unit_stride_rows(u), unit_stride_rows(gate)
    weight, bias, h0 = (_contig(t) for t in (weight, bias, h0))
    B, L, C = u.shape
    K = weight.shape[1]
    y, ht = _empty(B, L, C, like=u), _empty(B, K - 1, C, like=u)
    cfg = _fwd_tiles(C)
    grid = (cdiv(C, cfg["BC"]), cdiv(L, cfg["BT"] * cfg["NT"]), B)
    # the fast path's int32 offsets within a tile: (BT + K) rows of the widest row stride
    fast = FWD_FAST and (cfg["BT"] + K) * max(su[1], sg[1], C) + C < 2**31
    _launch.fast(gated_short_conv_fwd_kernel)[grid](
        u, gate, weight, bias if bias is not None else u, h0 if h0 is not None else u, y, ht, L, C,
        su[0], su[1], sg[0], sg[1], K=K, HAS_BIAS=bias is not None, HAS_H0=h0 is not None, FAST=fast,
        TANH=fast and FWD_TANH and y.dtype == torch.bfloat16 and not interpreting(), **cfg,
    )  # fmt: skip
    return y, ht


def _bwd(
    dy: Tensor, dht: Tensor | None, u: Tensor, gate: Tensor, weight: Tensor, bias: Tensor | None, h0: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The backward launch and the dweight/dbias reduction, shared by the custom op and the eager path."""
    (u, su), (gate, sg) = unit_stride_rows(u), unit_stride_rows(gate)
    dy, dht, weight, bias, h0 = (_contig(t) for t in (dy, dht, weight, bias, h0))
    B, L, C = u.shape
    K = weight.shape[1]
    BT, BC, nw = _tiles(C, K)
    rows = L + (K - 1 if h0 is not None else 0)  # x-space rows: the state's grads too
    NT = cdiv(rows, BT)
    du, dg = _empty(B, L, C, like=u), _empty(B, L, C, like=gate)
    dh0 = _empty(*h0.shape, like=h0) if h0 is not None else u.new_empty(0)
    dwp = _empty(B, NT, C, K, like=u, dtype=torch.float32)
    dbp = _empty(B, NT, C, like=u, dtype=torch.float32) if bias is not None else dwp
    _launch.fast(gated_short_conv_bwd_kernel)[(NT, cdiv(C, BC), B)](
        u, gate, weight, bias if bias is not None else u, h0 if h0 is not None else u, dy,
        dht if dht is not None else u, du, dg, dh0, dwp, dbp, L, C, su[0], su[1], sg[0], sg[1],
        K=K, BT=BT, BC=BC, HAS_BIAS=bias is not None, HAS_H0=h0 is not None, HAS_DHT=dht is not None and K > 1,
        num_warps=nw,
    )  # fmt: skip
    dw = dwp.sum((0, 1)).to(weight.dtype)
    db = dbp.sum((0, 1)).to(bias.dtype) if bias is not None else weight.new_zeros(C)
    return du, dg, dw, db, dh0


@torch.library.custom_op("mixerzoo::gated_short_conv_fwd", mutates_args=())
def gated_short_conv_fwd(
    u: Tensor,
    gate: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    initial_state: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """``(y [B, L, C], final_state [B, K−1, C])``, both in u's dtype."""
    return _fwd(u, gate, weight, bias, initial_state)


@gated_short_conv_fwd.register_fake
def _(u, gate, weight, bias, initial_state):
    return u.new_empty(u.shape), u.new_empty(u.shape[0], weight.shape[1] - 1, u.shape[2])  # contiguous, as the op


@torch.library.custom_op("mixerzoo::gated_short_conv_bwd", mutates_args=())
def gated_short_conv_bwd(
    dy: Tensor,
    d_final_state: Tensor | None,
    u: Tensor,
    gate: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    initial_state: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``(du, dgate, dweight, dbias [C] (zeros-shaped even without a bias), dinitial_state ([0] without one))``."""
    return _bwd(dy, d_final_state, u, gate, weight, bias, initial_state)


@gated_short_conv_bwd.register_fake
def _(dy, d_final_state, u, gate, weight, bias, initial_state):
    C = u.shape[2]
    dh0 = initial_state.new_empty(initial_state.shape) if initial_state is not None else u.new_empty(0)
    db = weight.new_empty(C) if bias is None else bias.new_empty(C)
    return u.new_empty(u.shape), gate.new_empty(gate.shape), weight.new_empty(weight.shape), db, dh0


def _fwd_setup(ctx, inputs, output):
    u, gate, weight, bias, initial_state = inputs
    ctx.save_for_backward(u, gate, weight, bias, initial_state)


def _fwd_backward(ctx, dy, d_final_state):
    u, gate, weight, bias, h0 = ctx.saved_tensors
    du, dg, dw, db, dh0 = torch.ops.mixerzoo.gated_short_conv_bwd(dy, d_final_state, u, gate, weight, bias, h0)
    return du, dg, dw, (db if bias is not None else None), (dh0 if h0 is not None else None)


gated_short_conv_fwd.register_autograd(_fwd_backward, setup_context=_fwd_setup)


class _GatedShortConv(torch.autograd.Function):
    """The eager path: the same launches as the custom ops without the dispatcher (~2× less host time per call,
    which is the whole cost of a call at small shapes; benchmarks/notes/window_conv.md)."""

    @staticmethod
    def forward(ctx, u, gate, weight, bias, h0):
        ctx.set_materialize_grads(False)  # an unused final state brings no zeros tensor (and no dht pass)
        y, ht = _fwd(u, gate, weight, bias, h0)
        ctx.save_for_backward(u, gate, weight, bias, h0)
        return y, ht

    @staticmethod
    def backward(ctx, dy, dht):
        u, gate, weight, bias, h0 = ctx.saved_tensors
        du, dg, dw, db, dh0 = _bwd(dy if dy is not None else torch.zeros_like(u), dht, u, gate, weight, bias, h0)
        return du, dg, dw, (db if bias is not None else None), (dh0 if h0 is not None else None)


@torch.library.custom_op("mixerzoo::gated_short_conv_step", mutates_args=("state",))
def gated_short_conv_step(u: Tensor, gate: Tensor, state: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """One token, ``u, gate [B, C]``; ``state [B, K−1, C]`` shifted and updated in place."""
    if not state.is_contiguous():
        raise ValueError("gated_short_conv_step (triton): state must be contiguous (it is updated in place)")
    (u, su), (gate, sg) = unit_stride_rows(u), unit_stride_rows(gate)
    weight, bias = _contig(weight), _contig(bias)
    B, C = u.shape
    K = weight.shape[1]
    y = _empty(B, C, like=u)
    BC = min(next_pow2(C), 1024)
    _launch.fast(gated_short_conv_step_kernel)[(cdiv(C, BC), B)](
        u,
        gate,
        state,
        weight,
        bias if bias is not None else u,
        y,
        C,
        su[0],
        sg[0],
        K=K,
        BC=BC,
        HAS_BIAS=bias is not None,
        num_warps=4,
        **_launch.pdl_kwargs(u),
    )
    return y


@gated_short_conv_step.register_fake
def _(u, gate, state, weight, bias):
    return u.new_empty(u.shape)


def gated_short_conv_triton(
    u: Tensor,
    gate: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    *,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Fused conv + bias + SiLU + gate; returns ``(y, final_state or None)``. Differentiable in every tensor.

    Under torch.compile: the registered custom op. Eager: the launch itself when no input needs a gradient, else one
    ``torch.autograd.Function`` (the custom op's dispatch costs as much host time as the kernel at small shapes)."""
    if torch.compiler.is_compiling():
        y, ht = torch.ops.mixerzoo.gated_short_conv_fwd(u, gate, weight, bias, initial_state)
    elif torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, gate, weight, bias, initial_state)
    ):
        y, ht = _GatedShortConv.apply(u, gate, weight, bias, initial_state)
    else:
        y, ht = _fwd(u, gate, weight, bias, initial_state)
    return y, (ht if output_final_state else None)


def gated_short_conv_step_triton(u: Tensor, gate: Tensor, state: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """Decode step: ``y [B, C]``; ``state`` updated in place (CUDA-graph capturable)."""
    return torch.ops.mixerzoo.gated_short_conv_step(u, gate, state, weight, bias)
