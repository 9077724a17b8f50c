"""ReLU feature map, ``relu(x)``: non-negative, D = d′ (zoology's ReLU; the paper's Figure 3)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from mixerzoo.feature_maps.base import FeatureMap
from mixerzoo.registry import register_feature_map


@dataclass(frozen=True)
class ReLUConfig:
    """ReLU has no options beyond d′."""


@register_feature_map("relu", config=ReLUConfig)
class ReLU(FeatureMap):
    """``relu(x)``; D = d′. A query with no positive feature reads nothing (its denominator is eps)."""

    kernel_id = "relu"

    def __init__(self, d_prime: int, config: ReLUConfig | None = None) -> None:
        super().__init__(d_prime)

    @property
    def out_dim(self) -> int:
        return self.d_prime

    def _features(self, x: Tensor, positions: Tensor | None) -> Tensor:
        return x.clamp_min(0)

    def kernel(self, q, k, q_positions=None, k_positions=None) -> Tensor:
        return (q.double().clamp_min(0) * k.double().clamp_min(0)).sum(-1)
