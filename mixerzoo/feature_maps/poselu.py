"""PosELU feature map, ``elu(x) + 1`` (Katharopoulos et al. 2020, arXiv 2006.16236): positive, D = d′."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from mixerzoo.feature_maps.base import FeatureMap
from mixerzoo.registry import register_feature_map


@dataclass(frozen=True)
class PosELUConfig:
    """PosELU has no options beyond d′."""


@register_feature_map("poselu", config=PosELUConfig)
class PosELU(FeatureMap):
    """``elu(x) + 1``, the linear transformer's map; D = d′."""

    kernel_id = "poselu"

    def __init__(self, d_prime: int, config: PosELUConfig | None = None) -> None:
        super().__init__(d_prime)

    @property
    def out_dim(self) -> int:
        return self.d_prime

    def _features(self, x: Tensor, positions: Tensor | None) -> Tensor:
        return F.elu(x) + 1
