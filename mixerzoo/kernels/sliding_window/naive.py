"""Torch references for causal sliding-window attention: the banded O(L·W) path and the fp64 oracle.

Legend: ``q [B, Lq, H, d]``, ``k [B, Lk, Hkv, d]``, ``v [B, Lk, Hkv, dv]``, window W, query block C.
Queries are aligned to the end of the keys ("bottom-right"): query i sits at absolute position
``p = Lk − Lq + i`` and attends to keys ``max(0, p − W + 1) … p`` — W keys including itself. With
``Lq == Lk`` that is plain causal sliding-window attention; ``Lk > Lq`` continues from a cache.
Grouped keys/values: query head h reads kv head ``h // (H // Hkv)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from opt_einsum import contract
from torch import Tensor


def expand_kv(t: Tensor, heads: int) -> Tensor:
    """``[B, L, Hkv, d] -> [B, L, H, d]`` by repeating each kv head for its group of query heads."""
    groups = heads // t.shape[2]
    return t if groups == 1 else t.repeat_interleave(groups, dim=2)


def band_mask(lq: int, lk: int, window: int, device: torch.device) -> Tensor:
    """``[Lq, Lk]`` bool, True where query i may attend key j (bottom-right aligned band)."""
    pos = torch.arange(lq, device=device).unsqueeze(1) + (lk - lq)  # [Lq, 1]
    j = torch.arange(lk, device=device).unsqueeze(0)  # [1, Lk]
    return (j <= pos) & (j > pos - window)


def sliding_window_reference(q: Tensor, k: Tensor, v: Tensor, window: int, scale: float | None = None) -> Tensor:
    """The fp64 oracle for tests: dense masked softmax attention in einsum (small L only)."""
    H = q.shape[2]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    qd, kd, vd = q.double(), expand_kv(k, H).double(), expand_kv(v, H).double()
    s = contract("blhd,bmhd->bhlm", qd, kd) * scale
    s = s.masked_fill(~band_mask(q.shape[1], k.shape[1], window, q.device), float("-inf"))
    return contract("bhlm,bmhe->blhe", torch.softmax(s, dim=-1), vd)


def sliding_window_torch(q: Tensor, k: Tensor, v: Tensor, window: int, scale: float | None = None) -> Tensor:
    """Banded sliding-window attention: each block of C queries sees only its C + W − 1 keys.

    Memory O(B·H·L·(C + W)); no L×L matrix. Computes in fp32, returns q's dtype.
    """
    B, Lq, H, d = q.shape
    Lk = k.shape[1]
    scale = d**-0.5 if scale is None else scale
    block = max(16, min(window, 128))
    n = math.ceil(Lq / block)
    span = block + window - 1  # keys a block of queries can reach
    kk, vv = expand_kv(k, H).float(), expand_kv(v, H).float()
    # Left-pad the keys so block b's keys start at b·C in the padded index (pad = W − 1 + Lq − Lk... ≥ 0 part).
    lead = window - 1 - (Lk - Lq)  # how many keys are missing before the first query's window
    qpad = n * block - Lq
    if lead >= 0:
        kk = F.pad(kk, (0, 0, 0, 0, lead, qpad))
        vv = F.pad(vv, (0, 0, 0, 0, lead, qpad))
    else:  # more cache than the window needs: drop the keys no query can see
        kk = F.pad(kk[:, -lead:], (0, 0, 0, 0, 0, qpad))
        vv = F.pad(vv[:, -lead:], (0, 0, 0, 0, 0, qpad))
    kb = kk.unfold(1, span, block).permute(0, 2, 1, 4, 3)  # [B, H, N, span, d]
    vb = vv.unfold(1, span, block).permute(0, 2, 1, 4, 3)  # [B, H, N, span, dv]
    qb = F.pad(q.float(), (0, 0, 0, 0, 0, qpad)).reshape(B, n, block, H, d).permute(0, 3, 1, 2, 4)  # [B, H, N, C, d]
    s = (qb @ kb.transpose(-1, -2)) * scale  # [B, H, N, C, span]
    # query c of block b is at padded-key index b·C + c + W − 1; it sees indices (c, c + W − 1] + b·C
    c = torch.arange(block, device=q.device).unsqueeze(1)
    j = torch.arange(span, device=q.device).unsqueeze(0)
    allowed = (j >= c) & (j <= c + window - 1)  # [C, span]
    # keys before the real sequence start are padding: mask them per block
    first_real = max(lead, 0) - torch.arange(n, device=q.device) * block  # padded index of key 0, per block
    real = j.unsqueeze(0) >= first_real.view(n, 1, 1)  # [N, 1, span]
    s = s.masked_fill(~(allowed.unsqueeze(0) & real), float("-inf"))
    o = torch.softmax(s, dim=-1) @ vb  # [B, H, N, C, dv]
    return o.permute(0, 2, 3, 1, 4).reshape(B, n * block, H, -1)[:, :Lq].to(q.dtype)


def sliding_window_step_torch(
    q: Tensor, k: Tensor, v: Tensor, cache_k: Tensor, cache_v: Tensor, position: int | Tensor, scale: float | None
) -> Tensor:
    """One token over a ring buffer of the last W keys/values; writes slot ``position % W`` in place.

    ``q [B, H, d]``, ``k [B, Hkv, d]``, ``v [B, Hkv, dv]``, ``cache_k [B, W, Hkv, d]``,
    ``cache_v [B, W, Hkv, dv]``; ``position`` = tokens seen before this one. Returns ``[B, H, dv]``.
    Slots not yet written (position < W − 1) are masked, so the result never depends on their contents.
    """
    B, W, Hkv, d = cache_k.shape
    H = q.shape[1]
    scale = d**-0.5 if scale is None else scale
    pos = torch.as_tensor(position, device=q.device)
    slot = pos % W
    cache_k.index_copy_(1, slot.reshape(1), k.unsqueeze(1).to(cache_k.dtype))
    cache_v.index_copy_(1, slot.reshape(1), v.unsqueeze(1).to(cache_v.dtype))
    kk = expand_kv(cache_k, H).float()  # [B, W, H, d]
    vv = expand_kv(cache_v, H).float()
    s = torch.einsum("bhd,bwhd->bhw", q.float(), kk) * scale  # [B, H, W]
    valid = torch.arange(W, device=q.device) <= pos  # slots written so far (all of them once pos >= W - 1)
    s = s.masked_fill(~valid, float("-inf"))
    vv = vv.masked_fill(~valid.view(1, W, 1, 1), 0.0)  # 0·garbage must not become NaN
    return torch.einsum("bhw,bwhe->bhe", torch.softmax(s, dim=-1), vv).to(q.dtype)
