"""Rotary position embeddings (Su et al. 2021, arXiv 2104.09864), applied by the attention mixers.

The half-split form (GPT-NeoX / Llama): dims ``i`` and ``i + r/2`` rotate together by angle
``p · base^(−2i/r)``, r the rotated width (the even part of the head dim). Angles in fp32 from
absolute positions, so a resumed or stepped sequence sees exactly the angles of one long call.
"""

from __future__ import annotations

import torch
from torch import Tensor


def apply_rotary(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Rotate ``x [B, L, H, hd]`` (or ``[B, H, hd]`` with 0-dim positions) by absolute ``positions [L]``."""
    hd = x.shape[-1]
    r = hd - hd % 2
    if r == 0:
        return x
    half = r // 2
    inv_freq = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) * 2 / r)  # [r/2]
    angle = positions.to(torch.float32).unsqueeze(-1) * inv_freq  # [L, r/2] or [r/2]
    if x.ndim == 4:
        angle = angle.unsqueeze(1)  # [L, 1, r/2], broadcast over heads
    cos, sin = angle.cos(), angle.sin()
    xf = x.float()
    x1, x2, rest = xf[..., :half], xf[..., half:r], xf[..., r:]
    out = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1)
    return out.to(x.dtype)
