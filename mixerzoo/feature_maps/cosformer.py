"""CosFormer feature map (Qin et al. 2022, arXiv 2202.08791) with a fixed horizon.

``φ(x, i) = [relu(x)·cos(π i/2M), relu(x)·sin(π i/2M)]`` with i the token's absolute position and
M the model's ``max_len``, so ``φ(q_i)·φ(k_j) = relu(q)·relu(k)·cos(π(i−j)/2M)``: a locality
re-weighting that decays from 1 at distance 0 to 0 at distance M. The paper (and zoology) use the
current sequence length for M, which makes streaming and parallel disagree; a fixed M does not.
Positions must stay below M so the weight stays non-negative. D = 2d′.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mixerzoo.feature_maps.base import FeatureMap
from mixerzoo.registry import register_feature_map


@dataclass(frozen=True)
class CosFormerConfig:
    """Option ``max_len``: the horizon M (default: the model's ``max_len``)."""

    max_len: int | None = None


@register_feature_map("cosformer", config=CosFormerConfig)
class CosFormer(FeatureMap):
    """relu features re-weighted by ``cos(π(i−j)/2M)``; D = 2d′; needs absolute positions."""

    kernel_id = "cosformer"
    position_dependent = True
    stateless = False

    def __init__(self, d_prime: int, config: CosFormerConfig | None = None) -> None:
        super().__init__(d_prime)
        config = config or CosFormerConfig()
        if config.max_len is None or config.max_len < 1:
            raise ValueError(
                f"cosformer needs its horizon M >= 1: pass max_len= (inside a model it is the model's max_len), "
                f"got {config.max_len!r}"
            )
        self.max_len = int(config.max_len)

    @property
    def out_dim(self) -> int:
        return 2 * self.d_prime

    def _angle(self, positions: Tensor) -> Tensor:
        positions = self._check_positions(positions)
        if not torch.compiler.is_compiling() and positions.numel() and positions.device.type == "cpu":
            top = int(positions.max())
            if top >= self.max_len:
                raise ValueError(
                    f"cosformer: position {top} is past its horizon max_len={self.max_len}; "
                    "build the model with a larger max_len or set [max_len=N]"
                )
        return positions.double() * (math.pi / (2 * self.max_len))

    def _features(self, x: Tensor, positions: Tensor | None) -> Tensor:
        angle = self._angle(positions).to(x.dtype).unsqueeze(-1)  # [..., 1]
        a = x.clamp_min(0)
        return torch.cat([a * torch.cos(angle), a * torch.sin(angle)], dim=-1)

    def kernel(self, q, k, q_positions=None, k_positions=None) -> Tensor:
        dist = self._check_positions(q_positions).double() - self._check_positions(k_positions).double()
        return (q.double().clamp_min(0) * k.double().clamp_min(0)).sum(-1) * torch.cos(
            dist * math.pi / (2 * self.max_len)
        )

    def extra_repr(self) -> str:
        return f"d_prime={self.d_prime}, max_len={self.max_len}"
