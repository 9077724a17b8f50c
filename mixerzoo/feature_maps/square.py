"""Square feature map, ``φ(x) = x²`` elementwise (zoology's Square): non-negative, D = d′."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from mixerzoo.feature_maps.base import FeatureMap
from mixerzoo.registry import register_feature_map


@dataclass(frozen=True)
class SquareConfig:
    """Square has no options beyond d′."""


@register_feature_map("square", config=SquareConfig)
class Square(FeatureMap):
    """``φ(x) = x²``; D = d′; kernel ``Σ_i q_i² k_i²``."""

    kernel_id = "square"

    def __init__(self, d_prime: int, config: SquareConfig | None = None) -> None:
        super().__init__(d_prime)

    @property
    def out_dim(self) -> int:
        return self.d_prime

    def _features(self, x: Tensor, positions: Tensor | None) -> Tensor:
        return x * x

    def kernel(self, q, k, q_positions=None, k_positions=None) -> Tensor:
        return (q.double() ** 2 * k.double() ** 2).sum(-1)
