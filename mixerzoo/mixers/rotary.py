"""Rotary position embeddings (Su et al. 2021, arXiv 2104.09864), applied by the attention mixers.

The half-split form (GPT-NeoX / Llama): dims ``i`` and ``i + r/2`` rotate together by angle
``p · base^(−2i/r)``, r the rotated width (the even part of the head dim). Angles in fp32 from
absolute positions, so a resumed or stepped sequence sees exactly the angles of one long call.

``rotary_angles`` computes cos and sin once per forward; ``rotate`` applies them to any number of heads, so
the mixers rotate q and k together (one pass over ``[B, L, H + Hkv, hd]``) instead of once each.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["apply_rotary", "rotary_angles", "rotate"]


def rotary_angles(positions: Tensor, head_dim: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """fp32 ``cos, sin`` of the angles: ``[L, 1, r/2]`` for ``positions [L]`` (broadcast over heads), ``[r/2]``
    for 0-dim positions (one decode step)."""
    r = head_dim - head_dim % 2
    inv_freq = base ** (torch.arange(0, r, 2, device=positions.device, dtype=torch.float32) / -r)  # [r/2]
    angle = positions.to(torch.float32).unsqueeze(-1) * inv_freq  # [L, r/2] or [r/2]
    if positions.ndim == 1:
        angle = angle.unsqueeze(1)  # [L, 1, r/2]
    return angle.cos(), angle.sin()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x [B, L, H, hd]`` (or ``[B, H, hd]``) by ``rotary_angles``; fp32 arithmetic, result in x's dtype.

    Writes both halves into one preallocated output (no ``torch.cat``): ``x1·cos − x2·sin``, ``x2·cos + x1·sin``.
    """
    half = cos.shape[-1]
    r = 2 * half
    if r == 0:
        return x
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    xf = x[..., :r].float()
    x1, x2 = xf[..., :half], xf[..., half:]
    out[..., :half] = x1 * cos - x2 * sin
    out[..., half:r] = x2 * cos + x1 * sin
    if r < x.shape[-1]:
        out[..., r:] = x[..., r:]  # an odd head dim: the last dim is not rotated
    return out


def apply_rotary(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Rotate ``x [B, L, H, hd]`` (or ``[B, H, hd]`` with 0-dim positions) by absolute ``positions [L]``."""
    return rotate(x, *rotary_angles(positions, x.shape[-1], base))
