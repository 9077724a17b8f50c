"""Fused Triton causal linear attention for every feature map: training (chunked or quadratic) and decode.

``linear_attention_triton`` and ``linear_attention_step_triton`` are what
``mixerzoo.kernels.linear_attention`` calls on ``backend="triton"``. Both are ``torch.library``
custom ops (``mixerzoo::linear_attention_fwd`` / ``_bwd`` / ``_step``) with fake (meta) kernels, the training
pair joined by a ``torch.autograd.Function``, so ``torch.compile`` traces through them without a graph break.

Layout legend: ``q, k [B, L, H, d′]``, ``v, o [B, L, H, dv]``; canonical state ``kv [B, H, D, dv]``,
``z [B, H, D]`` fp32 (D = ``feature_map.out_dim``, the torch map's feature order); the kernels keep an
*internal* state ``[B, H, DI, dv]`` (``DI = NDT·BD`` tiled, zero-padded features; Taylor keeps the full
d′×d′ second-order block) and ``_to_internal`` / ``_to_canonical`` convert at the boundary. Kernels and
their feature-map device functions live in ``triton_kernels.py``.

Two algorithms, one kernel family (see ``benchmarks/notes/linear_attention.md`` for the numbers):
- chunked: a sequential scan stores the fp32 state entering each chunk of ``BT`` tokens, then every
  chunk's output is ``φQ·S_c + tril(A)·V`` in parallel; O(L·D·dv).
- quadratic (``parallel``): every chunk loops over all earlier key chunks in score space, no states;
  O(L²·(d′+dv)), faster for short sequences. ``auto`` picks it for ``L <= PARALLEL_MAX_L[kernel_id]``,
  the crossover measured on the H200.

How the chunked mode builds its per-chunk states is a second switch, ``ALGORITHM`` (env ``MIXERZOO_LA_ALGO``):
- ``auto`` (default): ``parallel`` for wide states (DI >= 64: Taylor, Performer m=64) at every L and for narrow ones
  from 64 chunks on, else ``serial``; the rule and its H200 numbers sit next to ``PARALLEL_STATES_MIN_DI``.
- ``serial``: ``_la_state_fwd_kernel`` / ``_la_state_bwd_kernel`` scan the chunks one after another,
  each step recomputing φ and one matmul: a dependent chain of NC matmuls per (feature tile, value tile, head).
- ``parallel``: ``_la_chunk_state_kernel`` computes every chunk's own ``φ(K_c)ᵀV_c`` at once (grid NC × tiles ×
  B·H), then ``_la_state_scan_kernel`` turns them into prefix sums in place (loads, adds, stores; memory-bound).
  Same outputs, states and gradients; more bytes (the state array is written, read+written, read) but no
  latency chain. The forward's prefix states are stored in bf16 for bf16 inputs (``FWD_STATES_BF16``), and in
  training (no final state asked for) so are the chunks' own contributions, summed in fp32 (``FWD_CHUNKS_BF16``).
  ``CHUNK_STATE`` picks the chunk-state kernel: ``tiles`` (a program per feature tile), ``head`` (a program per chunk
  and head looping over the feature tiles, Taylor's φ by broadcasting; ``_la_chunk_state_head_kernel``) or ``auto``
  (default: ``head`` for Taylor, where it was measured faster, ``tiles`` for the rest).
  ``parallel`` here is unrelated to ``FORCE_MODE = "parallel"``, the quadratic mode, which keeps no chunk states.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor

from mixerzoo.kernels import _launch
from mixerzoo.kernels._checks import cdiv, next_pow2
from mixerzoo.kernels.linear_attention.triton_kernels import (
    FM_IDS,
    _la_bwd_kernel,
    _la_bwd_pre_kernel,
    _la_chunk_state_head_kernel,
    _la_chunk_state_kernel,
    _la_out_fwd_kernel,
    _la_state_bwd_kernel,
    _la_state_fwd_kernel,
    _la_state_scan_kernel,
    _la_step_kernel,
)

__all__ = ["ALGORITHM", "CHUNK_STATE", "PARALLEL_MAX_L", "linear_attention_step_triton", "linear_attention_triton"]

# Longest L for which the quadratic kernels beat the chunked ones, measured on the H200 (bf16, B=4, H=16, dv=64,
# d′=16; benchmarks/notes/linear_attention.md, run 2): the quadratic kernel won fwd and fwd+bwd at every
# L <= 2048 for Taylor; for PosELU it won fwd+bwd up to 2048 but fwd only up to 1024. Run 7 (after the host cuts and
# the head chunk-state kernel), fwd+bwd quadratic / chunked ms: Taylor 1.05 / 1.62 at 2048, 3.59 / 1.74 at 4096;
# PosELU 1.10 / 1.47 at 2048 (fwd 0.317 / 0.309), 3.89 / 1.36 at 4096. Other maps share "default" (unmeasured there).
PARALLEL_MAX_L: dict[str, int] = {"taylor": 2048, "poselu": 2048, "default": 1024}

# Test hooks: fill kernel outputs with NaN before the launch (to prove every element is written), and
# force the chunk size / algorithm. ``None`` means the tuned default.
POISON_OUTPUTS = False
FORCE_CHUNK: int | None = None
FORCE_MODE: str | None = None  # "chunk" | "parallel"

# How the chunked mode builds its states (module docstring): "auto" | "serial" | "parallel". Read at every call, so
# tests and benchmarks may assign it; the environment variable sets the starting value. "auto" applies the rule below.
ALGORITHM: str = os.environ.get("MIXERZOO_LA_ALGO", "auto")
ALGORITHMS = ("serial", "parallel", "auto")
# "auto": ``parallel`` when the internal state width DI >= PARALLEL_STATES_MIN_DI (every L), or when there are at
# least PARALLEL_STATES_MIN_CHUNKS chunks; else ``serial``. H200 run 3 (2026-11-28, B=4, H=16, d′=16, dv=64, bf16,
# chunked mode forced; fwd+bwd ms, serial vs parallel with bf16 forward states; notes "Run 3 (session 2)"):
#   Taylor (DI=320)     L=4096: BT=64 2.694 vs 2.410, BT=128 2.239 vs 2.042;  L=16384: BT=64 10.59 vs 9.50,
#                       BT=128 8.959 vs 8.002                                  -> parallel at every L and BT
#   Performer (m=64, DI=64)  L=4096: 1.308 vs 1.211;  L=16384: 5.195 vs 4.802   -> parallel
#   PosELU (DI=16, BT=64)    L=4096 (64 chunks): 0.952 vs 1.535;  L=16384 (256 chunks): 2.374 vs 1.835
#                       -> serial at 64 chunks, parallel at 256 (then the rule was 256 chunks).
# Session 10 (2026-11-29, the parallel kernels since sped up by bf16 products, the one-pass backward tiles and bf16
# chunk contributions; `benchmarks/linear_attention.py --sections algo --pin-cpu 5`, results/session10/call13), same
# shapes, serial vs parallel fwd+bwd ms at 64 / 128 / 256 chunks (L = 4096 / 8192 / 16384):
#   PosELU (DI=16)     0.789 vs 0.467,  0.819 vs 0.624,  1.619 vs 1.221
#   CosFormer (DI=32)  0.594 vs 0.489,  1.062 vs 0.785,  2.098 vs 1.538   -> parallel from 64 chunks on
# Below 64 chunks (ReLU/CosFormer at L=2048, the others take the quadratic mode there) stays serial, unmeasured.
PARALLEL_STATES_MIN_DI = 64
PARALLEL_STATES_MIN_CHUNKS = 64
# ``parallel`` only, bf16 inputs only: the output kernel reads the per-chunk states in bf16 (4 → 3 state-array passes
# in the forward; FLA does the same). The sums, the final state and the backward's states stay fp32.
FWD_STATES_BF16 = True
# ``FWD_STATES_BF16`` and no final state asked for (training): the chunk-state kernel stores each chunk's own
# contribution in bf16 too, and the scan sums them in fp32 in place, so the two kernels move 2 instead of 4 bytes per
# state element on the way in (fp32 contributions: write 4, read 4, write the bf16 prefix 2; bf16: write 2, read 2,
# write 2). Each summand gets one bf16 rounding (relative 2^-9) on top of the prefix's own, which the output kernel
# reads in bf16 anyway. With ``output_final_state`` the contributions stay fp32: the state handed to generation is
# summed from exact fp32 terms. Env ``MIXERZOO_LA_FWD_CHUNKS_BF16=0``: fp32 contributions always.
FWD_CHUNKS_BF16: bool = os.environ.get("MIXERZOO_LA_FWD_CHUNKS_BF16", "1") != "0"
# ``parallel`` only: which kernel computes each chunk's own state (the forward states and the backward's GRAD variant).
# "tiles": ``_la_chunk_state_kernel``, one program per (chunk, feature tile, value tile, head), each reloading the chunk
# and rebuilding its φ tile by selection matmuls. "head": ``_la_chunk_state_head_kernel``, one program per (chunk, value
# tile, head) looping over the feature tiles, the chunk loaded once and Taylor's φ built by broadcasting (every map; the
# others call ``_phi_fwd`` per tile). "auto" (default): "head" for Taylor, "tiles" for the rest (their "head" variant is
# correct and tested but untimed). H200, 2026-11-28 17:27 (notes, "Run 5"), Taylor d′=16, dv=64, B=4, H=16, bf16,
# chunk-state kernel summed over its 3 launches / fwd+bwd: L=16384 BT=128 tiles 2.93 / 8.09 ms, head 4 warps
# 1.67 / 6.85, head 8 warps 2.04 / 7.20; L=4096 BT=128 fwd+bwd 2.06 → 1.76 ms; BT=64 the same order.
# Env ``MIXERZOO_LA_CHUNK_STATE``: the start value.
CHUNK_STATE: str = os.environ.get("MIXERZOO_LA_CHUNK_STATE", "auto")
CHUNK_STATES = ("auto", "tiles", "head")
# Warps of the "head" kernel. 4 won at BT=128 and 64 in the run above, although the offline sm_90 compile (Taylor
# d′=16, dv=64) spills 208 B at BT=128 / 4 warps (205 registers without spills at 8 warps, one CTA per SM): warps per
# SM, not registers, limit it. None: 8 at BT=128, else 4 (``_warps``).
CHUNK_STATE_WARPS: int | None = 4

# Chunked mode: the forward's per-chunk states (what its output kernel read: bf16 for bf16 inputs with the ``parallel``
# algorithm, else fp32) and z prefix sums are kept for the backward (``True``), which then skips recomputing them (a
# chunk-state pass and a scan, or a serial scan), and reads them in its dq half; or the backward recomputes them in fp32
# (``False``). Costs the states' memory between the forward and the backward: NC·DI·dv per head (B=4, H=16, L=16384,
# Taylor d′=16, dv=64: 201 MB in bf16), about 60% of that layer's q, k, v and o. H200, session 6 (2026-11-29; notes,
# "Session 6: the forward's states kept"), chunked mode, fwd+bwd ms kept / recomputed: Taylor L=16384 4.44 / 5.08
# (GPU kernel time at 4096 1.15 / 1.31), PosELU serial 1.88 / 2.25, Performer serial 3.56 / 4.09, CosFormer serial
# 2.55 / 3.08 at 16384; the LA GPU tests passed with it (87). Env ``MIXERZOO_LA_SAVE_STATES=0``: off.
SAVE_FWD_STATES: bool = os.environ.get("MIXERZOO_LA_SAVE_STATES", "1") != "0"

# The backward's pre pass (``dden = −(do·o)/den`` per token, ``_la_bwd_pre_kernel``) inside its chunk-state kernel where
# that kernel holds whole value rows (``_fused_pre``: Taylor's head kernel at dv <= 64): one launch fewer per backward
# (~80 µs of host time on the H200's host, where a 4096-token Taylor fwd+bwd is host-bound; notes, "Session 7") and
# one pass over o and do fewer. Env ``MIXERZOO_LA_FUSE_PRE=0``: the separate pre kernel.
FUSE_BWD_PRE: bool = os.environ.get("MIXERZOO_LA_FUSE_PRE", "1") != "0"

# The dq/dk/dv kernel as two launches, dq and dk/dv (True), or one program doing both (False). Split, each
# specialization keeps fewer live tiles (offline sm_90 compile, d′=16, dv=64, bf16: Taylor at BT=128 255 registers +
# 48 B of spills → 179 and 252, none; Performer at BT=64 936 B of spills → 0 and 188 B). H200, 2026-11-28 (notes,
# "Run 7"), B=4, H=16, fwd+bwd ms split / one program: Performer L=16384 3.73 / 4.93; Taylor 6.73 / 6.75 (16384) and
# 1.74 / 1.74 (4096); PosELU 1.80 / 1.85 and CosFormer 2.50 / 2.43 at 16384. Env ``MIXERZOO_LA_BWD_SPLIT=0``: False.
BWD_SPLIT: bool = os.environ.get("MIXERZOO_LA_BWD_SPLIT", "1") != "0"
# With ``BWD_SPLIT``: the two halves as one launch of twice the programs, each program branching on its id to one
# half's specialization, or as two launches. One launch fewer per backward (host time: a Taylor fwd+bwd at 4096 is
# host-bound on the H200's host) and no tail between the halves; but every program gets the larger half's registers
# (offline sm_90, d′=16, dv=64, bf16: Taylor's 173 / 255 → 255 for both, one CTA per SM either way; Performer's dq
# 160 → 255, three CTAs per SM → two). H200, 2026-11-29 (session 9, ``results/session9/``), B=4, H=16, fwd+bwd ms two
# launches → one: Taylor 3.445 → 3.424 (16384), 1.760 → 1.740 (8192); with the tile pass, Performer 2.143 → 2.176
# (16384), PosELU 1.245 → 1.276, CosFormer 1.573 → 1.620. So "taylor" (default): one launch for Taylor's score path
# only; "all": every map; "none": two launches. Env ``MIXERZOO_LA_BWD_ONE_LAUNCH``.
BWD_ONE_LAUNCH: str = os.environ.get("MIXERZOO_LA_BWD_ONE_LAUNCH", "taylor")
if BWD_ONE_LAUNCH not in ("taylor", "all", "none"):
    raise ValueError(f"MIXERZOO_LA_BWD_ONE_LAUNCH={BWD_ONE_LAUNCH!r}: use 'taylor' (default), 'all' or 'none'")
# Chunk mode with a feature map (not Taylor's score path): the backward's intra-chunk terms and its terms through the
# states in one pass over the feature tiles (True, default), φK computed once for both and one φ backward per tile for
# their summed gradient (``_bwd_chunk_tiles``), or in separate loops (False). Offline sm_90 compile (session 8;
# d′=16, dv=64, bf16), separate → one pass: Performer (m=64) dq 243 → 160 registers, 3224 → 2376 SASS instructions,
# 78 → 48 tensor-core MMAs, 96 → 64 exp; dk/dv 368 → 192 B of stack, 4504 → 3248 instructions, 94 → 64 MMAs.
# H200, 2026-11-29 (session 9), B=4, H=16, fwd+bwd ms separate → one pass: Performer 2.642 → 2.143 (16384), PosELU
# 1.315 → 1.245, CosFormer 1.634 → 1.573 (16384). Env ``MIXERZOO_LA_BWD_TILE_PASS=0``: separate loops.
BWD_TILE_PASS: bool = os.environ.get("MIXERZOO_LA_BWD_TILE_PASS", "1") != "0"

# Taylor's internal layout for the chunked kernels. False: the full d′×d′ second-order block, every pair
# (i, j) stored twice (DI = 320 at d′=16). True (default): each canonical feature once (DI = 192 at d′=16): a first tile
# [x·SC1, 1, x_i²·SC2], then blocks of two rows, (p, d′−1−p), holding x_i·x_j·√2·SC2 for j > i (d′−1 columns), built
# by the same selection matmuls (kernel FM id 7, the block width passed as M). Every state-array pass and φ·S product
# shrinks by DI. H200, 2026-11-28 19:50 (notes, "Symmetric Taylor layout"), B=4, H=16, dv=64, bf16, fwd+bwd ms
# symmetric / full: 1.488 / 1.727 at L=4096, 5.059 / 6.695 at 16384 (chunk-state 1.27 / 1.66, scan 0.66 / 1.13,
# dq/dk/dv 2.10 / 2.77); its GPU tests (d′ = 16, 24, 64) passed. Env ``MIXERZOO_LA_TAYLOR_SYMMETRIC=0``: False.
TAYLOR_SYMMETRIC: bool = os.environ.get("MIXERZOO_LA_TAYLOR_SYMMETRIC", "1") != "0"

# bf16 inputs: the chunked and quadratic kernels multiply bf16 operands (fp32 accumulation), as FLA's kernels do,
# instead of tf32 ones: half the bytes per operand tile and twice the tensor-core rate (offline sm_90 compile, Taylor
# d′=16, dv=64, BT=128, tf32 → bf16: dk/dv half 255 registers + 32 B of spills and 112 KB of shared memory → 255 + 24 B
# and 72 KB; dq half 190 / 80 KB → 173 / 40 KB; output kernel 224 → 177 registers; chunk-state 160 / 72 KB → 121 /
# 36 KB). What cancels keeps exact operands (16-bit do and v, with 1/den applied after the product) or one rounding shared by both sides (``_rnd``), and the
# product ``V·dSᵀ`` stays tf32 (``_mm_hi``). So do products with fewer than 64 output columns: with bf16 operands there
# Triton 3.6 on the H200 faulted (illegal address: PosELU's backward, 16-wide φ tiles) or returned a wrong dq
# (Performer at m = 17, 32-wide tiles; session 7); every product of Taylor's and Performer's (m = 64) at d′ = 16 and
# dv = 64 has 64 or more. H200, session 7, B=4, H=16, d′=16, dv=64, fwd+bwd ms bf16 / tf32 (same run, chunked mode):
# Taylor 3.50 / 4.51 at L=16384 (GPU kernels at 4096: 0.91 / 1.16), Performer 2.63 / 3.19, CosFormer 1.62 / 1.92,
# PosELU 1.55 / 1.67. Env ``MIXERZOO_LA_DOTS_BF16=0``: tf32 as before.
DOTS_BF16: bool = os.environ.get("MIXERZOO_LA_DOTS_BF16", "1") != "0"

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"


def _empty(shape, dtype, device) -> Tensor:
    if POISON_OUTPUTS:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


@dataclass(frozen=True)
class Plan:
    """Static kernel configuration of one feature map: the internal feature tiling and its constants."""

    kind: str
    fm: int  # FM_IDS
    dk: int  # d′
    bk: int  # d′ padded to a power of two >= 16
    bd: int  # feature tile width
    ndt: int  # number of feature tiles
    nt1: int  # taylor: first-order tiles (the rest are second-order row blocks)
    m: int  # performer: number of random features
    out_dim: int  # D, canonical
    sc1: float  # d′^-¼
    sc2: float  # 1/(√2·√d′)
    sq: float  # 1/√d′
    ms: float  # performer 1/√m
    ang: float  # cosformer π/(2M)
    sym: bool = False  # taylor: the symmetric internal layout (``TAYLOR_SYMMETRIC``)
    bkp: int = 0  # taylor, symmetric: columns per block of two paired rows (d′ − 1 padded to a power of two)

    @property
    def di(self) -> int:
        return self.ndt * self.bd


def _plan(kind: str, dk: int, m: int = 0, max_len: int = 0) -> Plan:
    """``make_plan`` with the current ``TAYLOR_SYMMETRIC`` setting."""
    return make_plan(kind, dk, m, max_len, sym=TAYLOR_SYMMETRIC and kind == "taylor")


@cache
def make_plan(kind: str, dk: int, m: int = 0, max_len: int = 0, sym: bool = False) -> Plan:
    """The tiling for feature map ``kind`` at d′ = ``dk`` (``m`` performer features, ``max_len`` cosformer M; ``sym``:
    Taylor's symmetric layout, see ``TAYLOR_SYMMETRIC``)."""
    if kind not in FM_IDS:
        raise NotImplementedError(
            f"linear_attention (triton): no fused kernel for feature map kernel_id={kind!r}; "
            f"supported: {sorted(FM_IDS)}; use backend='torch'"
        )
    if not 1 <= dk <= 64:
        raise ValueError(f"linear_attention (triton): d′ must be in 1..64 for the fused kernels, got {dk}")
    bk = max(16, next_pow2(dk))
    nt1, mm, out_dim = 0, 0, dk
    bkp = 0
    if kind == "taylor" and sym:
        bd = 64
        nt1 = cdiv(2 * dk + 1, bd)  # [x·SC1, 1, x_i²·SC2]
        bkp = next_pow2(max(dk - 1, 1))
        ndt = nt1 + (cdiv((dk + 1) // 2 * bkp, bd) if dk > 1 else 0)  # blocks of rows (p, d′−1−p), j > i only
        out_dim = 1 + dk + dk * (dk + 1) // 2
    elif kind == "taylor":
        bd = 64
        nt1 = cdiv(dk + 1, bd)
        ndt = nt1 + cdiv(dk, bd // bk)
        out_dim = 1 + dk + dk * (dk + 1) // 2
    elif kind == "performer":
        mm = m
        bd = min(64, max(16, next_pow2(m)))
        ndt = cdiv(m, bd)
        out_dim = m
    elif kind == "cosformer":
        bd, ndt, out_dim = bk, 2, 2 * dk
    else:
        bd, ndt = bk, 1
    return Plan(
        kind=kind, fm=FM_IDS[kind], dk=dk, bk=bk, bd=bd, ndt=ndt, nt1=nt1, m=mm, out_dim=out_dim,
        sc1=dk**-0.25, sc2=1.0 / math.sqrt(2.0 * dk), sq=dk**-0.5, ms=1.0 / math.sqrt(mm) if mm else 1.0,
        ang=math.pi / (2 * max_len) if max_len else 0.0, sym=sym, bkp=bkp,
    )  # fmt: skip


@cache
def _index_maps(plan: Plan) -> tuple[list[int], list[int], list[float], list[float]]:
    """For each canonical feature f: internal rows (a, b), the weight w (canonical = (S[a] + S[b])·w) and
    u (S[a] = S[b] = canonical·u). Taylor's pair (i, j) lives at both (i, j) and (j, i) of the full block."""
    if plan.sym:  # one internal column per canonical feature: a permutation
        d, base = plan.dk, plan.nt1 * plan.bd
        cols = [d] + list(range(d))
        for i, j in [(r, c) for r in range(d) for c in range(r, d)]:  # torch.triu_indices order
            if i == j:
                cols.append(d + 1 + i)
            else:
                p = min(i, d - 1 - i)  # the block of rows p and d′−1−p
                cc = j - i - 1 if i == p else (d - 1 - p) + (j - i - 1)
                cols.append(base + p * plan.bkp + cc)
        n = len(cols)
        return cols, cols, [0.5] * n, [1.0] * n
    if plan.kind == "taylor":
        d, base = plan.dk, plan.nt1 * plan.bd
        a, b = [d] + list(range(d)), [d] + list(range(d))
        w, u = [0.5] * (d + 1), [1.0] * (d + 1)
        for i, j in [(r, c) for r in range(d) for c in range(r, d)]:  # torch.triu_indices order
            a.append(base + i * plan.bk + j)
            b.append(base + j * plan.bk + i)
            w.append(0.5 if i == j else 1.0 / math.sqrt(2.0))
            u.append(1.0 if i == j else 1.0 / math.sqrt(2.0))
        return a, b, w, u
    if plan.kind == "cosformer":
        idx = list(range(plan.dk)) + [plan.bk + i for i in range(plan.dk)]
    else:
        idx = list(range(plan.out_dim))
    n = len(idx)
    return idx, idx, [0.5] * n, [1.0] * n


def _index_tensors(plan: Plan, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The index maps as tensors: cached in eager mode, graph constants under torch.compile."""
    if torch.compiler.is_compiling():
        a, b, w, u = _index_maps(plan)
        return (torch.tensor(a, device=device), torch.tensor(b, device=device),
                torch.tensor(w, device=device), torch.tensor(u, device=device))  # fmt: skip
    return _index_tensors_cached(plan, device)


@cache
def _index_tensors_cached(plan: Plan, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    a, b, w, u = _index_maps(plan)
    mk = torch.tensor
    return mk(a, device=device), mk(b, device=device), mk(w, device=device), mk(u, device=device)


def _to_internal(plan: Plan, kv: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """Canonical ``(kv [B, H, D, dv], z [B, H, D])`` → internal ``[B, H, DI, dv]``, ``[B, H, DI]`` (differentiable)."""
    a, b, _, u = _index_tensors(plan, kv.device)
    B, H, _, dv = kv.shape
    kvu, zu = kv * u[:, None], z * u
    kv_i = kv.new_zeros(B, H, plan.di, dv).index_copy(2, a, kvu).index_copy(2, b, kvu)
    z_i = z.new_zeros(B, H, plan.di).index_copy(2, a, zu).index_copy(2, b, zu)
    return kv_i, z_i


def _to_canonical(plan: Plan, kv_i: Tensor, z_i: Tensor) -> tuple[Tensor, Tensor]:
    """Internal state → canonical feature order (differentiable)."""
    a, b, w, _ = _index_tensors(plan, kv_i.device)
    kv = (kv_i.index_select(2, a) + kv_i.index_select(2, b)) * w[:, None]
    z = (z_i.index_select(2, a) + z_i.index_select(2, b)) * w
    return kv, z


def _plan_of(fm) -> tuple[Plan, Tensor | None]:
    kind = fm.kernel_id
    m = int(getattr(fm, "m", 0)) if kind == "performer" else 0
    max_len = int(getattr(fm, "max_len", 0)) if kind == "cosformer" else 0
    proj = fm.projection if kind == "performer" else None
    return _plan(kind, fm.d_prime, m, max_len), proj


# ----------------------------------------------------------------------------------------------------------------
# launch helpers (plain functions over contiguous tensors)


def _prec(dtype: torch.dtype) -> str:
    """Dot precision of the chunked and quadratic kernels (``triton_kernels._mm``): fp32 inputs full fp32 (``ieee``);
    bf16 inputs bf16 operands (``DOTS_BF16``; ``bf16emu``, the same rounding, under the CPU interpreter), else tf32;
    fp16 inputs tf32 (their values are exact in tf32, and fp16 could not hold φ at large input scales)."""
    if dtype == torch.float32:
        return "ieee"
    if dtype == torch.bfloat16 and DOTS_BF16:
        return "bf16emu" if _INTERPRET else "bf16"
    return "tf32"


def _dot16(dtype: torch.dtype) -> bool:
    """Score matmuls on native 16-bit operands, except fp32 inputs and the CPU interpreter (bf16 dot bug)."""
    return dtype != torch.float32 and not _INTERPRET


def _chunk_size(plan: Plan, L: int, dv: int) -> int:
    """Tokens per chunk: 128 for Taylor at dv <= 64 (H200: 8.9 vs 10.7 ms fwd+bwd at L=16384), else 64; 32 at
    dv > 128, where 64×256 fp32 tiles overflow shared memory (seen at d′=24, dv=256)."""
    if FORCE_CHUNK is not None:
        return FORCE_CHUNK
    if _INTERPRET:
        return 16 if L <= 64 else 32
    if dv > 128:
        return 32
    return 128 if plan.kind == "taylor" and dv <= 64 else 64


def _warps(bt: int) -> int:
    return 4 if bt <= 64 else 8


def _state_bv(plan: Plan, dv: int, bh: int) -> int:
    bv = min(64, max(16, next_pow2(dv)))
    while bv > 16 and plan.ndt * cdiv(dv, bv) * bh < 264:
        bv //= 2
    return bv


def _consts(plan: Plan) -> dict:
    return dict(SC1=plan.sc1, SC2=plan.sc2, ANG=plan.ang, MS=plan.ms)


def _statics(plan: Plan, dv: int, bt: int, prec: str) -> dict:
    return dict(
        FM=7 if plan.sym else plan.fm, DK=plan.dk, DV=dv, BT=bt, BK=plan.bk, BD=plan.bd, NT1=plan.nt1, NDT=plan.ndt,
        M=plan.bkp if plan.sym else plan.m,
        PREC=prec,
    )  # fmt: skip


def _use_parallel(plan: Plan, L: int) -> bool:
    if FORCE_MODE is not None:
        return FORCE_MODE == "parallel"
    return L <= PARALLEL_MAX_L.get(plan.kind, PARALLEL_MAX_L["default"])


@dataclass(frozen=True)
class Launch:
    """The launch configuration shared by the forward and backward of one (map, shape, dtype): computed once."""

    parallel: bool  # the quadratic mode
    bt: int  # chunk
    nc: int  # chunks
    st: dict  # static kernel arguments
    cs: dict  # feature-map constants
    bv: int  # value tile of the output and gradient kernels (all of dv)
    bv_s: int  # value tile of the serial state scans
    st_s: dict  # st with BV = bv_s
    warps: int
    dot16: bool


@cache
def _launch_config(
    plan: Plan, L: int, dv: int, bh: int, dtype: torch.dtype, parallel: bool, chunk: int, prec: str
) -> Launch:
    st = _statics(plan, dv, chunk, prec)
    bv_s = _state_bv(plan, dv, bh)
    return Launch(
        parallel=parallel, bt=chunk, nc=cdiv(L, chunk), st=st, cs=_consts(plan), bv=max(16, next_pow2(dv)), bv_s=bv_s,
        st_s=dict(st, BV=bv_s), warps=_warps(chunk), dot16=_dot16(dtype),
    )  # fmt: skip


def _launch_setup(plan: Plan, q: Tensor, v: Tensor, w: Tensor | None) -> tuple[Launch, Tensor, Tensor]:
    """``(launch configuration, projection or dummy, dummy)``; the configuration is cached per shape (the test
    hooks ``FORCE_MODE``/``FORCE_CHUNK`` are read here, every call)."""
    B, L, H, _ = q.shape
    dv = v.shape[-1]
    cfg = _launch_config(plan, L, dv, B * H, q.dtype, _use_parallel(plan, L), _chunk_size(plan, L, dv), _prec(q.dtype))
    dum = _dummy(q.device)
    return cfg, (w if w is not None else dum), dum


_DUMMIES: dict[torch.device, Tensor] = {}


def _dummy(device: torch.device) -> Tensor:
    """A 1-element fp32 tensor for pointer arguments a launch does not touch (never written: the kernels' flags
    turn those accesses off). One per device."""
    d = _DUMMIES.get(device)
    if d is None:
        d = _DUMMIES[device] = torch.empty(1, dtype=torch.float32, device=device)
    return d


def _parallel_states(plan: Plan, nc: int) -> bool:
    """Whether the chunked mode builds its ``nc`` chunk states with the ``parallel`` algorithm (``ALGORITHM``; for
    ``auto`` the measured rule next to ``PARALLEL_STATES_MIN_DI``)."""
    if ALGORITHM not in ALGORITHMS:
        raise ValueError(
            f"linear_attention (triton): unknown state algorithm {ALGORITHM!r} (MIXERZOO_LA_ALGO or "
            f"triton_ops.ALGORITHM); choose one of {list(ALGORITHMS)}"
        )
    if ALGORITHM == "auto":
        return plan.di >= PARALLEL_STATES_MIN_DI or nc >= PARALLEL_STATES_MIN_CHUNKS
    return ALGORITHM == "parallel"


def _fwd_states_bf16(plan: Plan, nc: int, dtype: torch.dtype) -> bool:
    """Whether the chunked forward's output kernel reads its per-chunk states in bf16 (``FWD_STATES_BF16``: bf16 inputs
    with the ``parallel`` algorithm); those are then the states the backward keeps (``SAVE_FWD_STATES``)."""
    return FWD_STATES_BF16 and dtype == torch.bfloat16 and _parallel_states(plan, nc)


def _scan_tiles(plan: Plan, dv: int) -> tuple[int, int]:
    """Tile ``(BS rows, BV columns)`` of the prefix-sum kernel: small (<= 32×32 fp32 = 4 KB), so that even one
    head's state splits over many programs and enough loads are in flight to reach copy bandwidth."""
    return min(plan.bd, 32), min(32, max(16, next_pow2(dv)))


def _head_chunk_state(plan: Plan) -> bool:
    """Whether the ``parallel`` algorithm's chunk states come from ``_la_chunk_state_head_kernel`` (``CHUNK_STATE``)."""
    if CHUNK_STATE not in CHUNK_STATES:
        raise ValueError(
            f"linear_attention (triton): unknown chunk-state kernel {CHUNK_STATE!r} (MIXERZOO_LA_CHUNK_STATE or "
            f"triton_ops.CHUNK_STATE); choose one of {list(CHUNK_STATES)}"
        )
    return CHUNK_STATE == "head" or (CHUNK_STATE == "auto" and plan.kind == "taylor")


def _fused_pre(plan: Plan, parallel: bool, nc: int, dv: int, normalize: bool) -> bool:
    """Whether the backward's pre pass (``dden``) runs inside its chunk-state kernel (``FUSE_BWD_PRE``): chunked mode
    with the ``parallel`` algorithm and the head kernel, whose one value tile then holds whole rows (dv <= 64)."""
    return (
        FUSE_BWD_PRE and normalize and not parallel and _parallel_states(plan, nc) and _head_chunk_state(plan)
        and dv <= 64
    )  # fmt: skip


def _states_parallel(
    plan: Plan, x: Tensor, y: Tensor, w: Tensor, den: Tensor, dden: Tensor, s_all: Tensor, z_all: Tensor,
    s0: Tensor | None, z0: Tensor | None, sT: Tensor, zT: Tensor, store_final: bool, grad: bool, normalize: bool,
    offset: int, st: dict, cs: dict, s_out: Tensor | None = None, pre: tuple[Tensor, Tensor, bool] | None = None,
) -> None:  # fmt: skip
    """The ``parallel`` state algorithm: fill ``s_all [B·H, NC, DI, dv]``, ``z_all [B·H, NC, DI]`` with the state
    entering each chunk (``grad``: the reverse-scan gradients, from ``φ(Q)``, ``do/den`` and ``dden``), seeded with
    ``s0``/``z0``; the total to ``sT``/``zT`` when ``store_final``. With ``s_out`` the prefix states go there
    (e.g. bf16) and ``s_all`` keeps the chunks' own fp32 contributions. ``pre = (o, o_res, use_res)``: the backward's
    pre pass goes into the chunk-state kernel, which then writes ``dden`` (``_fused_pre``)."""
    B, L, H, _ = x.shape
    dv, nc = y.shape[-1], s_all.shape[1]
    bv = min(64, max(16, next_pow2(dv)))  # the head kernel's value tile: whole rows for dv <= 64 (_fused_pre)
    if _head_chunk_state(plan):
        # one program per (chunk, value tile, head), looping over the feature tiles
        o, o_res, use_res = pre if pre is not None else (den, den, False)
        _launch.fast(_la_chunk_state_head_kernel)[(nc, cdiv(dv, bv), B * H)](
            x, y, w, den, dden, s_all, z_all, o, o_res, L, H, nc, offset, **cs, **st, BV=bv, GRAD=grad,
            NORMALIZE=normalize, R=max(1, plan.bd // plan.bk), PRE=pre is not None, USE_RES=use_res,
            num_warps=CHUNK_STATE_WARPS or _warps(st["BT"]),
        )  # fmt: skip
    else:
        assert pre is None, "the pre pass fuses into the head chunk-state kernel only"
        _launch.fast(_la_chunk_state_kernel)[(nc, plan.ndt * cdiv(dv, bv), B * H)](
            x, y, w, den, dden, s_all, z_all, L, H, nc, offset, **cs, **st, BV=bv, GRAD=grad, NORMALIZE=normalize,
            num_warps=4,
        )  # fmt: skip
    bs, bvs = _scan_tiles(plan, dv)
    use_s0 = s0 is not None
    dum = _dummy(x.device)
    _launch.fast(_la_state_scan_kernel)[(plan.di // bs, cdiv(dv, bvs), B * H)](
        s_all, s_all if s_out is None else s_out, z_all, s0 if use_s0 else dum, z0 if use_s0 else dum, sT if store_final else dum,
        zT if store_final else dum, nc, plan.di, DV=dv, BS=bs, BV=bvs, USE_S0=use_s0, STORE_FINAL=store_final,
        REVERSE=grad, num_warps=4,
    )  # fmt: skip


def _fwd_impl(
    plan: Plan, q: Tensor, k: Tensor, v: Tensor, s0: Tensor | None, z0: Tensor | None, w: Tensor | None,
    normalize: bool, eps: float, offset: int, want_state: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """Forward launches: ``(o, o_res, den [B·H, L], sT [B, H, DI, dv], zT [B, H, DI], s_all, z_all)`` (empty when
    unused).

    ``o_res`` is o's 16-bit rounding residual (normalized 16-bit runs), kept for the backward; ``s_all`` / ``z_all``
    the chunked mode's per-chunk states ``[B·H, NC, DI, dv]`` / ``[B·H, NC, DI]`` (``SAVE_FWD_STATES``)."""
    B, L, H, _ = q.shape
    dv = v.shape[-1]
    dev = q.device
    cfg, w_, dum = _launch_setup(plan, q, v, w)
    parallel, nc, st, cs, st_s = cfg.parallel, cfg.nc, cfg.st, cfg.cs, cfg.st_s
    o = _empty((B, L, H, dv), v.dtype, dev)
    den = _empty((B * H, L), torch.float32, dev) if normalize else dum
    store_res = normalize and v.dtype != torch.float32
    o_res = _empty((B, L, H, dv), v.dtype, dev) if store_res else dum
    sT = _empty((B, H, plan.di, dv), torch.float32, dev) if want_state else dum
    zT = _empty((B, H, plan.di), torch.float32, dev) if want_state else dum
    use_s0 = s0 is not None
    grid_s = (plan.ndt, cdiv(dv, cfg.bv_s), B * H)
    if parallel:
        s_all, z_all = (s0, z0) if use_s0 else (dum, dum)  # the initial state serves every chunk
        strides = (plan.di, 0)
        if want_state:
            _launch.fast(_la_state_fwd_kernel)[grid_s](
                k, v, w_, s0 if use_s0 else dum, z0 if use_s0 else dum, dum, dum, sT, zT, L, H, nc, offset, **cs,
                **st_s, USE_S0=use_s0, STORE_ALL=False, STORE_FINAL=True, num_warps=4,
            )  # fmt: skip
    else:
        states_bf16 = _fwd_states_bf16(plan, nc, v.dtype)
        chunks_bf16 = states_bf16 and FWD_CHUNKS_BF16 and not want_state  # bf16 contributions, scanned in place
        s_all = _empty((B * H, nc, plan.di, dv), torch.bfloat16 if chunks_bf16 else torch.float32, dev)
        z_all = _empty((B * H, nc, plan.di), torch.float32, dev)
        strides = (nc * plan.di, plan.di)
        if _parallel_states(plan, nc):
            s_read = _empty(s_all.shape, torch.bfloat16, dev) if states_bf16 and not chunks_bf16 else None
            _states_parallel(
                plan, k, v, w_, dum, dum, s_all, z_all, s0, z0, sT, zT, want_state, False, normalize, offset, st, cs,
                s_out=s_read,
            )  # fmt: skip
            if s_read is not None:
                s_all = s_read  # what the output kernel reads
        else:
            _launch.fast(_la_state_fwd_kernel)[grid_s](
                k, v, w_, s0 if use_s0 else dum, z0 if use_s0 else dum, s_all, z_all, sT, zT, L, H, nc, offset,
                **cs, **st_s, USE_S0=use_s0, STORE_ALL=True, STORE_FINAL=want_state, num_warps=4,
            )  # fmt: skip
    has_s = use_s0 or not parallel
    _launch.fast(_la_out_fwd_kernel)[(nc, B * H)](
        q, k, v, w_, s_all, z_all, o, o_res, den, L, H, nc, *strides, offset, eps,
        **cs, SQ=plan.sq, **st, BV=cfg.bv, SCORE=plan.kind == "taylor",
        PARALLEL=parallel, HAS_S=has_s, NORMALIZE=normalize, STORE_RES=store_res, DOT16=cfg.dot16,
        num_warps=cfg.warps,
    )  # fmt: skip
    if not store_res:
        o_res = q.new_empty(0)
    if not want_state:
        sT, zT = q.new_empty(0, dtype=torch.float32), q.new_empty(0, dtype=torch.float32)
    if not normalize:
        den = q.new_empty(0, dtype=torch.float32)
    if parallel or not SAVE_FWD_STATES:
        s_all, z_all = q.new_empty(0, dtype=torch.float32), q.new_empty(0, dtype=torch.float32)
    return o, o_res, den, sT, zT, s_all, z_all


def _bwd_impl(
    plan: Plan, do: Tensor, dsT: Tensor | None, dzT: Tensor | None, q: Tensor, k: Tensor, v: Tensor, o: Tensor,
    o_res: Tensor, den: Tensor, s0: Tensor | None, z0: Tensor | None, w: Tensor | None, normalize: bool, offset: int,
    s_fwd: Tensor, z_fwd: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:  # fmt: skip
    """Backward launches: ``(dq, dk, dv, ds0, dz0)`` (the last two only when an initial state was given).

    ``s_fwd`` / ``z_fwd``: the forward's per-chunk states (``SAVE_FWD_STATES``; empty when not kept), used instead of
    recomputing them."""
    B, L, H, _ = q.shape
    dv_ = v.shape[-1]
    dev = q.device
    cfg, w_, dum = _launch_setup(plan, q, v, w)
    parallel, nc, st, cs, st_s, bv = cfg.parallel, cfg.nc, cfg.st, cfg.cs, cfg.st_s, cfg.bv
    use_s0 = s0 is not None
    use_dst = dsT is not None
    fuse_pre = _fused_pre(plan, parallel, nc, dv_, normalize)
    if normalize:
        dden = _empty((B * H, L), torch.float32, dev)
        use_res = o_res.numel() > 0
        if not fuse_pre:  # else the chunk-state kernel below writes dden
            _launch.fast(_la_bwd_pre_kernel)[(cdiv(L, 64), B * H)](
                o, o_res if use_res else o, do, den, dden, L, H, DV=dv_, BT=64, BV=bv, USE_RES=use_res, num_warps=4
            )
    else:
        dden = dum
        den = dum
    grid_s = (plan.ndt, cdiv(dv_, cfg.bv_s), B * H)
    ds0 = _empty((B, H, plan.di, dv_), torch.float32, dev) if use_s0 else None
    dz0 = _empty((B, H, plan.di), torch.float32, dev) if use_s0 else None
    if parallel:
        s_all, z_all = (s0, z0) if use_s0 else (dum, dum)
        ds_all, dz_all = (dsT, dzT) if use_dst else (dum, dum)
        strides = (plan.di, 0, plan.di, 0)
        has_s, has_ds = use_s0, use_dst
        if use_s0:
            _launch.fast(_la_state_bwd_kernel)[grid_s](
                q, do, w_, den, dden, dsT if use_dst else dum, dzT if use_dst else dum, dum, dum, ds0, dz0,
                L, H, nc, offset, **cs, **st_s, NORMALIZE=normalize, USE_DST=use_dst, STORE_ALL=False,
                STORE_D0=True, num_warps=4,
            )  # fmt: skip
    else:
        saved = s_fwd.numel() > 0
        if saved:
            s_all, z_all = s_fwd, z_fwd
        else:
            s_all = _empty((B * H, nc, plan.di, dv_), torch.float32, dev)
            z_all = _empty((B * H, nc, plan.di), torch.float32, dev)
        ds_all = _empty((B * H, nc, plan.di, dv_), torch.float32, dev)
        dz_all = _empty((B * H, nc, plan.di), torch.float32, dev)
        if _parallel_states(plan, nc):
            if not saved:
                _states_parallel(
                    plan, k, v, w_, dum, dum, s_all, z_all, s0, z0, dum, dum, False, False, normalize, offset, st, cs
                )
            pre = (o, o_res if use_res else o, use_res) if fuse_pre else None
            _states_parallel(
                plan, q, do, w_, den, dden, ds_all, dz_all, dsT, dzT, ds0, dz0, use_s0, True, normalize, offset, st, cs,
                pre=pre,
            )  # fmt: skip
        else:
            if not saved:
                _launch.fast(_la_state_fwd_kernel)[grid_s](
                    k, v, w_, s0 if use_s0 else dum, z0 if use_s0 else dum, s_all, z_all, dum, dum, L, H, nc, offset,
                    **cs, **st_s, USE_S0=use_s0, STORE_ALL=True, STORE_FINAL=False, num_warps=4,
                )  # fmt: skip
            _launch.fast(_la_state_bwd_kernel)[grid_s](
                q, do, w_, den, dden, dsT if use_dst else dum, dzT if use_dst else dum, ds_all, dz_all,
                ds0 if use_s0 else dum, dz0 if use_s0 else dum, L, H, nc, offset, **cs, **st_s, NORMALIZE=normalize,
                USE_DST=use_dst, STORE_ALL=True, STORE_D0=use_s0, num_warps=4,
            )  # fmt: skip
        strides = (nc * plan.di, plan.di, nc * plan.di, plan.di)
        has_s = has_ds = True
    dq = _empty(q.shape, q.dtype, dev)
    dk = _empty(k.shape, k.dtype, dev)
    dv = _empty(v.shape, v.dtype, dev)
    one_grid = BWD_SPLIT and (BWD_ONE_LAUNCH == "all" or (BWD_ONE_LAUNCH == "taylor" and plan.kind == "taylor"))
    tile_pass = BWD_TILE_PASS and not parallel and plan.kind != "taylor"
    # (dq, dk/dv) per launch; the one-launch kernel picks its half per program, so its launch passes (True, True)
    halves = ((True, False), (False, True)) if BWD_SPLIT and not one_grid else ((True, True),)
    for do_q, do_kv in halves:
        _launch.fast(_la_bwd_kernel)[(2 * nc if one_grid else nc, B * H)](
            q, k, v, w_, do, den, dden, s_all, z_all, ds_all, dz_all, dq, dk, dv, L, H, nc, *strides,
            offset, **cs, SQ=plan.sq, **st, BV=bv, SCORE=plan.kind == "taylor", PARALLEL=parallel, HAS_S=has_s,
            HAS_DS=has_ds, NORMALIZE=normalize, DOT16=cfg.dot16, DO_Q=do_q, DO_KV=do_kv, TILE_PASS=tile_pass,
            ONE_GRID=one_grid,
            num_warps=cfg.warps,
            num_stages=1,  # triton 3.6's software pipeliner crashes on the Taylor variant (H200); loops here are short
        )  # fmt: skip
    return dq, dk, dv, ds0, dz0


# ----------------------------------------------------------------------------------------------------------------
# custom ops: opaque to torch.compile, with fake kernels; autograd in _LinearAttention


def _fwd_call(q, k, v, s0, z0, w, kind, m, max_len, normalize, eps, offset, want_state):
    """The forward op's body: the custom op under torch.compile, called directly in eager mode."""
    plan = _plan(kind, q.shape[-1], m, max_len)
    return _fwd_impl(plan, q, k, v, s0, z0, w, normalize, eps, offset, want_state)


def _bwd_call(do, dsT, dzT, q, k, v, o, o_res, den, s0, z0, w, s_fwd, z_fwd, kind, m, max_len, normalize, offset):
    """The backward op's body (empty ds0/dz0 without an initial state: an op returns tensors)."""
    plan = _plan(kind, q.shape[-1], m, max_len)
    dq, dk, dv, ds0, dz0 = _bwd_impl(
        plan, do, dsT, dzT, q, k, v, o, o_res, den, s0, z0, w, normalize, offset, s_fwd, z_fwd
    )
    if ds0 is None:
        ds0, dz0 = q.new_empty(0, dtype=torch.float32), q.new_empty(0, dtype=torch.float32)
    return dq, dk, dv, ds0, dz0


@torch.library.custom_op("mixerzoo::linear_attention_fwd", mutates_args=())
def _op_fwd(
    q: Tensor, k: Tensor, v: Tensor, s0: Tensor | None, z0: Tensor | None, w: Tensor | None,
    kind: str, m: int, max_len: int, normalize: bool, eps: float, offset: int, want_state: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    return _fwd_call(q, k, v, s0, z0, w, kind, m, max_len, normalize, eps, offset, want_state)


@_op_fwd.register_fake
def _op_fwd_fake(q, k, v, s0, z0, w, kind, m, max_len, normalize, eps, offset, want_state):
    plan = _plan(kind, q.shape[-1], m, max_len)
    B, L, H, _ = q.shape
    dv = v.shape[-1]
    o = v.new_empty(B, L, H, dv)
    o_res = v.new_empty(B, L, H, dv) if normalize and v.dtype != torch.float32 else v.new_empty(0)
    f32 = dict(dtype=torch.float32, device=q.device)
    den = torch.empty(B * H, L, **f32) if normalize else torch.empty(0, **f32)
    sT = torch.empty(B, H, plan.di, dv, **f32) if want_state else torch.empty(0, **f32)
    zT = torch.empty(B, H, plan.di, **f32) if want_state else torch.empty(0, **f32)
    s_all, z_all = torch.empty(0, **f32), torch.empty(0, **f32)
    if SAVE_FWD_STATES and not _use_parallel(plan, L):  # the chunked mode's kept states, as _fwd_impl makes them
        nc = cdiv(L, _chunk_size(plan, L, dv))
        s_dtype = torch.bfloat16 if _fwd_states_bf16(plan, nc, v.dtype) else torch.float32
        s_all = torch.empty(B * H, nc, plan.di, dv, dtype=s_dtype, device=q.device)
        z_all = torch.empty(B * H, nc, plan.di, **f32)
    return o, o_res, den, sT, zT, s_all, z_all


@torch.library.custom_op("mixerzoo::linear_attention_bwd", mutates_args=())
def _op_bwd(
    do: Tensor, dsT: Tensor | None, dzT: Tensor | None, q: Tensor, k: Tensor, v: Tensor, o: Tensor, o_res: Tensor,
    den: Tensor, s0: Tensor | None, z0: Tensor | None, w: Tensor | None, s_fwd: Tensor, z_fwd: Tensor, kind: str,
    m: int, max_len: int, normalize: bool, offset: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    return _bwd_call(do, dsT, dzT, q, k, v, o, o_res, den, s0, z0, w, s_fwd, z_fwd, kind, m, max_len, normalize, offset)


@_op_bwd.register_fake
def _op_bwd_fake(do, dsT, dzT, q, k, v, o, o_res, den, s0, z0, w, s_fwd, z_fwd, kind, m, max_len, normalize, offset):
    f32 = dict(dtype=torch.float32, device=q.device)
    ds0 = torch.empty_like(s0) if s0 is not None else torch.empty(0, **f32)
    dz0 = torch.empty_like(z0) if z0 is not None else torch.empty(0, **f32)
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), ds0, dz0


class _LinearAttention(torch.autograd.Function):
    """Autograd around the forward and backward: the two custom ops under torch.compile (``eager`` False: dynamo
    traces this Function and the ops inside it alike), their bodies called directly in eager mode (``eager``). Not
    ``register_autograd``: torch then runs ``fill_defaults`` over the 13-argument schema on every forward (~170 µs of
    Python on the CPU, `--host-overhead`). Skipping the dispatcher: Taylor at 4096, fwd+bwd with stubbed launches,
    359 → 262 µs on the CPU, 577 → 521 µs on the H200's host, where the call's kernels take 0.9 ms and the host is what
    limits it (notes, "Session 7")."""

    @staticmethod
    def forward(ctx, q, k, v, s0, z0, w, kind, m, max_len, normalize, eps, offset, want_state, eager):
        fwd = _fwd_call if eager else _op_fwd
        out = fwd(q, k, v, s0, z0, w, kind, m, max_len, normalize, eps, offset, want_state)
        o, o_res, den, _, _, s_all, z_all = out
        ctx.save_for_backward(q, k, v, o, o_res, den, s0, z0, w, s_all, z_all)
        ctx.cfg = (kind, m, max_len, normalize, offset, want_state, eager)
        # unused outputs (o_res, den, and the state when not returned) get None, not a zero tensor each (4 memsets)
        ctx.set_materialize_grads(False)
        return out

    @staticmethod
    def backward(ctx, do, _do_res, _dden, dsT, dzT, _ds_all, _dz_all):
        q, k, v, o, o_res, den, s0, z0, w, s_all, z_all = ctx.saved_tensors
        kind, m, max_len, normalize, offset, want_state, eager = ctx.cfg
        if do is None:
            do = torch.zeros_like(o)
        if want_state and (dsT is not None or dzT is not None):
            plan = _plan(kind, q.shape[-1], m, max_len)
            f32 = dict(dtype=torch.float32, device=q.device)
            B, H, dv = q.shape[0], q.shape[2], v.shape[-1]
            dsT = dsT.contiguous() if dsT is not None else torch.zeros(B, H, plan.di, dv, **f32)
            dzT = dzT.contiguous() if dzT is not None else torch.zeros(B, H, plan.di, **f32)
        else:
            dsT = dzT = None
        bwd = _bwd_call if eager else _op_bwd
        dq, dk, dv, ds0, dz0 = bwd(
            do.contiguous(), dsT, dzT, q, k, v, o, o_res, den, s0, z0, w, s_all, z_all, kind, m, max_len, normalize,
            offset,
        )  # fmt: skip
        if s0 is None:
            ds0 = dz0 = None
        return dq, dk, dv, ds0, dz0, None, None, None, None, None, None, None, None, None


@dataclass(frozen=True)
class StepConfig:
    """Launch configuration of the decode step: value columns per program, features per loop step, warps, and
    how z is written when a head's value columns are split over several programs (``_la_step_kernel``)."""

    bv: int  # value columns per program (>= dv: one program per head)
    bf: int  # features per loop iteration (>= D: the whole head tile loaded at once)
    warps: int
    zmode: str = "last"  # "last": the last program of the head (atomic counter) | "sep": a second tiny launch


# Candidate decode configurations; the benchmark's decode section times each (after an oracle check).
STEP_CONFIGS: dict[str, StepConfig] = {
    "head": StepConfig(bv=128, bf=32, warps=4),  # v1: one program per head (Taylor: 71% / 81% of copy at B=64 / 256)
    "v64": StepConfig(bv=64, bf=64, warps=4),
    "v32": StepConfig(bv=32, bf=128, warps=4),
    "v32-all": StepConfig(bv=32, bf=256, warps=4),
    "v32-all-w8": StepConfig(bv=32, bf=256, warps=8),
    "v16-all": StepConfig(bv=16, bf=256, warps=4),
    "v32-sep": StepConfig(bv=32, bf=128, warps=4, zmode="sep"),
    # run 3: sep beat last by up to 11 µs at B=256 (v32-sep 177.7 vs v32 189.0): v32-all with the sep z, unmeasured
    "v32-all-sep": StepConfig(bv=32, bf=256, warps=4, zmode="sep"),
}
FORCE_STEP: StepConfig | None = None  # test/benchmark hook: use this configuration for every step
# Memory order of the per-head arrival counter (``zmode="last"``): "relaxed" (default) or "acq_rel" (its release fence,
# MEMBAR.ALL.GPU before the atomic, waits for the program's state stores to drain; the kernel's comment says why
# relaxed suffices). H200, session 6 (2026-11-29, one call, runs relaxed / acq_rel / relaxed; notes "Session 6:
# decode"), Taylor v32-all, µs per step in a 20-step graph: B=64 44.5 / 46.5 / 44.5 (86% / 82% / 86% of copy),
# B=256 164.9 / 171.4 / 164.9 (93% / 89% / 93%); 31 step GPU tests passed relaxed. Env ``MIXERZOO_LA_STEP_SEM``.
STEP_ATOMIC_SEM: str = os.environ.get("MIXERZOO_LA_STEP_SEM", "relaxed")


# Which candidate serves a step of ``B·H`` heads with D canonical features: the first entry ``(max D, max B·H, name)``
# with D <= max D and B·H <= max B·H. The fastest correct candidate of the H200 run 3 (2026-11-28, H=16, dv=128,
# d′=16, µs per step in a 20-step graph; notes "Run 3 (session 2)"):
# - D <= 64, one program per head: measured at B·H=1024 only. PosELU (D=16) head 8.0 µs vs 8.9 v64, 10.2 v32-all;
#   Performer (D=64) 21.9 vs 22.4 v32-sep, 23.6 v32-all; CosFormer (D=32) 12.5 vs 13.1 v32-sep, 14.2 v32-all. A narrow
#   head's state is read in <= 2 row blocks, so a split only adds φ recomputation and the z hand-off.
# - Taylor (D=153), B·H <= 256: v16-all, 5.1 / 16.0 µs at B·H = 16 / 256 (v32-all 5.2 / 16.3; head 12.8 / 19.3).
# - Taylor, B·H > 256: v32-all, 46.6 µs (82% of copy) at 1024 and 170.2 µs (89%) at 4096 (head 53.3 / 187.2).
#   Session 5 (same run, v32-all 46.2 / 170.4 µs): streaming cache hints on the state (evict_first loads, .cs stores)
#   47.2 / 175.7, programmatic dependent launch (griddepcontrol.wait first) 46.5 / 170.4: neither kept. Session 6:
#   the relaxed arrival counter (``STEP_ATOMIC_SEM``) 44.5 / 164.9 µs (86% / 93%).
STEP_RULE: tuple[tuple[int, int, str], ...] = (
    (64, 1 << 62, "head"),
    (1 << 62, 256, "v16-all"),
    (1 << 62, 1 << 62, "v32-all"),
)


def _step_config(plan: Plan, bh: int, dv: int) -> StepConfig:
    """The decode configuration for ``bh = B·H`` heads (``FORCE_STEP``, else ``STEP_RULE``), clipped to dv and D."""
    d = plan.out_dim
    cfg = FORCE_STEP or STEP_CONFIGS[next(name for max_d, max_bh, name in STEP_RULE if d <= max_d and bh <= max_bh)]
    bv = min(cfg.bv, max(16, next_pow2(dv)))
    bf = min(cfg.bf, max(16, next_pow2(plan.out_dim)))
    return StepConfig(bv=bv, bf=bf, warps=cfg.warps, zmode=cfg.zmode)


@torch.library.custom_op("mixerzoo::linear_attention_step", mutates_args=("kv", "z"))
def _op_step(
    q: Tensor, k: Tensor, v: Tensor, kv: Tensor, z: Tensor, w: Tensor | None, offset_t: Tensor | None,
    kind: str, m: int, max_len: int, normalize: bool, eps: float, offset: int,
) -> Tensor:  # fmt: skip
    plan = _plan(kind, q.shape[-1], m, max_len)
    B, H, dk = q.shape
    dv = v.shape[-1]
    o = _empty((B, H, dv), v.dtype, q.device)
    dev = q.device
    if plan.kind == "taylor":
        ti, tj, ts = _taylor_tables(dk, dev)
    else:
        ti = tj = torch.empty(1, dtype=torch.int32, device=dev)
        ts = _dummy(dev)
    cfg = _step_config(plan, B * H, dv)
    nv = cdiv(dv, cfg.bv)
    zmode = 1 if nv == 1 else (2 if cfg.zmode == "last" else 0)
    count = _launch.arrival_counters("linear_attention_step", dev, B * H) if zmode == 2 else ti
    args = (
        q, k, v, kv, z, o, w if w is not None else _dummy(dev), ti, tj, ts,
        offset_t if offset_t is not None else _dummy(dev), count, H, q.stride(0), k.stride(0), v.stride(0), offset,
        eps, plan.sc1, plan.ang, plan.ms,
    )  # fmt: skip
    statics = dict(
        FM=plan.fm, DK=dk, DV=dv, D=plan.out_dim, BK=plan.bk, BF=cfg.bf, BV=cfg.bv, M=plan.m, NORMALIZE=normalize,
        OFFSET_PTR=offset_t is not None,
    )  # fmt: skip
    _launch.fast(_la_step_kernel)[(nv * B * H,)](
        *args, **statics, ZMODE=zmode, KV=True, NV=nv, SEM=STEP_ATOMIC_SEM, num_warps=cfg.warps
    )
    if zmode == 0:  # z after every program has read it: a second launch that only updates z
        _launch.fast(_la_step_kernel)[(B * H,)](
            *args, **statics, ZMODE=0, KV=False, NV=1, SEM=STEP_ATOMIC_SEM, num_warps=1
        )
    return o


@_op_step.register_fake
def _op_step_fake(q, k, v, kv, z, w, offset_t, kind, m, max_len, normalize, eps, offset):
    return v.new_empty(q.shape[0], q.shape[1], v.shape[-1])


@cache
def _taylor_tables(dk: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Canonical Taylor features as ``X[i]·X[j]·s`` with ``X[−1] = 1``: ``[1, x_i·d′^-¼, triu x_i x_j·scale]``."""
    rows, cols = torch.triu_indices(dk, dk).tolist()
    ti = [-1] + list(range(dk)) + rows
    tj = [-1] + [-1] * dk + cols
    ts = (
        [1.0]
        + [dk**-0.25] * dk
        + [(1.0 / math.sqrt(2 * dk)) if i == j else 1.0 / math.sqrt(dk) for i, j in zip(rows, cols)]
    )
    i32 = dict(dtype=torch.int32, device=device)
    return torch.tensor(ti, **i32), torch.tensor(tj, **i32), torch.tensor(ts, dtype=torch.float32, device=device)


# ----------------------------------------------------------------------------------------------------------------
# the entry points called by mixerzoo.kernels.linear_attention


def linear_attention_triton(
    q: Tensor, k: Tensor, v: Tensor, fm, *, normalize: bool, eps: float, initial_state, output_final_state: bool,
    offset: int,
) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:  # fmt: skip
    """Fused causal linear attention (see module docstring); inputs already validated by the caller.

    Returns ``(o [B, L, H, dv] in v.dtype, (kv [B, H, D, dv], z [B, H, D]) fp32 or None)``.
    """
    plan, proj = _plan_of(fm)
    if isinstance(offset, Tensor):
        raise TypeError("linear_attention (triton): offset must be an int for whole sequences (tensors: decode only)")
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    s0 = z0 = None
    if initial_state is not None:
        s0, z0 = _to_internal(plan, *initial_state)
        s0, z0 = s0.contiguous(), z0.contiguous()
    w = proj.detach().float().contiguous() if proj is not None else None
    args = (q, k, v, s0, z0, w, plan.kind, plan.m, _max_len(fm), normalize, float(eps), int(offset), output_final_state)
    if torch.compiler.is_compiling():
        o, _, _, sT, zT, _, _ = _LinearAttention.apply(*args, False)
    elif torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (q, k, v, s0, z0)):
        o, _, _, sT, zT, _, _ = _LinearAttention.apply(*args, True)
    else:  # nothing to differentiate: the launches alone
        o, _, _, sT, zT, _, _ = _fwd_call(*args)
    state = _to_canonical(plan, sT, zT) if output_final_state else None
    return o, state


def _max_len(fm) -> int:
    return int(getattr(fm, "max_len", 0)) if fm.kernel_id == "cosformer" else 0


def _packed_heads(t: Tensor) -> Tensor:
    """``t [B, H, d]`` as the step kernel reads it: each row's heads side by side (strides ``(any, d, 1)``, as in the
    mixer's slices of its fused q/k/v projection), else a contiguous copy."""
    return t if t.stride(2) == 1 and (t.shape[1] == 1 or t.stride(1) == t.shape[2]) else t.contiguous()


def linear_attention_step_triton(
    q: Tensor, k: Tensor, v: Tensor, state, fm, *, normalize: bool, eps: float, offset: int | Tensor
) -> Tensor:
    """One decode step: updates the canonical fp32 state ``(kv, z)`` in place, returns ``o [B, H, dv]``.

    No host synchronisation (``offset`` may be a 0-dim CUDA tensor), so it can be captured in a CUDA graph.
    """
    plan, proj = _plan_of(fm)
    kv, z = state
    if not (kv.is_contiguous() and z.is_contiguous()):
        raise ValueError("linear_attention_step (triton): the state (kv, z) must be contiguous to be updated in place")
    w = proj.detach().float().contiguous() if proj is not None else None
    offset_t = offset.reshape(()) if isinstance(offset, Tensor) else None
    return _op_step(
        _packed_heads(q), _packed_heads(k), _packed_heads(v), kv, z, w, offset_t, plan.kind, plan.m, _max_len(fm),
        normalize, float(eps), 0 if offset_t is not None else int(offset),
    )  # fmt: skip
