"""Triton kernels for causal sliding-window softmax attention: forward, backward, ring-buffer decode.

Legend: ``q [B, Lq, H, D]``, ``k [B, Lk, HKV, D]``, ``v [B, Lk, HKV, DV]``, ``o [B, Lq, H, DV]``,
``lse [B, H, Lq]`` (fp32, log2 units), window W. Query i sits at position ``p = Lk − Lq + i``
(bottom-right aligned) and sees keys ``p − W + 1 … p``; query head h reads kv head ``h // (H // HKV)``.

Flash-style (FlashAttention-2, arXiv 2307.08691): a program owns ``BM`` queries of one head and visits
only the ``BN``-key blocks that intersect its band, ``[m0 + off − W + 1, m0 + off + BM − 1]``, so the
work is O(L·(W + BM + BN)) instead of O(L²). Online softmax in exp2 with fp32 accumulators; the
log-sum-exp is saved for the backward. The backward recomputes the probabilities twice, once per key
block (dk, dv: loop over the query blocks of the band and over the query heads of the kv group, so
grouped heads need no atomics) and once per query block (dq): deterministic, no atomics at all. The dq
kernel runs first and also writes ``delta = Σ o·do`` (it loads do anyway), which the dk/dv kernel reads.
Head dims are padded to a power of two ≥ 16 by masking (any D, DV ≤ 256).

The decode step: one program per (sequence, kv head, split of the window) serves the G query heads of the
group. It reads the first chunk of its slots with 16-byte loads issued before the kernel before it has finished
(programmatic dependent launch) and before ``pos`` is known: their addresses depend on neither. It masks the slots
past ``min(pos + 1, W)``, uses the new key/value in registers for slot ``pos % W`` and writes it there (in place).
With S > 1 splits (small batches: flash-decoding, https://pytorch.org/blog/flash-decoding/) each split leaves a
partial max/sum/output, and the last split of a (sequence, kv head) to finish combines them (an arrival counter,
no second launch). ``pos`` can be read from a device tensor: no host sync, so the step can be captured in a CUDA
graph.

Registered as ``torch.ops.mixerzoo.sliding_window_fwd/bwd/step`` (``torch.library.custom_op`` with
fake and autograd registrations), so ``torch.compile`` traces through them; eager calls skip the dispatcher
(``_SlidingWindow``, the same launches).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from mixerzoo.kernels import _launch
from mixerzoo.kernels._checks import cdiv, interpreting, next_pow2, unit_stride_rows
from mixerzoo.kernels._launch import gdc_launch_dependents, gdc_wait

__all__ = ["sliding_window_step_triton", "sliding_window_triton"]

LOG2E = 1.4426950408889634
MAX_HEAD_DIM = 256
POISON_OUTPUTS = False  # tests set this: outputs start as NaN, so an element no program writes shows up


@triton.jit
def _dot(a, b, PREC: tl.constexpr):
    """``a @ b`` with fp32 accumulation. ``PREC == "interp"``: the interpreter's bf16 dot returns garbage
    (triton 3.6 + numpy 2.4), so there the operands are upcast; the values (already rounded) are unchanged."""
    if PREC == "interp":
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        return tl.dot(a, b, input_precision=PREC)


@triton.jit
def _fwd_block(
    b_q, p_kb, p_vb, n0, pos, o_d, o_dv, m_d, m_dv, Lk, W, scale_log2, b_mi, b_li, b_acc, s_kl, s_vl,
    BN: tl.constexpr, MASK: tl.constexpr, PREC: tl.constexpr, FOLD: tl.constexpr,
):  # fmt: skip
    """One key block ``n0 … n0 + BN − 1`` of the online softmax. ``MASK``: which tests the caller cannot rule out
    (each costs elementwise work on the whole [BM, BN] tile). 1: the window's lower end only (the aligned path's
    oldest blocks: in bounds and before every query);
    2: causality and the keys' upper bound (its diagonal blocks, where W ≥ BM puts every key inside every window);
    3: all of them, bounds on both sides. ``s_kl``, ``s_vl``: the time strides of k and v (elements); the block's
    first row in int64. ``FOLD`` (host: scale > 0): the scores stay unscaled, their maximum is scaled per row and the
    scale rides in the exponent's FFMA (one multiply per score fewer); otherwise the scores are scaled first."""
    r_n = tl.arange(0, BN)
    o_n = n0 + r_n
    p_kn = p_kb + n0.to(tl.int64) * s_kl + r_n[:, None] * s_kl + o_d[None, :]
    p_vn = p_vb + n0.to(tl.int64) * s_vl + r_n[:, None] * s_vl + o_dv[None, :]
    if MASK == 3:
        m_n = (o_n < Lk) & (o_n >= 0)
    elif MASK == 2:
        m_n = o_n < Lk
    if MASK >= 2:
        b_k = tl.load(p_kn, mask=m_n[:, None] & m_d[None, :], other=0.0)
    else:
        b_k = tl.load(p_kn, mask=m_d[None, :], other=0.0)
    b_s = _dot(b_q, tl.trans(b_k), PREC)  # [BM, BN]
    if not FOLD:
        b_s = b_s * scale_log2
    if MASK == 3:
        b_s = tl.where((o_n[None, :] <= pos[:, None]) & (o_n[None, :] > pos[:, None] - W), b_s, float("-inf"))
    elif MASK == 2:
        b_s = tl.where(o_n[None, :] <= pos[:, None], b_s, float("-inf"))
    elif MASK == 1:
        b_s = tl.where(o_n[None, :] > pos[:, None] - W, b_s, float("-inf"))
    b_mx = tl.max(b_s, 1)
    if FOLD:  # scores stay unscaled; the scale rides in the exponent's FFMA (host: scale > 0, so the max commutes)
        b_mx = b_mx * scale_log2
    b_mn = tl.maximum(b_mi, b_mx)
    b_alpha = tl.exp2(b_mi - b_mn)
    b_li = b_li * b_alpha
    b_acc = b_acc * b_alpha[:, None]
    if FOLD:
        b_p = tl.exp2(b_s * scale_log2 - b_mn[:, None])
    else:
        b_p = tl.exp2(b_s - b_mn[:, None])
    b_li = b_li + tl.sum(b_p, 1)
    if MASK >= 2:
        b_v = tl.load(p_vn, mask=m_n[:, None] & m_dv[None, :], other=0.0)
    else:
        b_v = tl.load(p_vn, mask=m_dv[None, :], other=0.0)
    b_acc = b_acc + _dot(b_p.to(b_v.dtype), b_v, PREC)
    return b_mn, b_li, b_acc


@triton.jit
def sliding_window_fwd_kernel(
    p_q, p_k, p_v, p_o, p_lse, Lq, Lk, W, scale_log2, s_qb, s_ql, s_qh, s_kb, s_kl, s_kh, s_vb, s_vl, s_vh,
    H: tl.constexpr, HKV: tl.constexpr, D: tl.constexpr, DV: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, NB: tl.constexpr, NL: tl.constexpr, NU: tl.constexpr, DIAG_MASK: tl.constexpr,
    PREC: tl.constexpr, FOLD: tl.constexpr, GEN_STAGES: tl.constexpr,
):  # fmt: skip
    """``NL > 0`` (host: ``(Lk − Lq) % BN == 0`` and ``BM % BN == 0``): key blocks aligned to BN; of the NL blocks
    before the query block, the NL − NU oldest test the window's lower end only; the NU nearest, inside every query's
    window, run in the loop of the BM/BN diagonal blocks, which test causality and bounds (``DIAG_MASK = 2``, host:
    W ≥ BM, so no diagonal key is older than any window) or everything (3): a test that passes everywhere costs less
    than a third loop's pipeline fill (H200, session 11 call 6: 1–2% faster at d=64 W=128). Query blocks whose band
    starts before key 0 take the general loop: NB blocks of BN from the band's first key, all masked, pipelined over
    ``GEN_STAGES`` stages (``None``: num_stages; host: 1 where the aligned loops run, so that it holds no shared
    memory of its own and more programs fit on an SM). q, k, v are read through their (batch, time, head) strides
    ``s_*`` (the last dim has stride 1): views of the mixers' fused buffers need no copy; o and lse are contiguous.
    ``FOLD``: see `_fwd_block`."""
    i_m, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    i_hk = i_h // (H // HKV)
    off = Lk - Lq
    o_m = i_m * BM + tl.arange(0, BM)
    o_d, o_dv = tl.arange(0, BD), tl.arange(0, BDV)
    m_m, m_d, m_dv = o_m < Lq, o_d < D, o_dv < DV
    pos = o_m + off  # absolute positions of the queries
    p_qb = p_q + i_b.to(tl.int64) * s_qb + (i_m * BM).to(tl.int64) * s_ql + i_h * s_qh
    r_m = tl.arange(0, BM)
    b_q = tl.load(p_qb + r_m[:, None] * s_ql + o_d[None, :], mask=m_m[:, None] & m_d[None, :], other=0.0)
    p_kb = p_k + i_b.to(tl.int64) * s_kb + i_hk * s_kh
    p_vb = p_v + i_b.to(tl.int64) * s_vb + i_hk * s_vh
    b_mi = tl.full([BM], -1e30, dtype=tl.float32)
    b_li = tl.zeros([BM], dtype=tl.float32)
    b_acc = tl.zeros([BM, BDV], dtype=tl.float32)
    p0 = i_m * BM + off  # the first query's position
    if NL > 0 and p0 >= NL * BN:
        for j in range(0, NL - NU):  # oldest blocks: cut by the window of the later queries
            b_mi, b_li, b_acc = _fwd_block(
                b_q, p_kb, p_vb, p0 - (NL - j) * BN, pos, o_d, o_dv, m_d, m_dv, Lk, W, scale_log2, b_mi, b_li, b_acc,
                s_kl, s_vl, BN, 1, PREC, FOLD,
            )  # fmt: skip
        for j in range(0, NU + BM // BN):  # interior blocks (inside every window), then the diagonal ones: causal
            b_mi, b_li, b_acc = _fwd_block(
                b_q, p_kb, p_vb, p0 - (NU - j) * BN, pos, o_d, o_dv, m_d, m_dv, Lk, W, scale_log2, b_mi, b_li, b_acc,
                s_kl, s_vl, BN, DIAG_MASK, PREC, FOLD,
            )  # fmt: skip
    else:
        # the band of this block: keys t0 … p0 + BM − 1, NB blocks of BN (host: cdiv(min(BM + W − 1, Lk), BN))
        t0 = tl.maximum(p0 - W + 1, 0)
        for j in tl.range(0, NB, num_stages=GEN_STAGES):
            b_mi, b_li, b_acc = _fwd_block(
                b_q, p_kb, p_vb, t0 + j * BN, pos, o_d, o_dv, m_d, m_dv, Lk, W, scale_log2, b_mi, b_li, b_acc,
                s_kl, s_vl, BN, 3, PREC, FOLD,
            )  # fmt: skip
    b_li = tl.where(b_li > 0, b_li, 1.0)  # only rows past Lq (never stored) have no key
    b_o = b_acc / b_li[:, None]
    p_ob = p_o + (i_b * Lq).to(tl.int64) * (H * DV) + i_h * DV
    tl.store(
        p_ob + o_m[:, None] * (H * DV) + o_dv[None, :], b_o.to(p_o.dtype.element_ty), mask=m_m[:, None] & m_dv[None, :]
    )
    tl.store(p_lse + i_bh.to(tl.int64) * Lq + o_m, b_mi + tl.log2(b_li), mask=m_m)


@triton.jit
def sliding_window_bwd_delta_kernel(
    p_o, p_do, p_delta, Lq, H: tl.constexpr, DV: tl.constexpr, BM: tl.constexpr, BDV: tl.constexpr
):
    """``delta[b, h, i] = Σ_e o·do`` (fp32), the softmax-backward row term."""
    i_m, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_m, o_dv = i_m * BM + tl.arange(0, BM), tl.arange(0, BDV)
    m = (o_m[:, None] < Lq) & (o_dv[None, :] < DV)
    o_x = (i_b * Lq).to(tl.int64) * (H * DV) + i_h * DV + o_m[:, None] * (H * DV) + o_dv[None, :]
    b_o = tl.load(p_o + o_x, mask=m, other=0.0).to(tl.float32)
    b_do = tl.load(p_do + o_x, mask=m, other=0.0).to(tl.float32)
    tl.store(p_delta + i_bh.to(tl.int64) * Lq + o_m, tl.sum(b_o * b_do, 1), mask=o_m < Lq)


@triton.jit
def sliding_window_bwd_dkdv_kernel(
    p_q, p_k, p_v, p_do, p_lse, p_delta, p_dk, p_dv, Lq, Lk, W, scale, scale_log2,
    s_qb, s_ql, s_qh, s_kb, s_kl, s_kh, s_vb, s_vl, s_vh,
    H: tl.constexpr, HKV: tl.constexpr, D: tl.constexpr, DV: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, NB: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """One program: BN keys of one kv head; loops over the G query heads and the query blocks that see them. q, k, v
    through their strides ``s_*`` (as the forward); do, dk, dv contiguous."""
    i_n, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_hk = i_bh // HKV, i_bh % HKV
    G: tl.constexpr = H // HKV
    off = Lk - Lq
    o_n = i_n * BN + tl.arange(0, BN)
    o_d, o_dv = tl.arange(0, BD), tl.arange(0, BDV)
    m_n, m_d, m_dv = o_n < Lk, o_d < D, o_dv < DV
    r_n, r_m = tl.arange(0, BN), tl.arange(0, BM)
    n0 = (i_n * BN).to(tl.int64)
    p_kn = p_k + i_b.to(tl.int64) * s_kb + n0 * s_kl + i_hk * s_kh + r_n[:, None] * s_kl + o_d[None, :]
    p_vn = p_v + i_b.to(tl.int64) * s_vb + n0 * s_vl + i_hk * s_vh + r_n[:, None] * s_vl + o_dv[None, :]
    b_k = tl.load(p_kn, mask=m_n[:, None] & m_d[None, :], other=0.0)
    b_v = tl.load(p_vn, mask=m_n[:, None] & m_dv[None, :], other=0.0)
    b_dk = tl.zeros([BN, BD], dtype=tl.float32)
    b_dv = tl.zeros([BN, BDV], dtype=tl.float32)
    # queries at positions n0 … n0 + BN − 1 + W − 1 see these keys: query index = position − off
    # NB blocks of BM queries from s0 (host: cdiv(min(BN + W − 1, Lq), BM)); keys older than every window: no queries
    s0 = tl.maximum(i_n * BN - off, 0)
    if i_n * BN + BN + W - 2 >= off:
        for g in range(G):
            i_h = i_hk * G + g
            p_qb = p_q + i_b.to(tl.int64) * s_qb + i_h * s_qh
            p_dob = p_do + (i_b * Lq).to(tl.int64) * (H * DV) + i_h * DV
            p_lb = (i_b * H + i_h).to(tl.int64) * Lq
            for j in range(0, NB):
                m0 = s0 + j * BM
                o_m = m0 + r_m
                m_m = o_m < Lq
                p_qm = p_qb + m0.to(tl.int64) * s_ql + r_m[:, None] * s_ql + o_d[None, :]
                b_q = tl.load(p_qm, mask=m_m[:, None] & m_d[None, :], other=0.0)
                b_do = tl.load(
                    p_dob + o_m[:, None] * (H * DV) + o_dv[None, :], mask=m_m[:, None] & m_dv[None, :], other=0.0
                )
                b_lse = tl.load(p_lse + p_lb + o_m, mask=m_m, other=0.0)
                b_delta = tl.load(p_delta + p_lb + o_m, mask=m_m, other=0.0)
                pos = o_m + off
                b_st = _dot(b_k, tl.trans(b_q), PREC) * scale_log2  # [BN, BM]
                m_t = (o_n[:, None] <= pos[None, :]) & (o_n[:, None] > pos[None, :] - W) & m_m[None, :]
                b_pt = tl.where(m_t, tl.exp2(b_st - b_lse[None, :]), 0.0)
                b_dv += _dot(b_pt.to(b_do.dtype), b_do, PREC)
                b_dpt = _dot(b_v, tl.trans(b_do), PREC)  # [BN, BM]
                b_dst = b_pt * (b_dpt - b_delta[None, :])
                b_dk += _dot(b_dst.to(b_q.dtype), b_q, PREC)
    o_k = (i_b * Lk).to(tl.int64) * (HKV * D) + i_hk * D + o_n[:, None] * (HKV * D) + o_d[None, :]
    o_v = (i_b * Lk).to(tl.int64) * (HKV * DV) + i_hk * DV + o_n[:, None] * (HKV * DV) + o_dv[None, :]
    tl.store(p_dk + o_k, (b_dk * scale).to(p_dk.dtype.element_ty), mask=m_n[:, None] & m_d[None, :])
    tl.store(p_dv + o_v, b_dv.to(p_dv.dtype.element_ty), mask=m_n[:, None] & m_dv[None, :])


@triton.jit
def sliding_window_bwd_dq_kernel(
    p_q, p_k, p_v, p_o, p_do, p_lse, p_delta, p_dq, Lq, Lk, W, scale, scale_log2,
    s_qb, s_ql, s_qh, s_kb, s_kl, s_kh, s_vb, s_vl, s_vh,
    H: tl.constexpr, HKV: tl.constexpr, D: tl.constexpr, DV: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, NB: tl.constexpr, PREC: tl.constexpr, FUSE_DELTA: tl.constexpr,
):  # fmt: skip
    """``FUSE_DELTA``: this kernel computes ``delta = Σ_e o·do`` of its rows from the ``do`` it loads anyway (one
    read of o instead of the delta kernel's o and do) and stores it for the dk/dv kernel, which then runs after it.
    q, k, v through their strides ``s_*`` (as the forward); o, do, dq contiguous."""
    i_m, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    i_hk = i_h // (H // HKV)
    off = Lk - Lq
    o_m = i_m * BM + tl.arange(0, BM)
    o_d, o_dv = tl.arange(0, BD), tl.arange(0, BDV)
    m_m, m_d, m_dv = o_m < Lq, o_d < D, o_dv < DV
    pos = o_m + off
    r_m = tl.arange(0, BM)
    p_qm = p_q + i_b.to(tl.int64) * s_qb + (i_m * BM).to(tl.int64) * s_ql + i_h * s_qh + r_m[:, None] * s_ql
    b_q = tl.load(p_qm + o_d[None, :], mask=m_m[:, None] & m_d[None, :], other=0.0)
    p_dob = p_do + (i_b * Lq).to(tl.int64) * (H * DV) + i_h * DV
    b_do = tl.load(p_dob + o_m[:, None] * (H * DV) + o_dv[None, :], mask=m_m[:, None] & m_dv[None, :], other=0.0)
    b_lse = tl.load(p_lse + i_bh.to(tl.int64) * Lq + o_m, mask=m_m, other=0.0)
    if FUSE_DELTA:
        p_ob = p_o + (i_b * Lq).to(tl.int64) * (H * DV) + i_h * DV
        b_o = tl.load(p_ob + o_m[:, None] * (H * DV) + o_dv[None, :], mask=m_m[:, None] & m_dv[None, :], other=0.0)
        b_delta = tl.sum(b_o.to(tl.float32) * b_do.to(tl.float32), 1)
        tl.store(p_delta + i_bh.to(tl.int64) * Lq + o_m, b_delta, mask=m_m)
    else:
        b_delta = tl.load(p_delta + i_bh.to(tl.int64) * Lq + o_m, mask=m_m, other=0.0)
    p_kb = p_k + i_b.to(tl.int64) * s_kb + i_hk * s_kh
    p_vb = p_v + i_b.to(tl.int64) * s_vb + i_hk * s_vh
    t0 = tl.maximum(i_m * BM + off - W + 1, 0)
    r_n = tl.arange(0, BN)
    b_dq = tl.zeros([BM, BD], dtype=tl.float32)
    for j in range(0, NB):
        n0 = t0 + j * BN
        o_n = n0 + r_n
        m_n = o_n < Lk
        p_kn = p_kb + n0.to(tl.int64) * s_kl + r_n[:, None] * s_kl + o_d[None, :]
        p_vn = p_vb + n0.to(tl.int64) * s_vl + r_n[:, None] * s_vl + o_dv[None, :]
        b_k = tl.load(p_kn, mask=m_n[:, None] & m_d[None, :], other=0.0)
        b_v = tl.load(p_vn, mask=m_n[:, None] & m_dv[None, :], other=0.0)
        b_s = _dot(b_q, tl.trans(b_k), PREC) * scale_log2
        m_s = (o_n[None, :] <= pos[:, None]) & (o_n[None, :] > pos[:, None] - W) & m_m[:, None]
        b_p = tl.where(m_s, tl.exp2(b_s - b_lse[:, None]), 0.0)
        b_dp = _dot(b_do, tl.trans(b_v), PREC)
        b_ds = b_p * (b_dp - b_delta[:, None])
        b_dq += _dot(b_ds.to(b_k.dtype), b_k, PREC)
    o_q = (i_b * Lq).to(tl.int64) * (H * D) + i_h * D + o_m[:, None] * (H * D) + o_d[None, :]
    tl.store(p_dq + o_q, (b_dq * scale).to(p_dq.dtype.element_ty), mask=m_m[:, None] & m_d[None, :])


@triton.jit
def _step_load(p_ckb, p_cvb, n0, w1, o_d, o_dv, m_d, m_dv, HKV: tl.constexpr, D: tl.constexpr, DV: tl.constexpr,
               BW: tl.constexpr, CG: tl.constexpr = False):  # fmt: skip
    """Ring slots ``n0 … n0 + BW − 1`` (below w1) of v and k. Their addresses do not depend on pos: the loads go out
    before pos arrives. v first in the source: else ptxas sank the v loads below the first reduction (two serial DRAM
    latencies). CG: read past L1 (``.cg``), for loads issued before the PDL wait (see the step kernel)."""
    o_w = n0 + tl.arange(0, BW)
    m_w = o_w < w1
    m_v, m_k = m_w[:, None] & m_dv[None, :], m_w[:, None] & m_d[None, :]
    p_v, p_k = p_cvb + o_w[:, None] * (HKV * DV) + o_dv[None, :], p_ckb + o_w[:, None] * (HKV * D) + o_d[None, :]
    if CG:
        b_v = tl.load(p_v, mask=m_v, other=0.0, cache_modifier=".cg")
        b_k = tl.load(p_k, mask=m_k, other=0.0, cache_modifier=".cg")
    else:
        b_v = tl.load(p_v, mask=m_v, other=0.0)
        b_k = tl.load(p_k, mask=m_k, other=0.0)
    return b_v, b_k


@triton.jit
def _step_chunk(b_v, b_k, b_q, b_kn, b_vn, b_mi, b_li, b_acc, n0, w1, slot, n_valid, scale_log2, BW: tl.constexpr):
    """Online softmax over one chunk of ring slots ``n0 … n0 + BW − 1``: the running max ``b_mi``, sum ``b_li`` and
    unnormalized output ``b_acc`` after it. Unwritten slots (garbage, NaN) are masked after the load; the slot being
    replaced takes the new token. A chunk with no valid slot leaves the three unchanged."""
    o_w = n0 + tl.arange(0, BW)
    m_new = (o_w == slot)[:, None]
    m_ok = (o_w < n_valid) & (o_w < w1)
    b_k = tl.where(m_new, b_kn[None, :].to(b_k.dtype), b_k).to(tl.float32)
    b_v = tl.where(m_new, b_vn[None, :].to(b_v.dtype), tl.where(m_ok[:, None], b_v, 0.0)).to(tl.float32)
    b_s = tl.sum(b_k * b_q[None, :], 1) * scale_log2  # [BW]
    b_s = tl.where(m_ok, b_s, float("-inf"))
    b_mn = tl.maximum(b_mi, tl.max(b_s, 0))
    b_p = tl.exp2(b_s - b_mn)
    b_alpha = tl.exp2(b_mi - b_mn)
    b_li = b_li * b_alpha + tl.sum(b_p, 0)
    b_acc = b_acc * b_alpha + tl.sum(b_p[:, None] * b_v, 0)
    return b_mn, b_li, b_acc


@triton.jit
def _rope_load(p_x, o_d, m_d, b_cos, b_sin, R2: tl.constexpr):
    """A head vector ``x [BD]`` rotated by RoPE's half-split form (``mixers.rotary.rotate``: dims i and i + R2 turn
    together, ``x1·cos − x2·sin`` and ``x2·cos + x1·sin`` in fp32; dims from 2·R2 on, where cos = 1 and sin = 0, as
    they are), rounded to x's dtype as ``rotate`` does."""
    b_x = tl.load(p_x + o_d, mask=m_d, other=0.0)
    lo = o_d < R2
    o_p = tl.where(lo, o_d + R2, tl.where(o_d < 2 * R2, o_d - R2, o_d))  # the partner dim
    b_xp = tl.load(p_x + o_p, mask=m_d, other=0.0).to(tl.float32)
    b_r = b_x.to(tl.float32) * b_cos + tl.where(lo, -b_xp, b_xp) * b_sin
    return b_r.to(b_x.dtype)


@triton.jit
def _step_combine(p_pm, p_pl, p_pacc, p_o, i_bh, DV: tl.constexpr, BDV: tl.constexpr, S: tl.constexpr,
                  BS: tl.constexpr):  # fmt: skip
    """``o = Σ_s 2^(m_s − M)·acc_s / Σ_s 2^(m_s − M)·l_s`` over the S splits of (sequence, head) ``i_bh``
    (flash-decoding's reduction; a split with no valid slot has m = −1e30, l = 0, acc = 0). The partials are read
    past L1 (``.cg``): L1 is not coherent, and a graph replay reuses the addresses an earlier step read here."""
    o_s, o_dv = tl.arange(0, BS), tl.arange(0, BDV)
    m_s, m_dv = o_s < S, o_dv < DV
    o_p = i_bh.to(tl.int64) * S + o_s
    b_m = tl.load(p_pm + o_p, mask=m_s, other=-1e30, cache_modifier=".cg")
    b_l = tl.load(p_pl + o_p, mask=m_s, other=0.0, cache_modifier=".cg")
    b_acc = tl.load(p_pacc + o_p[:, None] * DV + o_dv[None, :], mask=m_s[:, None] & m_dv[None, :], other=0.0,
                    cache_modifier=".cg")  # fmt: skip
    b_w = tl.exp2(b_m - tl.max(b_m, 0))
    b_o = tl.sum(b_w[:, None] * b_acc, 0) / tl.sum(b_w * b_l, 0)
    tl.store(p_o + i_bh.to(tl.int64) * DV + o_dv, b_o.to(p_o.dtype.element_ty), mask=m_dv)


@triton.jit(do_not_specialize=["pos_int"])
def sliding_window_step_kernel(
    p_q, p_k, p_v, p_ck, p_cv, p_pos, pos_int, p_o, p_pm, p_pl, p_pacc, p_count, p_cos, p_sin, N_ROT, s_rot, W, WS,
    scale_log2, s_qb, s_qh, s_kb, s_kh, s_vb, s_vh,
    H: tl.constexpr, HKV: tl.constexpr, D: tl.constexpr, DV: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
    BW: tl.constexpr, NW: tl.constexpr, S: tl.constexpr, BS: tl.constexpr, POS_TENSOR: tl.constexpr,
    PREFETCH: tl.constexpr, DENSE: tl.constexpr, DYN: tl.constexpr = False, EARLY: tl.constexpr = False,
    R2: tl.constexpr = 0, PDL: tl.constexpr = 0,
):  # fmt: skip
    """One program: sequence i_b, kv head i_hk, split i_s (slots ``i_s·WS … (i_s+1)·WS − 1`` of the ring
    ``[B, W, HKV, ·]``, NW chunks of BW), all G query heads of the group. S = 1: writes ``o``. Else each split
    writes its partial max / sum / unnormalized output (``[B·H, S]``, ``[B·H, S]``, ``[B·H, S, DV]`` fp32) and
    bumps the arrival counter ``p_count[i_b·HKV + i_hk]`` (int32, zero between steps); the last split to arrive
    combines the S partials of the group's heads into ``o`` and resets the counter (no program waits on another).
    DENSE (wide rings, e.g. the attn mixer's KV cache, which is never full while it decodes): after the first
    chunk, the loads stop at the last written slot, so a step reads the tokens so far rather than the whole
    capacity; those loads wait for pos. DENSE and DYN (the GPU; the interpreter has no loops of a run-time length):
    the chunk loop stops there too, instead of running NW chunks with every load masked past it. The new token's q
    ``[B, H, D]``, k and v ``[B, HKV, ·]`` through their (batch, head) strides ``s_*`` (views of the projection
    row need no copy); the rings and o contiguous. R2 > 0: q and k arrive unrotated and are turned here by RoPE's
    angles of position pos (rows ``pos`` of the fp32 cos / sin tables ``[N_ROT, ·]``, row stride ``s_rot``, R2 values
    per row; 2·R2 rotated dims); a position past the tables makes the output NaN."""
    i_bh, i_s = tl.program_id(0), tl.program_id(1)
    i_b, i_hk = i_bh // HKV, i_bh % HKV
    G: tl.constexpr = H // HKV
    o_d, o_dv = tl.arange(0, BD), tl.arange(0, BDV)
    m_d, m_dv = o_d < D, o_dv < DV
    p_ckb = p_ck + (i_b * W).to(tl.int64) * (HKV * D) + i_hk * D
    p_cvb = p_cv + (i_b * W).to(tl.int64) * (HKV * DV) + i_hk * DV
    w0 = i_s * WS
    w1 = tl.minimum(w0 + WS, W)
    # The split's first chunk. EARLY (the caller's promise that the launch just before this one does not write this
    # ring: in a model, other kernels run between two steps of a layer): loaded before the wait for the kernel before
    # (PDL), past L1. A PDL launch starts once the kernel before has passed its own wait or exited, so the overlap
    # reaches back a kernel or two; the last writer of these slots (this layer's step kernel, a whole decode step and
    # every other layer's kernels ago) has completed. The slot this step replaces is masked below. Bounded by the
    # split, not by pos (which the kernel before may still be writing).
    if EARLY:
        b_v0, b_k0 = _step_load(p_ckb, p_cvb, w0, w1, o_d, o_dv, m_d, m_dv, HKV, D, DV, BW, True)
    # PDL (``_launch.STEP_PDL``): launched before the kernel before it ended, wait for it before any memory access
    # that may depend on it; mode 2 then lets the kernel after this one launch at once
    if PDL > 0:
        gdc_wait()
    if PDL > 1:
        gdc_launch_dependents()
    if not EARLY:
        b_v0, b_k0 = _step_load(p_ckb, p_cvb, w0, w1, o_d, o_dv, m_d, m_dv, HKV, D, DV, BW)
    if POS_TENSOR:
        pos = tl.load(p_pos).to(tl.int64)
    else:
        pos = pos_int.to(tl.int64)
    slot = pos % W
    n_valid = tl.minimum(pos + 1, W)
    w_ld = w1
    n_chunks = NW
    if DENSE:
        w_ld = tl.minimum(w1, n_valid)
        if DYN:
            n_chunks = tl.cdiv(w_ld - w0, BW)  # <= NW; <= 0 in a split past the last written slot
    p_kn = p_k + i_b.to(tl.int64) * s_kb + i_hk * s_kh
    if R2 > 0:  # RoPE here: the angles of pos (cos = 1, sin = 0 past the rotated dims; NaN past the tables)
        in_table = pos < N_ROT
        o_c = tl.where(o_d < R2, o_d, o_d - R2)
        m_c = tl.where(in_table, o_d < 2 * R2, False)  # a scalar: tl.where (triton 3.9's interpreter rejects `&`)
        b_cos = tl.load(p_cos + pos * s_rot + o_c, mask=m_c, other=1.0)
        b_sin = tl.load(p_sin + pos * s_rot + o_c, mask=m_c, other=0.0)
        b_cos = tl.where(in_table, b_cos, float("nan"))
        b_kn = _rope_load(p_kn, o_d, m_d, b_cos, b_sin, R2)
    else:
        b_kn = tl.load(p_kn + o_d, mask=m_d, other=0.0)
    b_vn = tl.load(p_v + i_b.to(tl.int64) * s_vb + i_hk * s_vh + o_dv, mask=m_dv, other=0.0)
    for g in tl.static_range(G):
        i_h = i_hk * G + g
        p_qh = p_q + i_b.to(tl.int64) * s_qb + i_h * s_qh
        if R2 > 0:
            b_q = _rope_load(p_qh, o_d, m_d, b_cos, b_sin, R2).to(tl.float32)
        else:
            b_q = tl.load(p_qh + o_d, mask=m_d, other=0.0).to(tl.float32)
        b_mi = tl.full([], -1e30, dtype=tl.float32)
        b_li = tl.full([], 0.0, dtype=tl.float32)
        b_acc = tl.zeros([BDV], dtype=tl.float32)
        if PREFETCH:  # chunk j + 1's loads go out before chunk j's reductions (two chunks of registers)
            b_vx, b_kx = _step_load(p_ckb, p_cvb, w0 + BW, w_ld, o_d, o_dv, m_d, m_dv, HKV, D, DV, BW)
        # chunk 0 serves every head of the group (one with no valid slot changes nothing)
        b_mi, b_li, b_acc = _step_chunk(b_v0, b_k0, b_q, b_kn, b_vn, b_mi, b_li, b_acc, w0, w1, slot, n_valid,
                                        scale_log2, BW)  # fmt: skip
        for j in range(1, n_chunks):
            if PREFETCH:
                b_v, b_k = b_vx, b_kx
                b_vx, b_kx = _step_load(p_ckb, p_cvb, w0 + (j + 1) * BW, w_ld, o_d, o_dv, m_d, m_dv, HKV, D, DV, BW)
            else:
                b_v, b_k = _step_load(p_ckb, p_cvb, w0 + j * BW, w_ld, o_d, o_dv, m_d, m_dv, HKV, D, DV, BW)
            b_mi, b_li, b_acc = _step_chunk(b_v, b_k, b_q, b_kn, b_vn, b_mi, b_li, b_acc, w0 + j * BW, w1, slot,
                                            n_valid, scale_log2, BW)  # fmt: skip
        if S == 1:
            p_ob = p_o + (i_b * H + i_h).to(tl.int64) * DV
            tl.store(p_ob + o_dv, (b_acc / b_li).to(p_o.dtype.element_ty), mask=m_dv)
        else:
            o_p = (i_b * H + i_h).to(tl.int64) * S + i_s
            tl.store(p_pm + o_p, b_mi)
            tl.store(p_pl + o_p, b_li)
            tl.store(p_pacc + o_p * DV + o_dv, b_acc, mask=m_dv)
    # in place: the split that holds the slot writes the new token (only it reads that slot)
    m_mine = (slot >= w0) & (slot < w1)  # a scalar: combined with tl.where (triton 3.9's interpreter rejects `&`)
    tl.store(p_ckb + slot * (HKV * D) + o_d, b_kn.to(p_ck.dtype.element_ty), mask=tl.where(m_mine, m_d, False))
    tl.store(p_cvb + slot * (HKV * DV) + o_dv, b_vn.to(p_cv.dtype.element_ty), mask=tl.where(m_mine, m_dv, False))
    if S > 1:
        # Every thread's partial stores come before the barrier, and the barrier before the counter's release
        # (acq_rel, GPU scope); the last arrival's acquire then makes all S splits' partials visible to it.
        tl.debug_barrier()
        last = tl.atomic_add(p_count + i_bh, 1, sem="acq_rel") == S - 1
        if last:
            for g in tl.static_range(G):
                _step_combine(p_pm, p_pl, p_pacc, p_o, i_b * H + i_hk * G + g, DV, BDV, S, BS)
            tl.atomic_xchg(p_count + i_bh, 0, sem="relaxed")


# ------------------------------------------------------------------------------------------ host side
def _empty(*shape: int, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    t = torch.empty(shape, device=like.device, dtype=like.dtype if dtype is None else dtype)
    return t.fill_(float("nan")) if POISON_OUTPUTS else t


def _dims(q: Tensor, v: Tensor) -> tuple[int, int, int, int]:
    D, DV = q.shape[-1], v.shape[-1]
    if max(D, DV) > MAX_HEAD_DIM:
        raise ValueError(
            f"sliding_window_attention (triton): head dims up to {MAX_HEAD_DIM} are supported, got d={D}, dv={DV}; "
            "use backend='torch' or split the heads"
        )
    return D, DV, max(16, next_pow2(D)), max(16, next_pow2(DV))


def _prec(q: Tensor) -> str:
    """fp32 inputs get true fp32 products (not tf32): the fp32 path is the accuracy path."""
    if interpreting():
        return "interp"
    return "ieee" if q.dtype == torch.float32 else "tf32"


def _cfg(kind: str, bd: int, window: int, elem: int = 2) -> dict:
    """Block sizes per kernel, padded head dim, window and input element size (~64 fp32 accumulator registers per
    thread). Forward: ``ALIGN`` aligns the key blocks to BN so that only the oldest ones test the window's lower end
    (see the kernel; default: on where some blocks lie inside every window, W ≥ BM + BN). fp32 tiles of head dim 128
    take the head-dim-256 tiles: the 16-bit ones need 320 KB of shared memory in fp32 (the H200 has 227 KB per
    block)."""
    if interpreting():
        return dict(BM=16, BN=16, num_warps=4, num_stages=1)
    big = bd > 128 or (elem > 2 and bd >= 128)
    # 16-bit tiles from the H200 tile sweep of 2026-11-28 17:26 (benchmarks/results/sliding_window.md, L=16384, W=64
    # and 128): fwd 64×32 beat the old 128×64 by 13–38% (d=64 W=64 0.258 → 0.185 ms, W=128 0.311 → 0.263; d=128 W=64
    # 0.514 → 0.318, W=128 0.594 → 0.518); dkdv at d=64 32×64 (f+b 1.102 → 0.825 ms at W=64); dq at d=64 64×64
    # (0.828 → 0.753), at d=128 64×32 (1.440 → 1.411)
    # Forward registers capped (session 11, results/session11/call4, same run, W=128 L=8192/16384, with the scale in the
    # exponent and the general loop unpipelined where the aligned loops run): d=64 at 80 registers (6 programs per SM
    # instead of 4) 0.134 → 0.126 ms / 0.257 → 0.251; d=128 at 128 registers and 2 stages (4 instead of 2) 0.257 →
    # 0.218 / 0.499 → 0.441. Fewer registers rematerialize: d=64 at 72, 0.177 ms.
    if kind == "fwd":
        if big:
            return dict(BM=64, BN=32, num_warps=8, num_stages=2)
        if elem > 2:  # fp32 d ≤ 64: uncapped
            return dict(BM=64, BN=32, num_warps=4, num_stages=3)
        if bd <= 64:
            return dict(BM=64, BN=32, num_warps=4, num_stages=3, maxnreg=80)
        return dict(BM=64, BN=32, num_warps=4, num_stages=2, maxnreg=128)
    if kind == "dkdv":
        if big:
            return dict(BM=32, BN=32, num_warps=8, num_stages=2)
        return (
            dict(BM=32, BN=64, num_warps=4, num_stages=3) if bd <= 64 else dict(BM=64, BN=64, num_warps=4, num_stages=2)
        )
    if big:  # dq
        return dict(BM=64, BN=32, num_warps=8, num_stages=2)
    return dict(BM=64, BN=64, num_warps=4, num_stages=2) if bd <= 64 else dict(BM=64, BN=32, num_warps=4, num_stages=2)


# Rings at least this wide load only their written slots (the kernel's DENSE): the attn mixer's KV cache is a ring
# of window = capacity that is never full while it decodes (1,536 of 2,048 slots in benchmarks/attention_step.py).
# Narrow sliding windows are full after W tokens and keep the loads that go out before pos arrives.
DENSE_MIN_W = 512


def _step_cfg(B: int, HKV: int, W: int, bd: int) -> dict:
    """Decode config; the interpreter's small chunks (several chunks per split, 2 splits) or `_step_cfg_gpu`."""
    if interpreting():
        return dict(S=2 if W > 8 else 1, BW=4, num_warps=4)
    return _step_cfg_gpu(B, HKV, W, bd)


def _step_cfg_gpu(B: int, HKV: int, W: int, bd: int) -> dict:
    """Decode: one program per (sequence, kv head), 16-byte loads. H200, W=64 d=128 H=16 (results/sliding_window.md,
    round 3): with ≥ 528 programs (4 per SM) one warp per program over chunks of 1K/bd slots, the next chunk loaded
    before the current one is reduced, is fastest (no cross-warp reductions, one DRAM latency in the open: 12.5 µs at
    B=64, 36.3 at B=256, against 13.1 / 39.3 without prefetch and 16-slot chunks, 16.1 / 48.8 with 4 warps and
    64-slot chunks); below that, 4 warps and chunks of up to 8K/bd slots (3.2 µs at B=1). Any W: the chunk loop runs
    cdiv(W, BW) times and the last prefetch (past the window) is masked. The window is split in S parts
    (flash-decoding) only when it spans several chunks and B·HKV programs cannot fill the chip (S = 2, 4 were
    slower at W=64)."""
    n_prog = B * HKV
    if n_prog >= 528:  # 2 × BW × bd elements of k and v in flight per warp (BW=8 at d=128: 125 registers)
        return dict(S=1, BW=min(next_pow2(W), max(4, 1024 // bd)), num_warps=1, PREFETCH=True)
    bw_cap = max(16, 8192 // bd)
    chunks = cdiv(W, bw_cap)
    S = 1 if (n_prog >= 128 or chunks <= 1) else max(1, min(chunks, cdiv(264, n_prog), 16))
    return dict(S=S, BW=min(next_pow2(cdiv(W, S)), bw_cap), num_warps=4)


def _c(BM: int, BN: int, w: int, s: int, **kw) -> dict:
    return dict(BM=BM, BN=BN, num_warps=w, num_stages=s, **kw)


# Configs that benchmarks/sliding_window.py --sweep times on the GPU (each checked against the fp64 oracle first,
# and by the `gpu` tests); the first of each list is the default of `_cfg` / `_step_cfg` (for the decode: its one-warp
# branch at d=128). Keys: (kind, padded head dim).
TILE_CANDIDATES = {
    ("fwd", 64): [_c(64, 32, 4, 3, maxnreg=80), _c(64, 32, 4, 3), _c(64, 64, 4, 3), _c(128, 64, 4, 3),
                  _c(128, 64, 8, 3), _c(128, 32, 8, 3), _c(64, 32, 4, 3, ALIGN=False), _c(32, 32, 4, 3)],
    ("fwd", 128): [_c(64, 32, 4, 2, maxnreg=128), _c(64, 32, 4, 3), _c(64, 64, 4, 3), _c(128, 64, 8, 3),
                   _c(128, 32, 8, 3), _c(64, 32, 4, 2, maxnreg=128, ALIGN=False), _c(64, 64, 8, 2)],
    ("dkdv", 64): [_c(32, 64, 4, 3), _c(64, 64, 4, 2), _c(64, 128, 8, 2), _c(32, 128, 8, 3), _c(32, 32, 4, 3)],
    ("dkdv", 128): [_c(64, 64, 4, 2), _c(32, 64, 4, 2), _c(64, 128, 8, 2), _c(64, 32, 4, 2)],
    ("dq", 64): [_c(64, 64, 4, 2), _c(64, 64, 4, 2, FUSE_DELTA=False), _c(64, 32, 4, 3), _c(128, 32, 4, 3),
                 _c(128, 64, 8, 2)],
    ("dq", 128): [_c(64, 32, 4, 2), _c(64, 32, 4, 2, FUSE_DELTA=False), _c(64, 64, 4, 2), _c(32, 32, 4, 2),
                  _c(32, 64, 4, 2)],
}  # fmt: skip
STEP_CANDIDATES = [  # decode (S splits of the window, BW slots per chunk, warps, next chunk loaded ahead)
    dict(S=1, BW=8, num_warps=1, PREFETCH=True),
    dict(S=1, BW=16, num_warps=1),
    dict(S=1, BW=16, num_warps=1, PREFETCH=True),
    dict(S=1, BW=8, num_warps=1),
    dict(S=2, BW=16, num_warps=1),
    dict(S=2, BW=8, num_warps=1, PREFETCH=True),
    dict(S=1, BW=32, num_warps=2, PREFETCH=True),
    dict(S=1, BW=64, num_warps=4),
]
# Tried in session 5 and removed (results/session5/sliding_window_decode_w*.md, same runs as the default): the loop on
# tensor cores (the group's heads as the rows of one [16, d] tile, two tl.dot per chunk) 21.5 / 71.4 µs at W=64
# B=64 / 256 vs 12.4 / 36.3 (its static loop is no shorter: 447 vs 465 instructions per 16-slot chunk at d=64, and
# 194 registers); long rings split in S=4 / 8 parts, 257 / 264 µs at W=2048 B=128 d=64 vs 248 (the default reads
# at 102% of copy bandwidth there: nothing to gain); maxnreg=128, 249 µs there and 20.1 vs 12.4 at W=64 B=64.


# Launch plans (grid and keyword arguments of every launch) cached per shape, window, dtype and tile function: the
# tile choice and its arithmetic cost ~10 µs of host time per fwd+bwd (benchmarks/sliding_window.py --host-overhead).
# The key holds `_cfg` itself, so a patched tile function (tests, the benchmark's sweep) gets its own plans; the
# sweep, whose one function changes its answers, calls `clear_plans()`.
_PLANS: dict = {}
_MAX_PLANS = 256


def clear_plans() -> None:
    """Forget the cached launch plans (after changing what `_cfg` returns without replacing it)."""
    _PLANS.clear()


def _plan(kind: str, q: Tensor, k: Tensor, v: Tensor, window: int) -> tuple:
    key = (kind, _cfg, interpreting(), q.shape, k.shape, v.shape[-1], q.dtype, window)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        plan = _PLANS[key] = (_fwd_plan if kind == "fwd" else _bwd_plan)(q, k, v, window)
    return plan


def _fwd_plan(q: Tensor, k: Tensor, v: Tensor, window: int) -> tuple:
    """``(grid, keyword arguments)`` of the forward launch."""
    B, Lq, H, _ = q.shape
    Lk, HKV = k.shape[1], k.shape[2]
    D, DV, BD, BDV = _dims(q, v)
    cfg = dict(_cfg("fwd", max(BD, BDV), window, q.element_size()))
    BM, BN = cfg["BM"], cfg["BN"]
    # aligned key blocks by default only when some lie inside every window (NU > 0, W ≥ BM + BN): at NU = 0 the
    # aligned path visits the same masked blocks in loops of 1–2 trips and measured 4–23% slower (H200, W = 64/128,
    # round 3; when the interior blocks still had a loop of their own)
    NU = max(0, (window - BM) // BN)
    aligned = cfg.pop("ALIGN", NU > 0) and (Lk - Lq) % BN == 0 and BM % BN == 0
    kw = dict(
        H=H, HKV=HKV, D=D, DV=DV, BD=BD, BDV=BDV, PREC=_prec(q), NB=cdiv(min(BM + window - 1, Lk), BN),
        NL=cdiv(window - 1, BN) if aligned else 0, NU=NU if aligned else 0,
        DIAG_MASK=2 if aligned and window >= BM else 3,  # one specialization of the unaligned path, whatever W
        GEN_STAGES=1 if aligned else None, **cfg,
    )  # fmt: skip
    return (cdiv(Lq, BM), B * H), kw


def _bwd_plan(q: Tensor, k: Tensor, v: Tensor, window: int) -> tuple:
    """``(delta launch (grid, keywords) or None, dq grid, dq keywords, dkdv grid, dkdv keywords)``."""
    B, Lq, H, _ = q.shape
    Lk, HKV = k.shape[1], k.shape[2]
    D, DV, BD, BDV = _dims(q, v)
    common = dict(H=H, HKV=HKV, D=D, DV=DV, BD=BD, BDV=BDV, PREC=_prec(q))
    cfg_dq = dict(_cfg("dq", max(BD, BDV), window, q.element_size()))
    fuse = cfg_dq.pop("FUSE_DELTA", True)
    delta = None
    if not fuse:
        BMD = 16 if interpreting() else 64
        delta = (cdiv(Lq, BMD), B * H), dict(H=H, DV=DV, BM=BMD, BDV=BDV)
    kw_dq = dict(NB=cdiv(min(cfg_dq["BM"] + window - 1, Lk), cfg_dq["BN"]), FUSE_DELTA=fuse, **common, **cfg_dq)
    cfg = _cfg("dkdv", max(BD, BDV), window, q.element_size())
    kw_dkdv = dict(NB=cdiv(min(cfg["BN"] + window - 1, Lq), cfg["BM"]), **common, **cfg)
    return delta, (cdiv(Lq, cfg_dq["BM"]), B * H), kw_dq, (cdiv(Lk, cfg["BN"]), B * HKV), kw_dkdv


def _fwd(q: Tensor, k: Tensor, v: Tensor, window: int, scale: float) -> tuple[Tensor, Tensor]:
    """The forward launch, shared by the custom op (torch.compile) and the eager path: ``(o, lse)``. q, k, v are read
    through their strides (not part of the cached plan: views of equal shapes differ in them)."""
    (q, sq), (k, sk), (v, sv) = unit_stride_rows(q), unit_stride_rows(k), unit_stride_rows(v)
    grid, kw = _plan("fwd", q, k, v, window)
    B, Lq, H, _ = q.shape
    o = _empty(B, Lq, H, v.shape[-1], like=q)
    lse = _empty(B, H, Lq, like=q, dtype=torch.float32)
    _launch.fast(sliding_window_fwd_kernel)[grid](
        q, k, v, o, lse, Lq, k.shape[1], window, scale * LOG2E, *sq[:3], *sk[:3], *sv[:3], FOLD=scale > 0, **kw
    )  # fmt: skip
    return o, lse


def _bwd(
    do: Tensor, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, window: int, scale: float
) -> tuple[Tensor, Tensor, Tensor]:
    """The backward launches, shared by the custom op and the eager path: ``(dq, dk, dv)``."""
    (q, sq), (k, sk), (v, sv) = unit_stride_rows(q), unit_stride_rows(k), unit_stride_rows(v)
    do, o = do.contiguous(), o.contiguous()
    delta_launch, grid_dq, kw_dq, grid_dkdv, kw_dkdv = _plan("bwd", q, k, v, window)
    B, Lq, H, _ = q.shape
    Lk = k.shape[1]
    delta = _empty(B, H, Lq, like=q, dtype=torch.float32)
    dq, dk, dv = _empty(*q.shape, like=q), _empty(*k.shape, like=k), _empty(*v.shape, like=v)
    strides = (*sq[:3], *sk[:3], *sv[:3])  # launch arguments, not in the cached plan: equal shapes, other strides
    if delta_launch is not None:
        _launch.fast(sliding_window_bwd_delta_kernel)[delta_launch[0]](o, do, delta, Lq, **delta_launch[1])
    _launch.fast(sliding_window_bwd_dq_kernel)[grid_dq](
        q, k, v, o, do, lse, delta, dq, Lq, Lk, window, scale, scale * LOG2E, *strides, **kw_dq
    )  # fmt: skip
    # after dq: it reads the delta that dq wrote
    _launch.fast(sliding_window_bwd_dkdv_kernel)[grid_dkdv](
        q, k, v, do, lse, delta, dk, dv, Lq, Lk, window, scale, scale * LOG2E, *strides, **kw_dkdv
    )  # fmt: skip
    return dq, dk, dv


@torch.library.custom_op("mixerzoo::sliding_window_fwd", mutates_args=())
def sliding_window_fwd(q: Tensor, k: Tensor, v: Tensor, window: int, scale: float) -> tuple[Tensor, Tensor]:
    """``(o [B, Lq, H, DV] in q's dtype, lse [B, H, Lq] fp32, log2 units)``."""
    return _fwd(q, k, v, window, scale)


@sliding_window_fwd.register_fake
def _(q, k, v, window, scale):
    B, Lq, H, _ = q.shape
    return q.new_empty(B, Lq, H, v.shape[-1]), q.new_empty(B, H, Lq, dtype=torch.float32)


@torch.library.custom_op("mixerzoo::sliding_window_bwd", mutates_args=())
def sliding_window_bwd(
    do: Tensor, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, window: int, scale: float
) -> tuple[Tensor, Tensor, Tensor]:
    """``(dq, dk, dv)`` in the inputs' dtypes."""
    return _bwd(do, q, k, v, o, lse, window, scale)


@sliding_window_bwd.register_fake
def _(do, q, k, v, o, lse, window, scale):
    # contiguous, as the real op's (empty_like would keep the strides of a dense permuted view of q, k or v)
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _fwd_setup(ctx, inputs, output):
    q, k, v, window, scale = inputs
    o, lse = output
    ctx.save_for_backward(q, k, v, o, lse)
    ctx.window, ctx.scale = window, scale
    ctx.mark_non_differentiable(lse)


def _fwd_backward(ctx, do, dlse):
    q, k, v, o, lse = ctx.saved_tensors
    dq, dk, dv = torch.ops.mixerzoo.sliding_window_bwd(do, q, k, v, o, lse, ctx.window, ctx.scale)
    return dq, dk, dv, None, None


sliding_window_fwd.register_autograd(_fwd_backward, setup_context=_fwd_setup)


class _SlidingWindow(torch.autograd.Function):
    """The eager path: the custom ops' launches without the dispatcher. ``register_autograd``'s wrapper runs
    ``fill_defaults`` over the schema and autograd materializes a zero ``dlse`` (a memset) for the lse output that
    nothing uses; this Function returns o alone (benchmarks/notes/window_conv.md, "Host overhead (session 3)")."""

    @staticmethod
    def forward(ctx, q, k, v, window, scale):
        o, lse = _fwd(q, k, v, window, scale)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.window, ctx.scale = window, scale
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = _bwd(do, q, k, v, o, lse, ctx.window, ctx.scale)
        return dq, dk, dv, None, None


@torch.library.custom_op("mixerzoo::sliding_window_step", mutates_args=("cache_k", "cache_v"))
def sliding_window_step(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cache_k: Tensor,
    cache_v: Tensor,
    position: Tensor | None,
    position_int: int,
    scale: float,
    early_reads: bool = False,
    rope_cos: Tensor | None = None,
    rope_sin: Tensor | None = None,
) -> Tensor:
    """One token over the ring buffer; writes slot ``position % W`` of the caches in place. With ``rope_cos`` and
    ``rope_sin`` (fp32 ``[N, ·, R2]`` tables, ``mixers.rotary.rotary_table``) q and k arrive unrotated."""
    if not (cache_k.is_contiguous() and cache_v.is_contiguous()):
        raise ValueError(
            "sliding_window_attention_step (triton): cache_k and cache_v must be contiguous (updated in place)"
        )
    # strided reads: views of the projection row, no copy
    (q, sq), (k, sk), (v, sv) = unit_stride_rows(q), unit_stride_rows(k), unit_stride_rows(v)
    B, H, _ = q.shape
    W, HKV = cache_k.shape[1], cache_k.shape[2]
    D, DV, BD, BDV = _dims(q, v)
    cfg = _step_cfg(B, HKV, W, max(BD, BDV))
    S, BW, nw, prefetch = cfg["S"], cfg["BW"], cfg["num_warps"], cfg.get("PREFETCH", False)
    WS = cdiv(W, S)  # slots per split
    o = _empty(B, H, DV, like=q)
    if S > 1:
        pm, pl = _empty(B * H, S, like=q, dtype=torch.float32), _empty(B * H, S, like=q, dtype=torch.float32)
        pacc = _empty(B * H, S, DV, like=q, dtype=torch.float32)
        count = _launch.arrival_counters("sliding_window_step", q.device, B * HKV)
    else:
        pm = pl = pacc = count = o
    if rope_cos is not None and rope_cos.shape[-1] > 0:  # (head dim 1: nothing turns)
        r2, n_rot, s_rot = rope_cos.shape[-1], rope_cos.shape[0], rope_cos.stride(0)
    else:
        r2, n_rot, s_rot, rope_cos, rope_sin = 0, 0, 0, o, o
    _launch.fast(sliding_window_step_kernel)[(B * HKV, S)](
        q, k, v, cache_k, cache_v, position if position is not None else q, position_int, o, pm, pl, pacc, count,
        rope_cos, rope_sin, n_rot, s_rot, W, WS, scale * LOG2E, *sq[:2], *sk[:2], *sv[:2],
        H=H, HKV=HKV, D=D, DV=DV, BD=BD, BDV=BDV, BW=BW, NW=cdiv(WS, BW), S=S, BS=next_pow2(S),
        POS_TENSOR=position is not None, PREFETCH=prefetch, DENSE=W >= DENSE_MIN_W, DYN=not interpreting(),
        EARLY=early_reads, R2=r2, num_warps=nw, **_launch.pdl_kwargs(q),
    )  # fmt: skip
    return o


@sliding_window_step.register_fake
def _(q, k, v, cache_k, cache_v, position, position_int, scale, early_reads=False, rope_cos=None, rope_sin=None):
    return q.new_empty(q.shape[0], q.shape[1], v.shape[-1])


def _scale(q: Tensor, scale: float | None) -> float:
    return q.shape[-1] ** -0.5 if scale is None else float(scale)


def sliding_window_triton(q: Tensor, k: Tensor, v: Tensor, window: int, *, scale: float | None = None) -> Tensor:
    """Fused sliding-window attention, ``o [B, Lq, H, DV]``; differentiable in q, k, v.

    Under torch.compile: the registered custom op. Eager: the launch itself when no input needs a gradient, else one
    ``torch.autograd.Function`` (the custom op's dispatch and autograd wrapper cost more host time than the kernels
    at L ≤ 8192)."""
    _dims(q, v)
    scale = _scale(q, scale)
    if torch.compiler.is_compiling():
        o, _ = torch.ops.mixerzoo.sliding_window_fwd(q, k, v, window, scale)
    elif torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        o = _SlidingWindow.apply(q, k, v, window, scale)
    else:
        o, _ = _fwd(q, k, v, window, scale)
    return o


def sliding_window_step_triton(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cache_k: Tensor,
    cache_v: Tensor,
    position: int | Tensor,
    *,
    scale: float | None = None,
    early_reads: bool = False,
    rope: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Decode step over the ring buffer (in place). ``position``: int, or a 1-element integer tensor on q's device
    (read inside the kernel: no host sync, CUDA-graph capturable). ``early_reads``, ``rope``: see
    ``sliding_window_attention_step`` (which checks ``rope``)."""
    op = "sliding_window_attention_step (triton)"
    if isinstance(position, Tensor):
        if position.numel() != 1 or position.dtype not in (torch.int64, torch.int32) or position.device != q.device:
            raise ValueError(
                f"{op}: position must be an int or a 1-element int64/int32 tensor on {q.device}, got "
                f"{position.dtype} {tuple(position.shape)} on {position.device}"
            )
        pos_t, pos_i = position.reshape(()), 0
    else:
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ValueError(
                f"{op}: position must be a non-negative int (tokens seen before this one), got {position!r}"
            )
        pos_t, pos_i = None, int(position)
    cos, sin = rope if rope is not None else (None, None)
    return torch.ops.mixerzoo.sliding_window_step(
        q, k, v, cache_k, cache_v, pos_t, pos_i, _scale(q, scale), early_reads, cos, sin
    )
