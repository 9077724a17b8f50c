"""Triton kernels for causal linear attention with the feature map fused in (forward, backward, decode).

Legend
------
- Inputs ``q, k [B, L, H, DK]`` and ``v, o [B, L, H, DV]``, made contiguous by the caller; ``i_bh``
  indexes ``B·H`` (``i_b = i_bh // H``, ``i_h = i_bh % H``). Token ``t`` of head ``i_bh`` sits at
  ``i_b·L·H·W + t·H·W + i_h·W`` (W the row width).
- Features ``φ [BT, BD]`` are computed per tile in registers from the loaded ``[BT, BK]`` q/k tile
  (fp32) and never written to memory. The *internal* feature space has ``NDT`` tiles of ``BD``
  columns (``DI = NDT·BD`` features, zero-padded); ``triton_ops`` converts it to the canonical
  feature order of the torch maps at the API boundary.
- States ``S [B·H, NC, DI, DV]`` / ``Z [B·H, NC, DI]`` fp32: the state entering chunk ``c`` (chunk
  mode), written by ``_la_state_fwd_kernel`` (``serial``: one scan per (feature tile, value tile, head)) or by
  ``_la_chunk_state_kernel`` (or ``_la_chunk_state_head_kernel``) + ``_la_state_scan_kernel`` (``parallel``: every
  chunk's own contribution at once, then a matmul-free prefix sum), and read by ``_la_out_fwd_kernel``; ``dS``/``dZ`` the same for the reverse scan. ``den [B·H, L]`` fp32 is the stored denominator ``φq·Σφk + eps``.
- Names: ``b_`` register blocks, ``p_`` pointers, ``o_`` offsets, ``m_`` masks, ``i_`` program ids or
  loop indices; upper-case names are ``tl.constexpr``: ``BT`` chunk (tokens), ``BK`` padded d′,
  ``BD`` feature tile, ``BV`` value tile, ``FM`` the feature map id (``FM_IDS``).

Feature maps (each a branch of ``_phi_fwd`` / ``_phi_bwd``; ``SC1 = d′^-¼``, ``SC2 = 1/(√2·√d′)``):
- identity ``x``; relu ``max(x, 0)``; poselu ``x + 1 if x > 0 else exp(x)`` (= elu + 1, no
  cancellation); square ``x²``; cosformer tile 0 ``relu(x)·cos(π i/2M)``, tile 1 ``relu(x)·sin(π i/2M)``
  with i = offset + t the absolute position; performer ``exp(W x̃ − ‖x̃‖²/2)/√m`` with ``x̃ = x·SC1``, the
  projection tile ``[BD, BK]`` loaded once per tile, the projection a ``tf32x3`` tensor-core dot (``ieee`` for fp32
  inputs; ``_dot_f32``) and the exp in fp32.
- taylor: first-order tiles ``[x·SC1 (columns < DK), 1 (column DK)]``; second-order tiles hold the full
  d′×d′ block ``x_i x_j·SC2`` (``R = BD // BK`` rows of i per tile), so ``φq·φk = 1 + s + s²/2`` with
  ``s = q·k/√d′`` (BASED, arXiv 2402.18668). Columns are gathered with exact 0/1 selection matmuls
  (bf16/fp16 values are exact in tf32). Inside a chunk Taylor works in score space (``SCORE``):
  ``A = 1 + s + s²/2`` from one ``[BT, BK]×[BK, BT]`` product.
"""

from __future__ import annotations

import os

import triton
import triton.language as tl

FM_IDS = {"identity": 0, "relu": 1, "poselu": 2, "square": 3, "cosformer": 4, "performer": 5, "taylor": 6}
SQRT2 = tl.constexpr(1.4142135623730951)  # a global a @triton.jit function may read
# The chunked kernels also take FM = 7: Taylor in the symmetric internal layout (``triton_ops.TAYLOR_SYMMETRIC``).


def _interpreter_index_shim() -> None:
    """Under ``TRITON_INTERPRET=1`` with numpy >= 2.4, ``range(n)`` over a runtime int fails (the interpreter
    calls ``int()`` on a 1-element array, an error since numpy 2.4); make ``__index__`` take the element."""
    from triton.runtime import interpreter

    original = interpreter._patch_lang_tensor
    if getattr(original, "_mixerzoo_shim", False):
        return

    def patched(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    patched._mixerzoo_shim = True
    interpreter._patch_lang_tensor = patched


if os.environ.get("TRITON_INTERPRET", "0") == "1":
    _interpreter_index_shim()


@triton.jit
def _load_w(p_w, i_d, DK: tl.constexpr, BK: tl.constexpr, BD: tl.constexpr, M: tl.constexpr, FM: tl.constexpr):
    """Performer: the projection tile ``W[i_d·BD : (i_d+1)·BD, :DK]`` as ``[BD, BK]`` fp32; else a dummy."""
    if FM == 5:
        o_c = i_d * BD + tl.arange(0, BD)
        o_k = tl.arange(0, BK)
        m_w = (o_c[:, None] < M) & (o_k[None, :] < DK)
        return tl.load(p_w + o_c[:, None] * DK + o_k[None, :], mask=m_w, other=0.0)
    else:
        return 0.0


@triton.jit
def _mm(a, b, PREC: tl.constexpr):
    """``a @ b`` with fp32 accumulation at the launch's dot precision ``PREC``: ``ieee`` (fp32 inputs), ``tf32``
    (fp16 inputs), ``bf16`` (bf16 inputs: both operands rounded to bf16, the tensor cores' native rate, as FLA's
    kernels do; products with at least 64 output columns), or ``bf16emu``: the same rounding for the CPU interpreter,
    whose bf16 dot is broken (the rounded values' products are exact in fp32, so an fp32 dot of them equals the bf16
    dot up to summation order)."""
    if PREC == "bf16" and b.shape[1] >= 64:
        return tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16))
    elif PREC == "bf16emu":
        return tl.dot(a.to(tl.bfloat16).to(tl.float32), b.to(tl.bfloat16).to(tl.float32), input_precision="ieee")
    elif PREC == "bf16":
        # Fewer than 64 output columns: tf32. With bf16 operands there, Triton 3.6 on the H200 faulted (PosELU's
        # backward, 16 columns) or computed a wrong dq (Performer at m = 17, 32 columns): ``DOTS_BF16`` in triton_ops.
        # The interpreter rounds every product (``bf16emu``), a superset, so the CPU tests check the rounding itself.
        return tl.dot(a, b, input_precision="tf32")
    else:
        return tl.dot(a, b, input_precision=PREC)


@triton.jit
def _mm_hi(a, b, PREC: tl.constexpr):
    """``_mm`` at no less than tf32: for the one product whose result cancels against an fp32 term that its operand
    rounding is not mirrored in (``V·dSᵀ + dZ`` in ``_state_grad_k``)."""
    if PREC == "bf16" or PREC == "bf16emu":
        return tl.dot(a, b, input_precision="tf32")
    else:
        return tl.dot(a, b, input_precision=PREC)


@triton.jit
def _rnd(x, PREC: tl.constexpr):
    """``x`` rounded as ``_mm`` will round it (bf16 modes), else unchanged: for a tile that feeds both a product and
    an fp32 sum (φ into S and z, A into num and den), so that the two see the same values and o stays an exact
    weighted average of the values (the backward's ``do·(v − o)`` terms rely on that)."""
    if PREC == "bf16" or PREC == "bf16emu":
        return x.to(tl.bfloat16).to(tl.float32)
    else:
        return x


@triton.jit
def _dot_f32(a, b, PREC: tl.constexpr):
    """A product that must keep ~fp32 accuracy (performer's projection, whose error the exp amplifies): ``ieee``
    (FMA) with fp32 inputs, else ``tf32x3`` (three tensor-core tf32 products of the hi/lo split, error ~fp32)."""
    if PREC == "ieee":
        return tl.dot(a, b, input_precision="ieee")
    else:
        return tl.dot(a, b, input_precision="tf32x3")


@triton.jit
def _taylor_sym_cols(i_d, SC1, SC2, DK: tl.constexpr, BD: tl.constexpr, NT1: tl.constexpr, BKP: tl.constexpr):
    """Taylor's symmetric layout, feature tile ``i_d``: for each column, the factors' indices ``(a, b)`` into x
    (−1: the factor is 1) and the coefficient, so that ``φ = coef·x_a·x_b``. Tiles ``< NT1``: ``[x·SC1, 1, x_i²·SC2,
    0…]``; then blocks of ``BKP`` columns, block p holding ``x_p·x_j`` (j > p) and then ``x_i·x_j`` (i = d′−1−p,
    j > i), each times √2·SC2 (the pair's two entries of the full d′×d′ block in one column)."""
    o_c = i_d * BD + tl.arange(0, BD)
    is_x = o_c < DK
    is_one = o_c == DK
    is_sq = (o_c > DK) & (o_c <= 2 * DK)
    o_p = o_c - NT1 * BD  # column within the pair blocks (negative in the first tiles)
    p = tl.maximum(o_p, 0) // BKP
    cc = tl.maximum(o_p, 0) % BKP
    n1 = DK - 1 - p  # row p's entries
    in_pairs = (o_p >= 0) & (2 * p < DK)
    first = in_pairs & (cc < n1)
    second = in_pairs & (cc >= n1) & (cc < DK - 1) & (DK - 1 - p != p)
    i2 = DK - 1 - p
    o_a = tl.where(is_x, o_c, tl.where(is_sq, o_c - DK - 1, tl.where(first, p, tl.where(second, i2, -1))))
    o_b = tl.where(is_sq, o_c - DK - 1, tl.where(first, p + 1 + cc, tl.where(second, i2 + 1 + cc - n1, -1)))
    coef = tl.where(is_x, SC1, tl.where(is_one, 1.0, tl.where(is_sq, SC2, tl.where(first | second, SQRT2 * SC2, 0.0))))
    return o_a, o_b, coef


@triton.jit
def _phi_fwd(
    b_x, b_pos, b_w, i_d, SC1, SC2, ANG, MS,
    FM: tl.constexpr, DK: tl.constexpr, BK: tl.constexpr, BD: tl.constexpr, NT1: tl.constexpr, M: tl.constexpr,
    PREC: tl.constexpr,
):  # fmt: skip
    """Feature tile ``i_d`` of ``b_x [BT, BK]`` (fp32, zero past DK): ``[BT, BD]`` fp32."""
    o_k = tl.arange(0, BK)
    if FM == 0:  # identity
        b_phi = b_x
    elif FM == 1:  # relu
        b_phi = tl.maximum(b_x, 0.0)
    elif FM == 2:  # poselu: elu(x) + 1 without the (exp(x) - 1) + 1 cancellation
        b_phi = tl.where(o_k[None, :] < DK, tl.where(b_x > 0, b_x + 1.0, tl.exp(tl.minimum(b_x, 0.0))), 0.0)
    elif FM == 3:  # square
        b_phi = b_x * b_x
    elif FM == 4:  # cosformer: tile 0 cos, tile 1 sin of the absolute position's angle
        b_ang = b_pos.to(tl.float32) * ANG
        b_trig = tl.where(i_d == 0, tl.cos(b_ang), tl.sin(b_ang))
        b_phi = tl.maximum(b_x, 0.0) * b_trig[:, None]
    elif FM == 5:  # performer (FAVOR+): exp(W x̃ − ‖x̃‖²/2)/√m, projection to ~fp32 accuracy
        b_xs = b_x * SC1
        b_u = _dot_f32(b_xs, tl.trans(b_w), PREC)  # [BT, BD]
        b_n = 0.5 * tl.sum(b_xs * b_xs, axis=1)
        o_c = i_d * BD + tl.arange(0, BD)
        b_phi = tl.where(o_c[None, :] < M, tl.exp(b_u - b_n[:, None]) * MS, 0.0)
    elif FM == 7:  # taylor, symmetric layout (M = the pair-block width)
        o_a, o_b, coef = _taylor_sym_cols(i_d, SC1, SC2, DK, BD, NT1, M)
        b_a = _mm(b_x, (o_k[:, None] == o_a[None, :]).to(tl.float32), PREC)
        b_b = _mm(b_x, (o_k[:, None] == o_b[None, :]).to(tl.float32), PREC)
        b_a += (o_a < 0).to(tl.float32)[None, :]
        b_b += (o_b < 0).to(tl.float32)[None, :]
        b_phi = b_a * b_b * coef[None, :]
    else:  # taylor
        o_d = tl.arange(0, BD)
        if i_d < NT1:
            o_c = i_d * BD + o_d
            b_sel = (o_k[:, None] == o_c[None, :]).to(tl.float32)  # [BK, BD]
            b_phi = _mm(b_x, b_sel, PREC) * SC1 + (o_c == DK).to(tl.float32)[None, :]
        else:
            o_i = (i_d - NT1) * (BD // BK) + o_d // BK
            o_j = o_d % BK
            b_a = _mm(b_x, (o_k[:, None] == o_i[None, :]).to(tl.float32), PREC)
            b_b = _mm(b_x, (o_k[:, None] == o_j[None, :]).to(tl.float32), PREC)
            b_phi = b_a * b_b * SC2
    return b_phi


@triton.jit
def _performer_dx(b_x, b_phi, b_g, b_w, SC1, PREC: tl.constexpr):
    """Performer's ``dx`` from its features ``b_phi`` and their gradient ``b_g``: with ``x̃ = x·SC1`` and
    ``h = dφ ⊙ φ``, ``dx = (h·W − Σh · x̃)·SC1``."""
    b_h = b_phi * b_g
    return (_dot_f32(b_h, b_w, PREC) - tl.sum(b_h, axis=1)[:, None] * (b_x * SC1)) * SC1


@triton.jit
def _phi_bwd(
    b_x, b_g, b_pos, b_w, i_d, SC1, SC2, ANG, MS,
    FM: tl.constexpr, DK: tl.constexpr, BK: tl.constexpr, BD: tl.constexpr, NT1: tl.constexpr, M: tl.constexpr,
    PREC: tl.constexpr,
):  # fmt: skip
    """``dx [BT, BK]`` for the feature-tile gradient ``b_g = dL/dφ [BT, BD]`` of tile ``i_d``."""
    o_k = tl.arange(0, BK)
    if FM == 0:
        b_dx = b_g
    elif FM == 1:
        b_dx = tl.where(b_x > 0, b_g, 0.0)
    elif FM == 2:
        b_dx = b_g * tl.where(b_x > 0, 1.0, tl.exp(tl.minimum(b_x, 0.0)))
    elif FM == 3:
        b_dx = 2.0 * b_g * b_x
    elif FM == 4:
        b_ang = b_pos.to(tl.float32) * ANG
        b_trig = tl.where(i_d == 0, tl.cos(b_ang), tl.sin(b_ang))
        b_dx = tl.where(b_x > 0, b_g * b_trig[:, None], 0.0)
    elif FM == 5:
        b_phi = _phi_fwd(b_x, b_pos, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
        b_dx = _performer_dx(b_x, b_phi, b_g, b_w, SC1, PREC)
    elif FM == 7:
        o_a, o_b, coef = _taylor_sym_cols(i_d, SC1, SC2, DK, BD, NT1, M)
        b_sa = (o_k[:, None] == o_a[None, :]).to(tl.float32)  # [BK, BD]
        b_sb = (o_k[:, None] == o_b[None, :]).to(tl.float32)
        b_a = _mm(b_x, b_sa, PREC) + (o_a < 0).to(tl.float32)[None, :]
        b_b = _mm(b_x, b_sb, PREC) + (o_b < 0).to(tl.float32)[None, :]
        b_gc = b_g * coef[None, :]
        b_dx = _mm(b_gc * b_b, tl.trans(b_sa), PREC)
        b_dx += _mm(b_gc * b_a, tl.trans(b_sb), PREC)
    else:
        o_d = tl.arange(0, BD)
        if i_d < NT1:
            o_c = i_d * BD + o_d
            b_selt = (o_c[:, None] == o_k[None, :]).to(tl.float32)  # [BD, BK]
            b_dx = _mm(b_g * SC1, b_selt, PREC)
        else:
            o_i = (i_d - NT1) * (BD // BK) + o_d // BK
            o_j = o_d % BK
            b_sa = (o_k[:, None] == o_i[None, :]).to(tl.float32)  # [BK, BD]
            b_sb = (o_k[:, None] == o_j[None, :]).to(tl.float32)
            b_a = _mm(b_x, b_sa, PREC)
            b_b = _mm(b_x, b_sb, PREC)
            b_dx = _mm(b_g * b_b * SC2, tl.trans(b_sa), PREC)
            b_dx += _mm(b_g * b_a * SC2, tl.trans(b_sb), PREC)
    return b_dx


@triton.jit
def _taylor_first(b_x, b_valid, i_d, SC1, DK: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BD: tl.constexpr,
                  R: tl.constexpr):  # fmt: skip
    """Taylor's first-order feature tile ``i_d < NT1`` by broadcasting, no selection matmul: ``[x·SC1, 1, 0…]``, x in
    the first BK columns of tile 0 (``R = BD // BK`` blocks of BK per tile), the constant 1 at column DK where
    ``b_valid`` ([BT] float, 1 on rows < L)."""
    o_r = tl.arange(0, R)
    o_d = i_d * BD + tl.arange(0, BD)
    b_sel = ((o_r == 0) & (i_d == 0)).to(tl.float32)
    b_one = b_valid[:, None] * (o_d == DK).to(tl.float32)[None, :]
    return tl.reshape(b_x[:, None, :] * b_sel[None, :, None], [BT, BD]) * SC1 + b_one


@triton.jit
def _taylor_rows(p_xt, m_t, i_r, DK: tl.constexpr, R: tl.constexpr):
    """Columns ``i_r·R … i_r·R + R − 1`` of the chunk's x as ``[BT, R]`` fp32 (``p_xt``: ``[BT, 1]`` row pointers;
    a reload of rows the caller already read, served from L1), zero past DK and on masked rows."""
    o_i = i_r * R + tl.arange(0, R)
    return tl.load(p_xt + o_i[None, :], mask=m_t[:, None] & (o_i[None, :] < DK), other=0.0).to(tl.float32)


@triton.jit
def _taylor_second(b_x, b_xi, SC2, BT: tl.constexpr, BD: tl.constexpr):
    """Taylor's second-order tile ``NT1 + i_r``: column ``r·BK + j`` holds ``x_{i_r·R + r}·x_j·SC2`` (``b_xi`` from
    ``_taylor_rows``)."""
    return tl.reshape(b_xi[:, :, None] * b_x[:, None, :], [BT, BD]) * SC2


@triton.jit
def _load_rows(p_base, o_t, m_t, L, H, W: tl.constexpr, BW: tl.constexpr):
    """Rows ``o_t`` (masked by ``m_t``) of one head of a ``[B, L, H, W]`` tensor, as ``[BT, BW]`` (input dtype)."""
    return _load_vtile(p_base, 0, o_t, m_t, L, H, W, BW)


@triton.jit
def _load_vtile(p_base, i_v, o_t, m_t, L, H, W: tl.constexpr, BW: tl.constexpr):
    """Columns ``i_v·BW … i_v·BW + BW − 1`` (masked past W) of rows ``o_t`` of one head of a ``[B, L, H, W]``
    tensor: value tile i_v, ``[BT, BW]`` (input dtype). The column mask counts from the row's start, so the last,
    partial tile reads nothing past the row (offsetting the pointer by i_v·BW and masking ``< W`` from there read up
    to BW − W % BW elements past the tensor's end: an illegal address on the GPU at the end of an allocation, e.g.
    dv = 112 with BV = 64)."""
    o_w = i_v * BW + tl.arange(0, BW)
    p = p_base + o_t[:, None].to(tl.int64) * (H * W) + o_w[None, :]
    return tl.load(p, mask=m_t[:, None] & (o_w[None, :] < W), other=0.0)


@triton.jit
def _mm_in(b_x, DOT16: tl.constexpr):
    """A q/k tile as a score-matmul operand: native 16-bit (exact products, fp32 accumulation) or fp32.

    ``DOT16`` is False for fp32 inputs and under the CPU interpreter, whose dot multiplies bf16 bit patterns."""
    if DOT16:
        return b_x
    else:
        return b_x.to(tl.float32)


@triton.jit
def _la_state_fwd_kernel(
    k, v, w, s0, z0, s_all, z_all, sT, zT,
    L, H, NC, offset, SC1, SC2, ANG, MS,
    FM: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BD: tl.constexpr,
    BV: tl.constexpr, NT1: tl.constexpr, NDT: tl.constexpr, M: tl.constexpr, PREC: tl.constexpr,
    USE_S0: tl.constexpr, STORE_ALL: tl.constexpr, STORE_FINAL: tl.constexpr,
):  # fmt: skip
    """Sequential scan over chunks of one (feature tile, value tile, head): ``S += φ(K_c)ᵀ V_c``, ``Z += Σ φ(K_c)``.

    Grid ``(NDT, cdiv(DV, BV), B·H)``. Stores the state entering every chunk (``STORE_ALL``) and/or
    the final state.
    """
    i_d, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    DI = NDT * BD
    o_t = tl.arange(0, BT)
    o_d = i_d * BD + tl.arange(0, BD)
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < DV
    p_k = k + (i_b.to(tl.int64) * L * H + i_h) * DK
    p_v = v + (i_b.to(tl.int64) * L * H + i_h) * DV
    b_w = _load_w(w, i_d, DK, BK, BD, M, FM)
    o_sd = i_bh.to(tl.int64) * DI * DV + o_d[:, None] * DV + o_v[None, :]  # [BD, BV] within one state
    if USE_S0:
        b_s = tl.load(s0 + o_sd, mask=m_v[None, :], other=0.0)
        b_z = tl.load(z0 + i_bh.to(tl.int64) * DI + o_d)
    else:
        b_s = tl.zeros([BD, BV], dtype=tl.float32)
        b_z = tl.zeros([BD], dtype=tl.float32)
    for i_c in range(NC):
        if STORE_ALL:
            o_c = (i_bh.to(tl.int64) * NC + i_c) * DI
            tl.store(s_all + o_c * DV + o_d[:, None] * DV + o_v[None, :], b_s, mask=m_v[None, :])
            # z once per head (value tile 0); tl.where, not `&`: triton 3.9's interpreter rejects a bool tensor & a
            # bool scalar as a mask (as every z store below)
            tl.store(z_all + o_c + o_d, b_z, mask=tl.where(i_v == 0, o_d < DI, False))
        o_tc = i_c * BT + o_t
        m_t = o_tc < L
        b_k = _load_rows(p_k, o_tc, m_t, L, H, DK, BK).to(tl.float32)
        b_phi = _phi_fwd(b_k, offset + o_tc, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
        b_phi = _rnd(tl.where(m_t[:, None], b_phi, 0.0), PREC)
        b_vv = _load_vtile(p_v, i_v, o_tc, m_t, L, H, DV, BV).to(tl.float32)
        b_s += _mm(tl.trans(b_phi), b_vv, PREC)
        b_z += tl.sum(b_phi, axis=0)
    if STORE_FINAL:
        tl.store(sT + o_sd, b_s, mask=m_v[None, :])
        tl.store(zT + i_bh.to(tl.int64) * DI + o_d, b_z, mask=tl.where(i_v == 0, o_d < DI, False))


@triton.jit
def _chunk_row_weights(den, dden, i_bh, o_tc, m_t, L, GRAD: tl.constexpr, NORMALIZE: tl.constexpr):
    """Per-token ``(rs, g)`` of a chunk-state pass: the state is ``Σ (φ·rs)ᵀ y``, z is ``Σ (φ·rs)·g``, 0 past L.

    Forward: ``rs = 1``, ``g = 1``. Backward (``y = do``): ``dS = Σ φᵀ do/den`` and ``dZ = Σ φ·dden``, taken as
    ``rs = 1/den``, ``g = dden·den``: the division goes into φ, not into ``do``, so that dS and dZ are sums over the
    same (rounded) weights φ/den of exact 16-bit ``do`` rows and of ``dden·den = −do·o``, and ``V·dSᵀ + dZ`` in the
    backward's dk keeps its cancellation (``do·(v − o)``) whatever the dot precision."""
    if GRAD:
        if NORMALIZE:
            b_den = tl.load(den + i_bh.to(tl.int64) * L + o_tc, mask=m_t, other=1.0)
            b_dd = tl.load(dden + i_bh.to(tl.int64) * L + o_tc, mask=m_t, other=0.0)
            return tl.where(m_t, 1.0 / b_den, 0.0), b_dd * b_den
        else:
            return tl.where(m_t, 1.0, 0.0), tl.zeros_like(o_tc.to(tl.float32))
    else:
        b_one = tl.where(m_t, 1.0, 0.0)
        return b_one, b_one


@triton.jit
def _la_chunk_state_kernel(
    x, y, w, den, dden, s_all, z_all,
    L, H, NC, offset, SC1, SC2, ANG, MS,
    FM: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BD: tl.constexpr,
    BV: tl.constexpr, NT1: tl.constexpr, NDT: tl.constexpr, M: tl.constexpr, PREC: tl.constexpr,
    GRAD: tl.constexpr, NORMALIZE: tl.constexpr,
):  # fmt: skip
    """One chunk's own state contribution, every chunk in parallel (the ``parallel`` state algorithm, step 1).

    Forward (``x = k``, ``y = v``): ``φ(K_c)ᵀ V_c`` and ``Σ φ(K_c)``. Backward (``GRAD``, ``x = q``, ``y = do``):
    ``φ(Q_c)ᵀ dnum_c`` and ``φ(Q_c)ᵀ dden_c`` (zero without a normalizer). Written to ``s_all[i_bh, c]`` /
    ``z_all[i_bh, c]``, which ``_la_state_scan_kernel`` then turns into prefix sums in place.
    Grid ``(NC, NDT·cdiv(DV, BV), B·H)``.
    """
    i_c, i_dv, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    NV = tl.cdiv(DV, BV)
    i_d, i_v = i_dv // NV, i_dv % NV
    i_b, i_h = i_bh // H, i_bh % H
    DI = NDT * BD
    o_d = i_d * BD + tl.arange(0, BD)
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < DV
    o_tc = i_c * BT + tl.arange(0, BT)
    m_t = o_tc < L
    p_x = x + (i_b.to(tl.int64) * L * H + i_h) * DK
    p_y = y + (i_b.to(tl.int64) * L * H + i_h) * DV
    b_w = _load_w(w, i_d, DK, BK, BD, M, FM)
    b_x = _load_rows(p_x, o_tc, m_t, L, H, DK, BK).to(tl.float32)
    b_phi = _phi_fwd(b_x, offset + o_tc, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
    b_rs, b_g = _chunk_row_weights(den, dden, i_bh, o_tc, m_t, L, GRAD, NORMALIZE)
    b_phi = _rnd(b_phi * b_rs[:, None], PREC)
    b_y = _load_vtile(p_y, i_v, o_tc, m_t, L, H, DV, BV).to(tl.float32)
    b_z = tl.sum(b_phi * b_g[:, None], axis=0)
    b_s = _mm(tl.trans(b_phi), b_y, PREC)  # [BD, BV]
    o_c = (i_bh.to(tl.int64) * NC + i_c) * DI
    tl.store(s_all + o_c * DV + o_d[:, None] * DV + o_v[None, :], b_s, mask=m_v[None, :])
    tl.store(z_all + o_c + o_d, b_z, mask=tl.where(i_v == 0, o_d < DI, False))


@triton.jit
def _la_chunk_state_head_kernel(
    x, y, w, den, dden, s_all, z_all, o, o_res,
    L, H, NC, offset, SC1, SC2, ANG, MS,
    FM: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BD: tl.constexpr,
    BV: tl.constexpr, NT1: tl.constexpr, NDT: tl.constexpr, M: tl.constexpr, PREC: tl.constexpr,
    GRAD: tl.constexpr, NORMALIZE: tl.constexpr, R: tl.constexpr, PRE: tl.constexpr, USE_RES: tl.constexpr,
):  # fmt: skip
    """``_la_chunk_state_kernel`` with one program per (chunk, value tile, head) looping over the feature tiles
    (``CHUNK_STATE = "head"``): x, y, den and dden are loaded once per chunk instead of once per feature tile.

    Taylor builds its tiles without selection matmuls, by broadcasting (``R = BD // BK``): first-order tiles
    ``[x·SC1, 1, 0…]`` with x placed into the first of R blocks of BK columns; second-order tiles
    ``x[:, i0:i0+R, None]·x[:, None, :]`` reshaped to ``[BT, R·BK = BD]`` (column ``r·BK + j`` holds ``x_{i0+r} x_j``;
    the R columns of i are a ``[BT, R]`` reload of the chunk's rows, which sit in L1). Other maps call ``_phi_fwd`` per
    tile.
    Same outputs as ``_la_chunk_state_kernel``. Grid ``(NC, cdiv(DV, BV), B·H)``.

    ``PRE`` (backward, one value tile holding whole rows: ``BV >= DV``): ``_la_bwd_pre_kernel`` fused in. The program
    reads its chunk's o (+ ``o_res`` with ``USE_RES``) beside ``do``, writes ``dden = −(do·o)/den`` for the backward's
    dq and dk/dv kernels, and weights z by ``dden·den = −do·o`` directly (one launch fewer per backward).
    """
    i_c, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    DI = NDT * BD
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < DV
    o_tc = i_c * BT + tl.arange(0, BT)
    m_t = o_tc < L
    p_x = x + (i_b.to(tl.int64) * L * H + i_h) * DK
    p_y = y + (i_b.to(tl.int64) * L * H + i_h) * DV
    p_xt = p_x + o_tc[:, None].to(tl.int64) * (H * DK)  # [BT, 1] row pointers of this chunk's x
    b_x = _load_rows(p_x, o_tc, m_t, L, H, DK, BK).to(tl.float32)  # [BT, BK], zero past DK and L
    b_y = _load_vtile(p_y, i_v, o_tc, m_t, L, H, DV, BV).to(tl.float32)
    if PRE:  # b_y = do, whole rows (BV >= DV)
        p_o = (i_b.to(tl.int64) * L * H + i_h) * DV
        b_o = _load_vtile(o + p_o, i_v, o_tc, m_t, L, H, DV, BV).to(tl.float32)
        if USE_RES:
            b_o += _load_vtile(o_res + p_o, i_v, o_tc, m_t, L, H, DV, BV).to(tl.float32)
        b_den = tl.load(den + i_bh.to(tl.int64) * L + o_tc, mask=m_t, other=1.0)
        b_g = -tl.sum(b_y * b_o, axis=1)  # dden·den
        tl.store(dden + i_bh.to(tl.int64) * L + o_tc, b_g / b_den, mask=m_t)
        b_rs = tl.where(m_t, 1.0 / b_den, 0.0)
    else:
        b_rs, b_g = _chunk_row_weights(den, dden, i_bh, o_tc, m_t, L, GRAD, NORMALIZE)
    o_c0 = (i_bh.to(tl.int64) * NC + i_c) * DI  # this chunk's slot, in rows of DV
    o_dl = tl.arange(0, BD)
    # z once per head: a [BD] mask, as a scalar store mask fails triton 3.9's interpreter
    m_z = tl.where(i_v == 0, o_dl >= 0, False)
    o_sdl = o_dl[:, None] * DV + o_v[None, :]  # [BD, BV] int32 offsets within one feature tile of the slot
    if FM == 6:  # taylor
        b_valid = m_t.to(tl.float32)
        for i_d in range(NT1):  # first order: [x·SC1 (columns < DK), 1 (column DK), 0]; x's BK <= BD columns: tile 0
            b_phi = _rnd(_taylor_first(b_x, b_valid, i_d, SC1, DK, BT, BK, BD, R) * b_rs[:, None], PREC)
            b_s = _mm(tl.trans(b_phi), b_y, PREC)  # [BD, BV]
            tl.store(s_all + (o_c0 + i_d * BD) * DV + o_sdl, b_s, mask=m_v[None, :])
            tl.store(z_all + o_c0 + i_d * BD + o_dl, tl.sum(b_phi * b_g[:, None], axis=0), mask=m_z)
        for i_r in range(NDT - NT1):  # second order: rows i of the full d′×d′ block, R per tile
            b_phi = _taylor_second(b_x, _taylor_rows(p_xt, m_t, i_r, DK, R), SC2, BT, BD)  # column r·BK + j: x_i x_j
            b_phi = _rnd(b_phi * b_rs[:, None], PREC)
            b_s = _mm(tl.trans(b_phi), b_y, PREC)
            o_d0 = (NT1 + i_r) * BD
            tl.store(s_all + (o_c0 + o_d0) * DV + o_sdl, b_s, mask=m_v[None, :])
            tl.store(z_all + o_c0 + o_d0 + o_dl, tl.sum(b_phi * b_g[:, None], axis=0), mask=m_z)
    else:
        for i_d in range(NDT):
            b_w = _load_w(w, i_d, DK, BK, BD, M, FM)
            b_phi = _phi_fwd(b_x, offset + o_tc, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
            b_phi = _rnd(b_phi * b_rs[:, None], PREC)
            b_s = _mm(tl.trans(b_phi), b_y, PREC)
            tl.store(s_all + (o_c0 + i_d * BD) * DV + o_sdl, b_s, mask=m_v[None, :])
            tl.store(z_all + o_c0 + i_d * BD + o_dl, tl.sum(b_phi * b_g[:, None], axis=0), mask=m_z)


@triton.jit
def _la_state_scan_kernel(
    s_all, s_out, z_all, s0, z0, sT, zT, NC, DI,
    DV: tl.constexpr, BS: tl.constexpr, BV: tl.constexpr,
    USE_S0: tl.constexpr, STORE_FINAL: tl.constexpr, REVERSE: tl.constexpr,
):  # fmt: skip
    """Exclusive prefix sum over chunks, in place (the ``parallel`` state algorithm, step 2; memory-bound).

    ``s_out[c] ← s0 + Σ_{j<c} s_all[j]`` (``REVERSE``: ``Σ_{j>c}``, seeded with the final state's gradient), the
    same for ``z_all`` (in place); ``s_out`` is ``s_all`` (in place) or a bf16 copy for the forward's output kernel
    (the sums stay fp32 in registers, only what the output kernel reads is rounded); ``s_all`` itself may be bf16
    (``FWD_CHUNKS_BF16``: bf16 contributions, fp32 sums, the prefix written back in place); the total goes to
    ``sT``/``zT`` (the final state, or the initial state's gradient). No matmul on the dependency chain: each step is
    one independent tile load, one store and one add.
    Grid ``(DI // BS, cdiv(DV, BV), B·H)``; ``BS`` divides ``DI``.
    """
    i_s, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_s = i_s * BS + tl.arange(0, BS)
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < DV
    m_z = tl.where(i_v == 0, o_s < DI, False)
    o_sd = o_s[:, None] * DV + o_v[None, :]  # [BS, BV] within one state
    o_h = i_bh.to(tl.int64) * DI
    if USE_S0:
        b_s = tl.load(s0 + o_h * DV + o_sd, mask=m_v[None, :], other=0.0)
        b_z = tl.load(z0 + o_h + o_s)
    else:
        b_s = tl.zeros([BS, BV], dtype=tl.float32)
        b_z = tl.zeros([BS], dtype=tl.float32)
    # slot c of this tile sits at o_h·NC·DV + c·DI·DV (z: o_h·NC + c·DI); walk forward or backward by one slot
    if REVERSE:
        i_c0, STEP = NC - 1, -1
    else:
        i_c0, STEP = 0, 1
    p_s = s_all + (o_h * NC + i_c0 * DI) * DV + o_sd
    p_o = s_out + (o_h * NC + i_c0 * DI) * DV + o_sd
    p_z = z_all + o_h * NC + i_c0 * DI + o_s
    b_x = tl.load(p_s, mask=m_v[None, :], other=0.0)
    b_xz = tl.load(p_z, mask=m_z, other=0.0)
    for i_r in range(NC):
        # prefetch the next slot before storing this one, so a load is always in flight (the chain is adds only)
        m_n = i_r + 1 < NC
        b_xn = tl.load(p_s + STEP * DI * DV, mask=tl.where(m_n, m_v[None, :], False), other=0.0)
        b_xzn = tl.load(p_z + STEP * DI, mask=tl.where(m_n, m_z, False), other=0.0)
        tl.store(p_o, b_s, mask=m_v[None, :])  # cast to s_out's type
        tl.store(p_z, b_z, mask=m_z)
        b_s += b_x
        b_z += b_xz
        b_x, b_xz = b_xn, b_xzn
        p_s += STEP * DI * DV
        p_o += STEP * DI * DV
        p_z += STEP * DI
    if STORE_FINAL:
        tl.store(sT + o_h * DV + o_sd, b_s, mask=m_v[None, :])
        tl.store(zT + o_h + o_s, b_z, mask=m_z)


@triton.jit
def _read_state(b_phq, b_num, b_den, s_all, z_all, o_s, i_d, o_v, m_v, DV: tl.constexpr, BD: tl.constexpr,
                PREC: tl.constexpr, NORMALIZE: tl.constexpr):  # fmt: skip
    """``num += φQ_tile · S[tile]``, ``den += φQ_tile · z[tile]`` for feature tile ``i_d`` of the state at ``o_s``."""
    o_d = i_d * BD + tl.arange(0, BD)
    b_s = tl.load(s_all + o_s * DV + o_d[:, None] * DV + o_v[None, :], mask=m_v[None, :], other=0.0)
    b_phq = _rnd(b_phq, PREC)  # num and den over the same φq
    b_num += _mm(b_phq, b_s.to(tl.float32), PREC)  # fp32 or bf16 (FWD_STATES_BF16)
    if NORMALIZE:
        b_den += tl.sum(b_phq * tl.load(z_all + o_s + o_d)[None, :], axis=1)
    return b_num, b_den


@triton.jit
def _la_out_fwd_kernel(
    q, k, v, w, s_all, z_all, o, o_res, den,
    L, H, NC, stride_sbh, stride_sc, offset, eps, SC1, SC2, ANG, MS, SQ,
    FM: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BD: tl.constexpr,
    BV: tl.constexpr, NT1: tl.constexpr, NDT: tl.constexpr, M: tl.constexpr, PREC: tl.constexpr,
    SCORE: tl.constexpr, PARALLEL: tl.constexpr, HAS_S: tl.constexpr, NORMALIZE: tl.constexpr,
    STORE_RES: tl.constexpr, DOT16: tl.constexpr,
):  # fmt: skip
    """Outputs of one chunk: ``num = φQ·S_c + tril(A)·V``, ``den = φQ·Z_c + rowsum(tril(A)) + eps``, ``o = num/den``.

    Grid ``(NC, B·H)``. Chunk mode reads the state entering the chunk (``stride_sc`` = one state); the
    quadratic mode (``PARALLEL``) loops over every earlier key chunk and reads at most the initial
    state (``stride_sc = 0``, ``stride_sbh`` = one state).
    """
    i_c, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_t = tl.arange(0, BT)
    o_v = tl.arange(0, BV)
    m_v = o_v < DV
    o_tq = i_c * BT + o_t
    m_tq = o_tq < L
    p_q = q + (i_b.to(tl.int64) * L * H + i_h) * DK
    p_k = k + (i_b.to(tl.int64) * L * H + i_h) * DK
    p_v = v + (i_b.to(tl.int64) * L * H + i_h) * DV
    b_q = _mm_in(_load_rows(p_q, o_tq, m_tq, L, H, DK, BK), DOT16)
    b_qf = b_q.to(tl.float32)
    b_num = tl.zeros([BT, BV], dtype=tl.float32)
    b_den = tl.zeros([BT], dtype=tl.float32)
    if HAS_S:  # inter-chunk: read the state out with φ(q), tile by tile
        o_s = i_bh.to(tl.int64) * stride_sbh + i_c * stride_sc
        for i_d in range(NDT):
            b_w = _load_w(w, i_d, DK, BK, BD, M, FM)
            b_phq = _phi_fwd(b_qf, offset + o_tq, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
            b_num, b_den = _read_state(b_phq, b_num, b_den, s_all, z_all, o_s, i_d, o_v, m_v, DV, BD, PREC,
                                       NORMALIZE)  # fmt: skip
    if PARALLEL:
        j_start = 0
    else:
        j_start = i_c
    for j_c in range(j_start, i_c + 1):  # intra-chunk (chunk mode) or every earlier chunk (quadratic mode)
        o_tk = j_c * BT + o_t
        m_tk = o_tk < L
        b_k = _mm_in(_load_rows(p_k, o_tk, m_tk, L, H, DK, BK), DOT16)
        if SCORE:  # taylor: 1 + s + s²/2 straight from q·k
            b_sc = _mm(b_q, tl.trans(b_k), PREC) * SQ
            b_a = 1.0 + b_sc + 0.5 * b_sc * b_sc
        else:
            b_kf = b_k.to(tl.float32)
            b_a = tl.zeros([BT, BT], dtype=tl.float32)
            for i_d in range(NDT):
                b_w = _load_w(w, i_d, DK, BK, BD, M, FM)
                b_phq = _phi_fwd(b_qf, offset + o_tq, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
                b_phk = _phi_fwd(b_kf, offset + o_tk, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
                b_a += _mm(b_phq, tl.trans(b_phk), PREC)
        b_a = _rnd(tl.where((o_tq[:, None] >= o_tk[None, :]) & m_tk[None, :], b_a, 0.0), PREC)  # num, den alike
        b_vv = _load_rows(p_v, o_tk, m_tk, L, H, DV, BV).to(tl.float32)
        b_num += _mm(b_a, b_vv, PREC)
        b_den += tl.sum(b_a, axis=1)
    if NORMALIZE:
        b_den = b_den + eps
        b_num = b_num / b_den[:, None]
        tl.store(den + i_bh.to(tl.int64) * L + o_tq, b_den, mask=m_tq)
    o_o = (i_b.to(tl.int64) * L * H + i_h) * DV + o_tq[:, None].to(tl.int64) * (H * DV) + o_v[None, :]
    b_o = b_num.to(o.dtype.element_ty)
    tl.store(o + o_o, b_o, mask=m_tq[:, None] & m_v[None, :])
    if STORE_RES:  # the 16-bit rounding residual of o, so the backward sees o to ~2^-16 (see _la_bwd_pre_kernel)
        tl.store(o_res + o_o, (b_num - b_o.to(tl.float32)).to(o.dtype.element_ty), mask=m_tq[:, None] & m_v[None, :])


@triton.jit
def _la_bwd_pre_kernel(
    o, o_res, do, den, dden, L, H, DV: tl.constexpr, BT: tl.constexpr, BV: tl.constexpr, USE_RES: tl.constexpr
):
    """``dden = −(do·o)/den`` per token (fp32), the gradient of the denominator. Grid ``(cdiv(L, BT), B·H)``.

    ``dφq ∝ do·(v_j − o)``: when o is close to the values (L = 1, peaked attention) the difference cancels,
    so a 16-bit o would leave its rounding (~4e-3) amplified by 1/den; o + o_res restores fp32-level o.
    """
    i_c, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_t = i_c * BT + tl.arange(0, BT)
    m_t = o_t < L
    p_off = (i_b.to(tl.int64) * L * H + i_h) * DV
    b_o = _load_rows(o + p_off, o_t, m_t, L, H, DV, BV).to(tl.float32)
    if USE_RES:
        b_o += _load_rows(o_res + p_off, o_t, m_t, L, H, DV, BV).to(tl.float32)
    b_do = _load_rows(do + p_off, o_t, m_t, L, H, DV, BV).to(tl.float32)
    b_den = tl.load(den + i_bh.to(tl.int64) * L + o_t, mask=m_t, other=1.0)
    tl.store(dden + i_bh.to(tl.int64) * L + o_t, -tl.sum(b_o * b_do, axis=1) / b_den, mask=m_t)


@triton.jit
def _la_state_bwd_kernel(
    q, do, w, den, dden, dsT, dzT, ds_all, dz_all, ds0, dz0,
    L, H, NC, offset, SC1, SC2, ANG, MS,
    FM: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BD: tl.constexpr,
    BV: tl.constexpr, NT1: tl.constexpr, NDT: tl.constexpr, M: tl.constexpr, PREC: tl.constexpr,
    NORMALIZE: tl.constexpr, USE_DST: tl.constexpr, STORE_ALL: tl.constexpr, STORE_D0: tl.constexpr,
):  # fmt: skip
    """Reverse scan: ``dS += φ(Q_c)ᵀ dnum_c``, ``dZ += φ(Q_c)ᵀ dden_c`` (dnum = do/den), seeded with the final state's grad.

    Stores the gradient of the state entering every chunk's keys (the sum over *later* chunks) and/or
    the initial state's gradient. Grid ``(NDT, cdiv(DV, BV), B·H)``.
    """
    i_d, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    DI = NDT * BD
    o_t = tl.arange(0, BT)
    o_d = i_d * BD + tl.arange(0, BD)
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < DV
    p_q = q + (i_b.to(tl.int64) * L * H + i_h) * DK
    p_do = do + (i_b.to(tl.int64) * L * H + i_h) * DV
    b_w = _load_w(w, i_d, DK, BK, BD, M, FM)
    o_sd = i_bh.to(tl.int64) * DI * DV + o_d[:, None] * DV + o_v[None, :]
    if USE_DST:
        b_ds = tl.load(dsT + o_sd, mask=m_v[None, :], other=0.0)
        b_dz = tl.load(dzT + i_bh.to(tl.int64) * DI + o_d)
    else:
        b_ds = tl.zeros([BD, BV], dtype=tl.float32)
        b_dz = tl.zeros([BD], dtype=tl.float32)
    for i_r in range(NC):
        i_c = NC - 1 - i_r
        if STORE_ALL:
            o_c = (i_bh.to(tl.int64) * NC + i_c) * DI
            tl.store(ds_all + o_c * DV + o_d[:, None] * DV + o_v[None, :], b_ds, mask=m_v[None, :])
            tl.store(dz_all + o_c + o_d, b_dz, mask=tl.where(i_v == 0, o_d < DI, False))
        o_tc = i_c * BT + o_t
        m_t = o_tc < L
        b_q = _load_rows(p_q, o_tc, m_t, L, H, DK, BK).to(tl.float32)
        b_phi = _phi_fwd(b_q, offset + o_tc, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
        b_rs, b_g = _chunk_row_weights(den, dden, i_bh, o_tc, m_t, L, True, NORMALIZE)
        b_phi = _rnd(b_phi * b_rs[:, None], PREC)  # φ/den: dS and dZ over the same weights (_chunk_row_weights)
        b_do = _load_vtile(p_do, i_v, o_tc, m_t, L, H, DV, BV).to(tl.float32)
        if NORMALIZE:
            b_dz += tl.sum(b_phi * b_g[:, None], axis=0)
        b_ds += _mm(tl.trans(b_phi), b_do, PREC)
    if STORE_D0:
        tl.store(ds0 + o_sd, b_ds, mask=m_v[None, :])
        tl.store(dz0 + i_bh.to(tl.int64) * DI + o_d, b_dz, mask=tl.where(i_v == 0, o_d < DI, False))


@triton.jit
def _state_grad_q(b_do, b_rden, b_dd, s_all, z_all, o_s, i_d, o_v, m_v, DV: tl.constexpr, BD: tl.constexpr,
                  PREC: tl.constexpr, NORMALIZE: tl.constexpr):  # fmt: skip
    """``dφQ`` of feature tile ``i_d`` through the state entering the chunk: ``dnum·S[tile]ᵀ + dden·z[tile]ᵀ``, with
    ``dnum = do·rden`` (``rden = 1/den``) scaled after the product, whose operands (16-bit ``do`` and the states the
    output read) are then exact at any dot precision: the two terms cancel where attention is peaked."""
    o_d = i_d * BD + tl.arange(0, BD)
    b_s = tl.load(s_all + o_s * DV + o_d[:, None] * DV + o_v[None, :], mask=m_v[None, :], other=0.0)
    b_g = _mm(b_do, tl.trans(b_s.to(tl.float32)), PREC) * b_rden[:, None]  # fp32, or the forward's bf16 states
    if NORMALIZE:
        b_g += b_dd[:, None] * tl.load(z_all + o_s + o_d)[None, :]
    return b_g


@triton.jit
def _state_grad_k(b_phk, b_v, ds_all, dz_all, o_ds, i_d, o_v, m_v, DV: tl.constexpr, BD: tl.constexpr,
                  PREC: tl.constexpr):  # fmt: skip
    """Through the gradient of the state after the chunk (tile ``i_d``): ``(dV part φK·dS, dφK = V·dSᵀ + dz)``."""
    o_d = i_d * BD + tl.arange(0, BD)
    b_ds = tl.load(ds_all + o_ds * DV + o_d[:, None] * DV + o_v[None, :], mask=m_v[None, :], other=0.0)
    b_dv = _mm(b_phk, b_ds, PREC)
    b_g = _mm_hi(b_v, tl.trans(b_ds), PREC) + tl.load(dz_all + o_ds + o_d)[None, :]
    return b_dv, b_g


@triton.jit
def _intra_da(b_do, b_v, b_rden, b_dd, m, PREC: tl.constexpr, NORMALIZE: tl.constexpr):
    """A chunk pair's ``dA = dnum·Vᵀ + dden`` [queries, keys]: ``b_do`` and ``b_rden`` (``1/den``), ``b_dd``
    (``dden``) of the queries, ``b_v`` of the keys; zero outside the causal mask ``m``."""
    b_da = _mm(b_do, tl.trans(b_v), PREC) * b_rden[:, None]
    if NORMALIZE:
        b_da += b_dd[:, None]
    return tl.where(m, b_da, 0.0)


@triton.jit
def _phi_bwd_at(
    b_x, b_phi, b_g, b_pos, b_w, i_d, SC1, SC2, ANG, MS,
    FM: tl.constexpr, DK: tl.constexpr, BK: tl.constexpr, BD: tl.constexpr, NT1: tl.constexpr, M: tl.constexpr,
    PREC: tl.constexpr,
):  # fmt: skip
    """``_phi_bwd`` given the tile's features ``b_phi = φ(b_x)`` (already computed): Performer then skips recomputing
    its projection and exp; the other maps need only ``b_x``."""
    if FM == 5:
        b_dx = _performer_dx(b_x, b_phi, b_g, b_w, SC1, PREC)
    else:
        b_dx = _phi_bwd(b_x, b_g, b_pos, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
    return b_dx


@triton.jit
def _bwd_chunk_tiles(
    b_qf, b_kf, b_v, b_do, b_rden, b_dd, b_dq, b_dk, b_dv, o_tc, m_tc, i_c, i_bh, w, s_all, z_all, ds_all, dz_all,
    stride_sbh, stride_sc, stride_dsbh, stride_dsc, offset, SC1, SC2, ANG, MS,
    FM: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BD: tl.constexpr,
    BV: tl.constexpr, NT1: tl.constexpr, NDT: tl.constexpr, M: tl.constexpr, PREC: tl.constexpr,
    HAS_S: tl.constexpr, HAS_DS: tl.constexpr, NORMALIZE: tl.constexpr, DO_Q: tl.constexpr, DO_KV: tl.constexpr,
):  # fmt: skip
    """The chunk mode's dq (``DO_Q``) and dk, dv (``DO_KV``) of chunk ``i_c`` for a feature map (not Taylor's score
    path): its own intra-chunk terms and the terms through the states, in one pass over the feature tiles. Each tile's
    φK (and φQ) is computed once for both, and their gradients ``dφ`` are summed before one ``_phi_bwd`` per tile
    (it is linear in ``dφ``): in the source, Performer's projection and exp run 2 (dq) and 3 (dk/dv) times per tile
    instead of 5 and 7; the compiler had merged some of those repeats, and the offline sm_90 compile counts 96 → 64
    exp and 78 / 94 → 48 / 64 tensor-core MMAs per thread (``BWD_TILE_PASS`` in ``triton_ops``). Same formulas as the
    separate loops of ``_la_bwd_chunk``."""
    o_v = tl.arange(0, BV)
    m_v = o_v < DV
    m_a = (o_tc[:, None] >= o_tc[None, :]) & m_tc[None, :]  # [queries, keys], this chunk with itself
    m_at = (o_tc[None, :] >= o_tc[:, None]) & m_tc[None, :] & m_tc[:, None]  # [keys, queries]
    b_da = tl.zeros([BT, BT], dtype=tl.float32)
    b_dat = tl.zeros([BT, BT], dtype=tl.float32)
    b_dni = b_do
    if DO_Q:
        b_da = _intra_da(b_do, b_v, b_rden, b_dd, m_a, PREC, NORMALIZE)
    if DO_KV:
        b_dat = _mm(b_v, tl.trans(b_do), PREC) * b_rden[None, :]
        if NORMALIZE:
            b_dat += b_dd[None, :]
        b_dat = tl.where(m_at, b_dat, 0.0)
        b_dni = b_do * b_rden[:, None]
    b_at = tl.zeros([BT, BT], dtype=tl.float32)
    o_s = i_bh.to(tl.int64) * stride_sbh + i_c * stride_sc
    o_ds = i_bh.to(tl.int64) * stride_dsbh + i_c * stride_dsc
    b_pos = offset + o_tc
    for i_d in range(NDT):
        b_w = _load_w(w, i_d, DK, BK, BD, M, FM)
        b_phk = _phi_fwd(b_kf, b_pos, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
        b_phk = tl.where(m_tc[:, None], b_phk, 0.0)
        if DO_Q:  # dφQ = dA·φK + dnum·Sᵀ + dden·Zᵀ
            b_g = _mm(b_da, b_phk, PREC)
            if HAS_S:
                b_g += _state_grad_q(b_do, b_rden, b_dd, s_all, z_all, o_s, i_d, o_v, m_v, DV, BD, PREC, NORMALIZE)
            b_dq += _phi_bwd(b_qf, b_g, b_pos, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
        if DO_KV:  # dφK = dAᵀ·φQ + V·dSᵀ + dZ, dV = Aᵀ·dnum + φK·dS
            b_phq = _phi_fwd(b_qf, b_pos, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
            b_at += _mm(b_phk, tl.trans(b_phq), PREC)
            b_g = _mm(b_dat, b_phq, PREC)
            if HAS_DS:
                b_dvi, b_gs = _state_grad_k(b_phk, b_v, ds_all, dz_all, o_ds, i_d, o_v, m_v, DV, BD, PREC)
                b_dv += b_dvi
                b_g += b_gs
            b_dk += _phi_bwd_at(b_kf, b_phk, b_g, b_pos, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
    if DO_KV:
        b_at = tl.where(m_at, b_at, 0.0)
        b_dv += _mm(b_at, b_dni, PREC)
    return b_dq, b_dk, b_dv


@triton.jit
def _la_bwd_kernel(
    q, k, v, w, do, den, dden, s_all, z_all, ds_all, dz_all, dq, dk, dv,
    L, H, NC, stride_sbh, stride_sc, stride_dsbh, stride_dsc, offset, SC1, SC2, ANG, MS, SQ,
    FM: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BD: tl.constexpr,
    BV: tl.constexpr, NT1: tl.constexpr, NDT: tl.constexpr, M: tl.constexpr, PREC: tl.constexpr,
    SCORE: tl.constexpr, PARALLEL: tl.constexpr, HAS_S: tl.constexpr, HAS_DS: tl.constexpr,
    NORMALIZE: tl.constexpr, DOT16: tl.constexpr, DO_Q: tl.constexpr, DO_KV: tl.constexpr, TILE_PASS: tl.constexpr,
    ONE_GRID: tl.constexpr,
):  # fmt: skip
    """dq of query chunk c (``DO_Q``) and dk, dv of key chunk c (``DO_KV``). Grid ``(NC, B·H)``; with ``ONE_GRID``
    ``(2·NC, B·H)``: programs ``c < NC`` do the dk/dv half of chunk c (the longer one, first), the others the dq half of
    chunk ``c − NC``, each a specialization of its own (``_la_bwd_chunk``) behind a branch on the program id: the two
    halves in one launch (``BWD_ONE_LAUNCH`` in ``triton_ops``)."""
    i_c, i_bh = tl.program_id(0), tl.program_id(1)
    if ONE_GRID:
        if i_c < NC:
            _la_bwd_chunk(
                q, k, v, w, do, den, dden, s_all, z_all, ds_all, dz_all, dq, dk, dv, i_c, i_bh, L, H, NC, stride_sbh,
                stride_sc, stride_dsbh, stride_dsc, offset, SC1, SC2, ANG, MS, SQ, FM, DK, DV, BT, BK, BD, BV, NT1,
                NDT, M, PREC, SCORE, PARALLEL, HAS_S, HAS_DS, NORMALIZE, DOT16, False, True, TILE_PASS,
            )  # fmt: skip
        else:
            _la_bwd_chunk(
                q, k, v, w, do, den, dden, s_all, z_all, ds_all, dz_all, dq, dk, dv, i_c - NC, i_bh, L, H, NC,
                stride_sbh, stride_sc, stride_dsbh, stride_dsc, offset, SC1, SC2, ANG, MS, SQ, FM, DK, DV, BT, BK, BD,
                BV, NT1, NDT, M, PREC, SCORE, PARALLEL, HAS_S, HAS_DS, NORMALIZE, DOT16, True, False, TILE_PASS,
            )  # fmt: skip
    else:
        _la_bwd_chunk(
            q, k, v, w, do, den, dden, s_all, z_all, ds_all, dz_all, dq, dk, dv, i_c, i_bh, L, H, NC, stride_sbh,
            stride_sc, stride_dsbh, stride_dsc, offset, SC1, SC2, ANG, MS, SQ, FM, DK, DV, BT, BK, BD, BV, NT1, NDT, M,
            PREC, SCORE, PARALLEL, HAS_S, HAS_DS, NORMALIZE, DOT16, DO_Q, DO_KV, TILE_PASS,
        )  # fmt: skip


@triton.jit
def _la_bwd_chunk(
    q, k, v, w, do, den, dden, s_all, z_all, ds_all, dz_all, dq, dk, dv, i_c, i_bh,
    L, H, NC, stride_sbh, stride_sc, stride_dsbh, stride_dsc, offset, SC1, SC2, ANG, MS, SQ,
    FM: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BD: tl.constexpr,
    BV: tl.constexpr, NT1: tl.constexpr, NDT: tl.constexpr, M: tl.constexpr, PREC: tl.constexpr,
    SCORE: tl.constexpr, PARALLEL: tl.constexpr, HAS_S: tl.constexpr, HAS_DS: tl.constexpr,
    NORMALIZE: tl.constexpr, DOT16: tl.constexpr, DO_Q: tl.constexpr, DO_KV: tl.constexpr, TILE_PASS: tl.constexpr,
):  # fmt: skip
    """``_la_bwd_kernel``'s work for chunk ``i_c`` of head ``i_bh``: dq of query chunk c (``DO_Q``) and dk, dv of key
    chunk c (``DO_KV``).

    The two halves share only their inputs: with ``BWD_SPLIT`` (``triton_ops``) each program does one of them, so
    each specialization keeps about half the live tiles (registers).

    With ``dnum = do/den`` and ``dden`` (``_la_bwd_pre_kernel``): ``dA = dnum·Vᵀ + dden`` (causal),
    ``dφQ = dA·φK + dnum·Sᵀ + dden·Zᵀ``, ``dφK = dAᵀ·φQ + V·dSᵀ + dZ``, ``dV = Aᵀ·dnum + φK·dS``; Taylor
    takes the intra-chunk terms through ``ds = dA·(1 + s)/√d′`` instead of the features.
    """
    i_b, i_h = i_bh // H, i_bh % H
    o_t = tl.arange(0, BT)
    o_v = tl.arange(0, BV)
    m_v = o_v < DV
    o_tc = i_c * BT + o_t
    m_tc = o_tc < L
    p_q = q + (i_b.to(tl.int64) * L * H + i_h) * DK
    p_k = k + (i_b.to(tl.int64) * L * H + i_h) * DK
    p_v = v + (i_b.to(tl.int64) * L * H + i_h) * DV
    p_do = do + (i_b.to(tl.int64) * L * H + i_h) * DV
    p_den = den + i_bh.to(tl.int64) * L
    p_dden = dden + i_bh.to(tl.int64) * L
    # this chunk's rows, as queries (q, dnum, dden) and as keys (k, v)
    b_q = _mm_in(_load_rows(p_q, o_tc, m_tc, L, H, DK, BK), DOT16)
    b_qf = b_q.to(tl.float32)
    b_k = _mm_in(_load_rows(p_k, o_tc, m_tc, L, H, DK, BK), DOT16)
    b_kf = b_k.to(tl.float32)
    b_v = _load_rows(p_v, o_tc, m_tc, L, H, DV, BV).to(tl.float32)
    # do stays exact (16-bit values) as a dot operand; 1/den scales the products' rows (see _state_grad_q)
    b_do = _load_rows(p_do, o_tc, m_tc, L, H, DV, BV).to(tl.float32)
    if NORMALIZE:
        b_rden = 1.0 / tl.load(p_den + o_tc, mask=m_tc, other=1.0)
        b_dd = tl.load(p_dden + o_tc, mask=m_tc, other=0.0)
    else:
        b_rden = tl.full([BT], 1.0, dtype=tl.float32)
        b_dd = tl.zeros([BT], dtype=tl.float32)  # unused (no normalizer)
    b_dq = tl.zeros([BT, BK], dtype=tl.float32)
    b_dk = tl.zeros([BT, BK], dtype=tl.float32)
    b_dv = tl.zeros([BT, BV], dtype=tl.float32)
    # ---- chunk mode with feature maps (``TILE_PASS``): one pass over the feature tiles serves the intra-chunk and the
    # state terms; else the three loops below
    tl.static_assert(not (TILE_PASS and (PARALLEL or SCORE)), "the tile pass is for the chunk mode's feature maps")
    if TILE_PASS:
        b_dq, b_dk, b_dv = _bwd_chunk_tiles(
            b_qf, b_kf, b_v, b_do, b_rden, b_dd, b_dq, b_dk, b_dv, o_tc, m_tc, i_c, i_bh, w, s_all, z_all, ds_all,
            dz_all, stride_sbh, stride_sc, stride_dsbh, stride_dsc, offset, SC1, SC2, ANG, MS, FM, DK, DV, BT, BK, BD,
            BV, NT1, NDT, M, PREC, HAS_S, HAS_DS, NORMALIZE, DO_Q, DO_KV,
        )  # fmt: skip
    # ---- dq: this query chunk against key chunks j <= c
    if DO_Q and not TILE_PASS:
        if PARALLEL:
            j_start = 0
        else:
            j_start = i_c
        for j_c in range(j_start, i_c + 1):
            o_tk = j_c * BT + o_t
            m_tk = o_tk < L
            m_a = (o_tc[:, None] >= o_tk[None, :]) & m_tk[None, :]
            b_kj = _mm_in(_load_rows(p_k, o_tk, m_tk, L, H, DK, BK), DOT16)
            b_vj = _load_rows(p_v, o_tk, m_tk, L, H, DV, BV).to(tl.float32)
            b_da = _intra_da(b_do, b_vj, b_rden, b_dd, m_a, PREC, NORMALIZE)
            if SCORE:
                b_sc = _mm(b_q, tl.trans(b_kj), PREC) * SQ
                b_dq += _mm(b_da * (1.0 + b_sc) * SQ, b_kj.to(tl.float32), PREC)
            else:
                b_kjf = b_kj.to(tl.float32)
                for i_d in range(NDT):
                    b_w = _load_w(w, i_d, DK, BK, BD, M, FM)
                    b_phk = _phi_fwd(b_kjf, offset + o_tk, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
                    b_g = _mm(b_da, b_phk, PREC)
                    b_dq += _phi_bwd(
                        b_qf, b_g, offset + o_tc, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC
                    )
    # ---- dk, dv: this key chunk against query chunks i >= c
    if DO_KV and not TILE_PASS:
        if PARALLEL:
            i_end = NC
        else:
            i_end = i_c + 1
        for i_q in range(i_c, i_end):
            o_tq = i_q * BT + o_t
            m_tq = o_tq < L
            m_at = (o_tq[None, :] >= o_tc[:, None]) & m_tq[None, :] & m_tc[:, None]  # [keys, queries]
            b_qi = _mm_in(_load_rows(p_q, o_tq, m_tq, L, H, DK, BK), DOT16)
            b_doi = _load_rows(p_do, o_tq, m_tq, L, H, DV, BV).to(tl.float32)
            if NORMALIZE:
                b_rdeni = 1.0 / tl.load(p_den + o_tq, mask=m_tq, other=1.0)
                b_ddi = tl.load(p_dden + o_tq, mask=m_tq, other=0.0)
                b_dat = _mm(b_v, tl.trans(b_doi), PREC) * b_rdeni[None, :] + b_ddi[None, :]
                b_dni = b_doi * b_rdeni[:, None]
            else:
                b_dat = _mm(b_v, tl.trans(b_doi), PREC)
                b_dni = b_doi
            b_dat = tl.where(m_at, b_dat, 0.0)
            if SCORE:
                b_st = _mm(b_k, tl.trans(b_qi), PREC) * SQ
                b_at = 1.0 + b_st + 0.5 * b_st * b_st
                b_dk += _mm(b_dat * (1.0 + b_st) * SQ, b_qi.to(tl.float32), PREC)
            else:
                b_qif = b_qi.to(tl.float32)
                b_at = tl.zeros([BT, BT], dtype=tl.float32)
                for i_d in range(NDT):
                    b_w = _load_w(w, i_d, DK, BK, BD, M, FM)
                    b_phq = _phi_fwd(b_qif, offset + o_tq, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
                    b_phk = _phi_fwd(b_kf, offset + o_tc, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
                    b_at += _mm(b_phk, tl.trans(b_phq), PREC)
                    b_g = _mm(b_dat, b_phq, PREC)
                    b_dk += _phi_bwd(
                        b_kf, b_g, offset + o_tc, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC
                    )
            b_at = tl.where(m_at, b_at, 0.0)
            b_dv += _mm(b_at, b_dni, PREC)
    # ---- inter-chunk terms through the states (tile by tile)
    if (HAS_S or HAS_DS) and not TILE_PASS:
        o_s = i_bh.to(tl.int64) * stride_sbh + i_c * stride_sc
        o_ds = i_bh.to(tl.int64) * stride_dsbh + i_c * stride_dsc
        for i_d in range(NDT):
            b_w = _load_w(w, i_d, DK, BK, BD, M, FM)
            if HAS_S and DO_Q:  # dφQ = dnum·Sᵀ + dden·Zᵀ
                b_g = _state_grad_q(b_do, b_rden, b_dd, s_all, z_all, o_s, i_d, o_v, m_v, DV, BD, PREC, NORMALIZE)
                b_dq += _phi_bwd(b_qf, b_g, offset + o_tc, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
            if HAS_DS and DO_KV:  # dφK = V·dSᵀ + dZ, dV += φK·dS
                b_phk = _phi_fwd(b_kf, offset + o_tc, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
                b_phk = tl.where(m_tc[:, None], b_phk, 0.0)
                b_dvi, b_g = _state_grad_k(b_phk, b_v, ds_all, dz_all, o_ds, i_d, o_v, m_v, DV, BD, PREC)
                b_dv += b_dvi
                b_dk += _phi_bwd(b_kf, b_g, offset + o_tc, b_w, i_d, SC1, SC2, ANG, MS, FM, DK, BK, BD, NT1, M, PREC)
    o_q = (i_b.to(tl.int64) * L * H + i_h) * DK + o_tc[:, None].to(tl.int64) * (H * DK) + tl.arange(0, BK)[None, :]
    m_q = m_tc[:, None] & (tl.arange(0, BK)[None, :] < DK)
    if DO_Q:
        tl.store(dq + o_q, b_dq.to(dq.dtype.element_ty), mask=m_q)
    if DO_KV:
        tl.store(dk + o_q, b_dk.to(dk.dtype.element_ty), mask=m_q)
        o_dv = (i_b.to(tl.int64) * L * H + i_h) * DV + o_tc[:, None].to(tl.int64) * (H * DV) + o_v[None, :]
        tl.store(dv + o_dv, b_dv.to(dv.dtype.element_ty), mask=m_tc[:, None] & m_v[None, :])


@triton.jit
def _step_phi(
    p_q, p_k, w, tab_i, tab_j, tab_s, o_f, b_qx, b_kx, b_qn, b_kn, pos, SC1, ANG, MS,
    FM: tl.constexpr, DK: tl.constexpr, D: tl.constexpr, BK: tl.constexpr,
):  # fmt: skip
    """Canonical features ``o_f [BF]`` of one token's q and k: ``(φq, φk)`` fp32, zero past D.

    Taylor via the tables ``φ_f = X[tab_i[f]]·X[tab_j[f]]·tab_s[f]`` (``X[−1] = 1``); performer from the scaled
    ``b_qx, b_kx [BK]`` and their half squared norms; the other maps from their index rule.
    """
    m_f = o_f < D
    o_k = tl.arange(0, BK)
    if FM == 6:
        o_i = tl.load(tab_i + o_f, mask=m_f, other=-1)
        o_j = tl.load(tab_j + o_f, mask=m_f, other=-1)
        b_sc = tl.load(tab_s + o_f, mask=m_f, other=0.0)
        b_qi = tl.load(p_q + o_i, mask=m_f & (o_i >= 0), other=1.0).to(tl.float32)
        b_qj = tl.load(p_q + o_j, mask=m_f & (o_j >= 0), other=1.0).to(tl.float32)
        b_ki = tl.load(p_k + o_i, mask=m_f & (o_i >= 0), other=1.0).to(tl.float32)
        b_kj = tl.load(p_k + o_j, mask=m_f & (o_j >= 0), other=1.0).to(tl.float32)
        b_phq = b_qi * b_qj * b_sc
        b_phk = b_ki * b_kj * b_sc
    elif FM == 5:
        m_w = m_f[:, None] & (o_k[None, :] < DK)
        b_w = tl.load(w + o_f[:, None] * DK + o_k[None, :], mask=m_w, other=0.0)  # [BF, BK]
        b_phq = tl.where(m_f, tl.exp(tl.sum(b_w * b_qx[None, :], axis=1) - b_qn) * MS, 0.0)
        b_phk = tl.where(m_f, tl.exp(tl.sum(b_w * b_kx[None, :], axis=1) - b_kn) * MS, 0.0)
    else:
        o_x = o_f % DK
        b_qx1 = tl.load(p_q + o_x, mask=m_f, other=0.0).to(tl.float32)
        b_kx1 = tl.load(p_k + o_x, mask=m_f, other=0.0).to(tl.float32)
        if FM == 0:
            b_phq, b_phk = b_qx1, b_kx1
        elif FM == 1:
            b_phq, b_phk = tl.maximum(b_qx1, 0.0), tl.maximum(b_kx1, 0.0)
        elif FM == 2:
            b_phq = tl.where(b_qx1 > 0, b_qx1 + 1.0, tl.exp(tl.minimum(b_qx1, 0.0)))
            b_phk = tl.where(b_kx1 > 0, b_kx1 + 1.0, tl.exp(tl.minimum(b_kx1, 0.0)))
        elif FM == 3:
            b_phq, b_phk = b_qx1 * b_qx1, b_kx1 * b_kx1
        else:  # cosformer: [relu(x) cos, relu(x) sin]
            b_ang = pos * ANG
            b_trig = tl.where(o_f < DK, tl.cos(b_ang), tl.sin(b_ang))
            b_phq, b_phk = tl.maximum(b_qx1, 0.0) * b_trig, tl.maximum(b_kx1, 0.0) * b_trig
        b_phq = tl.where(m_f, b_phq, 0.0)
        b_phk = tl.where(m_f, b_phk, 0.0)
    return b_phq, b_phk


@triton.jit
def _la_step_kernel(
    q, k, v, kv, z, o, w, tab_i, tab_j, tab_s, offset_ptr, count,
    H, SQ, SK, SV, offset, eps, SC1, ANG, MS,
    FM: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, D: tl.constexpr, BK: tl.constexpr, BF: tl.constexpr,
    BV: tl.constexpr, M: tl.constexpr, NORMALIZE: tl.constexpr, OFFSET_PTR: tl.constexpr, ZMODE: tl.constexpr,
    KV: tl.constexpr, NV: tl.constexpr, SEM: tl.constexpr,
):  # fmt: skip
    """One decode step on the canonical fp32 state, in place: ``kv += φk ⊗ v``, ``z += φk``, ``o = φq·kv / (φq·z + eps)``.

    Grid ``(NV·B·H,)``, ``NV = cdiv(DV, BV)`` (1 with ``KV=False``; a head's tiles launch side by side; 1-D, as B·H may pass 65535):
    program ``(i_v, i_bh)`` owns the value columns ``[i_v·BV, (i_v+1)·BV)`` of one head's ``kv`` and recomputes φq, φk itself (a few hundred FLOPs). Every program reads the old z for its
    denominator, so only one may write z, and only after all have read it (``ZMODE``):
    0 — nobody (the caller launches this kernel again with ``KV=False``, grid ``(B·H,)``, to update z);
    1 — the program itself (only with one value tile per head);
    2 — the last program of the head to finish: each bumps ``count[i_bh]`` after its z reads; the one that sees
    ``NV − 1`` writes z and resets the counter (no spinning, so no program waits on one not yet scheduled).
    q, k ``[B, H, DK]``, v ``[B, H, DV]`` with each row's heads packed and batch strides SQ, SK, SV (the mixer's
    slices of one fused projection), o ``[B·H, DV]``.
    """
    i_v, i_bh = tl.program_id(0) % NV, tl.program_id(0) // NV
    i_b, i_h = (i_bh // H).to(tl.int64), i_bh % H
    o_f0 = tl.arange(0, BF)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < DV
    p_q = q + i_b * SQ + i_h * DK
    p_k = k + i_b * SK + i_h * DK
    p_z = z + i_bh.to(tl.int64) * D
    if OFFSET_PTR:
        pos = tl.load(offset_ptr).to(tl.float32)
    else:
        pos = offset * 1.0
    b_qx = tl.load(p_q + o_k, mask=o_k < DK, other=0.0).to(tl.float32) * SC1  # performer's x̃ (others ignore it)
    b_kx = tl.load(p_k + o_k, mask=o_k < DK, other=0.0).to(tl.float32) * SC1
    b_qn = 0.5 * tl.sum(b_qx * b_qx, axis=0)
    b_kn = 0.5 * tl.sum(b_kx * b_kx, axis=0)
    if KV:
        b_v = tl.load(v + i_b * SV + i_h * DV + o_v, mask=m_v, other=0.0).to(tl.float32)
        b_num = tl.zeros([BV], dtype=tl.float32)
        b_den = tl.zeros([BF], dtype=tl.float32)
        for i_f in range(tl.cdiv(D, BF)):
            o_f = i_f * BF + o_f0
            m_f = o_f < D
            b_phq, b_phk = _step_phi(
                p_q, p_k, w, tab_i, tab_j, tab_s, o_f, b_qx, b_kx, b_qn, b_kn, pos, SC1, ANG, MS, FM, DK, D, BK
            )
            p_s = kv + i_bh.to(tl.int64) * D * DV + o_f[:, None] * DV + o_v[None, :]
            m_s = m_f[:, None] & m_v[None, :]
            b_s = tl.load(p_s, mask=m_s, other=0.0) + b_phk[:, None] * b_v[None, :]
            tl.store(p_s, b_s, mask=m_s)
            b_num += tl.sum(b_phq[:, None] * b_s, axis=0)
            if NORMALIZE or ZMODE == 1:
                b_z = tl.load(p_z + o_f, mask=m_f, other=0.0) + b_phk
                b_den += b_phq * b_z
                if ZMODE == 1:
                    tl.store(p_z + o_f, b_z, mask=m_f)
        if NORMALIZE:
            b_num = b_num / (tl.sum(b_den, axis=0) + eps)
        tl.store(o + i_bh.to(tl.int64) * DV + o_v, b_num.to(o.dtype.element_ty), mask=m_v)
    if ZMODE == 2:
        # Every thread's z reads have returned before the counter says so: their values were consumed (the
        # denominator's cross-thread sum) before this barrier. So the counter needs no fence: a relaxed atomic, not
        # acq_rel, whose release fence (MEMBAR.GPU) waited for this program's kv stores to drain first.
        tl.debug_barrier()
        last = tl.atomic_add(count + i_bh, 1, sem=SEM) == NV - 1
    else:
        last = not KV
    if last:
        for i_f in range(tl.cdiv(D, BF)):
            o_f = i_f * BF + o_f0
            _, b_phk = _step_phi(
                p_q, p_k, w, tab_i, tab_j, tab_s, o_f, b_qx, b_kx, b_qn, b_kn, pos, SC1, ANG, MS, FM, DK, D, BK
            )
            tl.store(p_z + o_f, tl.load(p_z + o_f, mask=o_f < D, other=0.0) + b_phk, mask=o_f < D)
        if ZMODE == 2:
            tl.atomic_xchg(count + i_bh, 0, sem=SEM)
