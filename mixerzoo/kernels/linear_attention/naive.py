"""Torch references for causal linear attention: the chunked O(L) path and the fp64 quadratic oracle.

Legend: ``q, k [B, L, H, d′]``, ``v [B, L, H, dv]``, features ``φ [B, L, H, D]``, state
``kv [B, H, D, dv]`` and ``z [B, H, D]`` (fp32), chunk size C, N = ⌈L/C⌉ chunks.

``y_i = (φq_i·(kv0 + Σ_{j≤i} φk_j ⊗ v_j)) / (φq_i·(z0 + Σ_{j≤i} φk_j) + eps)`` (numerator only
when ``normalize=False``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from opt_einsum import contract
from torch import Tensor

CHUNK = 64


def positions_for(length: int, offset: int | Tensor, device: torch.device) -> Tensor:
    """Absolute positions ``[L, 1]`` (broadcast over heads) of a block that starts at ``offset``."""
    return (torch.arange(length, device=device) + offset).unsqueeze(-1)


def linear_attention_chunked(
    phi_q: Tensor, phi_k: Tensor, v: Tensor, normalize: bool, eps: float, kv0: Tensor, z0: Tensor, chunk: int = CHUNK
) -> tuple[Tensor, Tensor, Tensor]:
    """Chunked causal linear attention on precomputed fp32 features; never builds an L×L matrix.

    Memory is O(B·H·L·(C + D) + B·H·N·D·dv): the per-chunk prefix states, not a state per token.
    Returns ``(o [B, L, H, dv] fp32, kv [B, H, D, dv], z [B, H, D])``.
    """
    B, L, H, D = phi_q.shape
    dv = v.shape[-1]
    n = math.ceil(L / chunk)
    pad = n * chunk - L
    if pad:  # zero features add nothing to any sum; padded rows are dropped at the end
        phi_q, phi_k, v = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (phi_q, phi_k, v))
    q = phi_q.reshape(B, n, chunk, H, D).permute(0, 3, 1, 2, 4)  # [B, H, N, C, D]
    k = phi_k.reshape(B, n, chunk, H, D).permute(0, 3, 1, 2, 4)  # [B, H, N, C, D]
    vv = v.reshape(B, n, chunk, H, dv).permute(0, 3, 1, 2, 4)  # [B, H, N, C, dv]

    scores = (q @ k.transpose(-1, -2)).tril()  # [B, H, N, C, C], within-chunk, causal
    num = scores @ vv  # [B, H, N, C, dv]
    kv_chunk = k.transpose(-1, -2) @ vv  # [B, H, N, D, dv]
    kv_before = kv0.unsqueeze(2) + kv_chunk.cumsum(2) - kv_chunk  # state entering each chunk
    num = num + q @ kv_before
    kv = kv0 + kv_chunk.sum(2)
    z_chunk = k.sum(3)  # [B, H, N, D]
    z = z0 + z_chunk.sum(2)
    if normalize:
        z_before = z0.unsqueeze(2) + z_chunk.cumsum(2) - z_chunk  # [B, H, N, D]
        den = scores.sum(-1) + (q * z_before.unsqueeze(3)).sum(-1)  # [B, H, N, C], fp32
        num = num / (den + eps).unsqueeze(-1)
    o = num.permute(0, 2, 3, 1, 4).reshape(B, n * chunk, H, dv)[:, :L]
    return o, kv, z


def linear_attention_step_torch(
    phi_q: Tensor, phi_k: Tensor, v: Tensor, kv: Tensor, z: Tensor, normalize: bool, eps: float
) -> Tensor:
    """One token: updates ``kv [B, H, D, dv]`` and ``z [B, H, D]`` in place, returns ``o [B, H, dv]`` fp32."""
    kv.add_(phi_k.unsqueeze(-1) * v.float().unsqueeze(-2))  # φk ⊗ v
    z.add_(phi_k)
    num = (phi_q.unsqueeze(-1) * kv).sum(-2)  # [B, H, dv]
    if not normalize:
        return num
    den = (phi_q * z).sum(-1, keepdim=True) + eps
    return num / den


def linear_attention_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    feature_map,
    *,
    normalize: bool = True,
    eps: float = 1e-6,
    initial_state: tuple[Tensor, Tensor] | None = None,
    offset: int = 0,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """The fp64 oracle for tests: the full masked L×L score matrix, in einsum (O(L²): small L only).

    Returns ``(o [B, L, H, dv] fp64, (kv, z) fp64)``.
    """
    B, L, H, _ = q.shape
    pos = positions_for(L, offset, q.device)
    phi_q = feature_map(q.double(), pos)  # [B, L, H, D]
    phi_k = feature_map(k.double(), pos)
    vd = v.double()
    D = phi_q.shape[-1]
    if initial_state is None:
        kv0 = torch.zeros(B, H, D, v.shape[-1], dtype=torch.float64, device=q.device)
        z0 = torch.zeros(B, H, D, dtype=torch.float64, device=q.device)
    else:
        kv0, z0 = (s.double() for s in initial_state)
    scores = contract("blhd,bmhd->bhlm", phi_q, phi_k)
    scores = scores * torch.ones(L, L, dtype=torch.bool, device=q.device).tril()
    num = contract("bhlm,bmhe->blhe", scores, vd) + contract("blhd,bhde->blhe", phi_q, kv0)
    kv = kv0 + contract("blhd,blhe->bhde", phi_k, vd)
    z = z0 + phi_k.sum(1)
    if normalize:
        den = scores.sum(-1).transpose(1, 2) + contract("blhd,bhd->blh", phi_q, z0)  # [B, L, H]
        num = num / (den + eps).unsqueeze(-1)
    return num, (kv, z)
