"""Performer / FAVOR+ positive random features (Choromanski et al. 2021, arXiv 2009.14794).

``φ(x) = exp(W x̃ − ‖x̃‖²/2)/√m`` with ``x̃ = x/d′^¼`` and W an m×d′ block-orthogonal Gaussian matrix:
each d′×d′ block is the Q of a Gaussian's QR decomposition, its rows rescaled by the norms of fresh
Gaussian rows so every row is marginally N(0, I). Then ``E[φ(q)·φ(k)] = exp(q·k/√d′)``, the softmax
kernel. One draw per layer is shared by q and k (xformers #183: separate draws estimate nothing)
and kept as a persistent buffer, so checkpoints reproduce; ``redraw=N`` draws anew every N training
steps. Computed in fp32: the exponentials overflow bf16/fp16 long before fp32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mixerzoo.feature_maps.base import FeatureMap
from mixerzoo.registry import register_feature_map


@dataclass(frozen=True)
class PerformerConfig:
    """Options: ``m`` random features (default 4·d′); ``redraw`` every N training steps (0 = never)."""

    m: int | None = None
    redraw: int = 0


def block_orthogonal_gaussian(m: int, d: int, generator: torch.Generator | None = None) -> Tensor:
    """An ``[m, d]`` matrix of stacked orthogonal blocks with chi-distributed row norms."""
    n_blocks = math.ceil(m / d)
    q, r = torch.linalg.qr(torch.randn(n_blocks, d, d, generator=generator, dtype=torch.float64))  # batched
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(
        -2
    )  # sign fix: Haar-distributed Q (Mezzadri 2007)
    w = q.transpose(-1, -2).reshape(n_blocks * d, d)[:m]  # [m, d], rows orthonormal within each block
    norms = torch.randn(m, d, generator=generator, dtype=torch.float64).norm(dim=1, keepdim=True)
    return (w * norms).float()


@register_feature_map("performer", config=PerformerConfig)
class Performer(FeatureMap):
    """FAVOR+ positive random features; D = m (default 4·d′); unbiased for ``exp(q·k/√d′)``."""

    kernel_id = "performer"
    stateless = False

    def __init__(self, d_prime: int, config: PerformerConfig | None = None) -> None:
        super().__init__(d_prime)
        config = config or PerformerConfig()
        self.m = config.m if config.m is not None else 4 * d_prime
        if self.m < 1:
            raise ValueError(f"performer: m (number of random features) must be >= 1, got {self.m}")
        if config.redraw < 0:
            raise ValueError(f"performer: redraw must be >= 0 training steps (0 = never), got {config.redraw}")
        self.redraw_every = config.redraw
        self.register_buffer("projection", block_orthogonal_gaussian(self.m, d_prime))  # [m, d′], persistent
        self._steps = 0

    @property
    def out_dim(self) -> int:
        return self.m

    def _apply(self, fn, recurse: bool = True):
        """Keep the random matrix in fp32 when the model is cast (``model.to(torch.bfloat16)``): a bf16-rounded
        draw is no longer block-orthogonal, and the features are computed in fp32 anyway."""
        super()._apply(fn, recurse)
        if self.projection.is_floating_point() and self.projection.dtype != torch.float32:
            self.projection = self.projection.float()
        return self

    @torch.no_grad()
    def redraw_features(self, generator: torch.Generator | None = None) -> None:
        """Draw a new random matrix in place (same device; q and k keep sharing it)."""
        self.projection.copy_(block_orthogonal_gaussian(self.m, self.d_prime, generator))

    def maybe_redraw(self) -> None:
        if self.redraw_every and self.training:
            self._steps += 1
            if self._steps % self.redraw_every == 0:
                self.redraw_features()

    def _features(self, x: Tensor, positions: Tensor | None) -> Tensor:
        x = x / self.d_prime**0.25  # x̃
        proj = x @ self.projection.to(x.dtype).T  # [..., m]
        return torch.exp(proj - 0.5 * (x * x).sum(-1, keepdim=True)) / math.sqrt(self.m)

    def extra_repr(self) -> str:
        return f"d_prime={self.d_prime}, m={self.m}, redraw={self.redraw_every}"
