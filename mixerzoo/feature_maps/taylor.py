"""Second-order Taylor feature map (BASED, arXiv 2402.18668 §4).

``φ(x) = [1, x/d′^¼, (x⊗x)/(√2·√d′)]`` so that ``φ(q)·φ(k) = 1 + s + s²/2`` with ``s = q·k/√d′``, the
Taylor series of ``exp(s)`` to second order. Only the d′(d′+1)/2 distinct second-order terms are
stored: the diagonal ``x_i²/√(2d′)`` and, for i < j, ``x_i·x_j/√d′`` (the off-diagonal pair appears
twice in ``x⊗x``, so its weight is √2 times the diagonal's). D = 1 + d′ + d′(d′+1)/2 (153 at d′=16).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mixerzoo.feature_maps.base import FeatureMap
from mixerzoo.registry import register_feature_map


@dataclass(frozen=True)
class TaylorConfig:
    """Taylor has no options beyond d′."""


@register_feature_map("taylor", config=TaylorConfig)
class Taylor(FeatureMap):
    """Second-order Taylor expansion of ``exp(q·k/√d′)``; D = 1 + d′ + d′(d′+1)/2."""

    kernel_id = "taylor"

    def __init__(self, d_prime: int, config: TaylorConfig | None = None) -> None:
        super().__init__(d_prime)
        rows, cols = torch.triu_indices(d_prime, d_prime)  # i <= j, row-major
        self.register_buffer("_rows", rows, persistent=False)  # integer buffers: model.to(dtype) leaves them be
        self.register_buffer("_cols", cols, persistent=False)

    @property
    def out_dim(self) -> int:
        d = self.d_prime
        return 1 + d + d * (d + 1) // 2

    def _features(self, x: Tensor, positions: Tensor | None) -> Tensor:
        d = self.d_prime
        diag = (self._rows == self._cols).to(x.dtype)
        scale = diag / math.sqrt(2 * d) + (1 - diag) / math.sqrt(d)  # √2 less weight on the diagonal
        second = x[..., self._rows] * x[..., self._cols] * scale  # [..., d′(d′+1)/2]
        first = x / d**0.25  # [..., d′]
        ones = torch.ones_like(x[..., :1])
        return torch.cat([ones, first, second], dim=-1)

    def kernel(self, q, k, q_positions=None, k_positions=None) -> Tensor:
        s = (q.double() * k.double()).sum(-1) / math.sqrt(self.d_prime)
        return 1 + s + s * s / 2
