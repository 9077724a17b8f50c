"""Identity feature map, ``φ(x) = x``: plain (unnormalized) linear attention, D = d′.

Its features can be negative, so it cannot feed the normalized form; the mixer turns the
normalizer off for it by default.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from mixerzoo.feature_maps.base import FeatureMap
from mixerzoo.registry import register_feature_map


@dataclass(frozen=True)
class IdentityConfig:
    """Identity has no options beyond d′."""


@register_feature_map("identity", config=IdentityConfig)
class Identity(FeatureMap):
    """``φ(x) = x``; D = d′; kernel ``q·k``. Not non-negative: use with ``normalize=False``."""

    kernel_id = "identity"
    nonnegative = False

    def __init__(self, d_prime: int, config: IdentityConfig | None = None) -> None:
        super().__init__(d_prime)

    @property
    def out_dim(self) -> int:
        return self.d_prime

    def _features(self, x: Tensor, positions: Tensor | None) -> Tensor:
        return x

    def kernel(self, q, k, q_positions=None, k_positions=None) -> Tensor:
        return (q.double() * k.double()).sum(-1)
