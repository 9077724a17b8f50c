"""The feature-map interface shared by the torch reference and the Triton kernels.

A feature map ``phi`` takes one head's query or key of width d′ to D = ``out_dim`` features. Linear
attention then computes ``y_i = Σ_{j≤i} (φq_i·φk_j) v_j / (Σ_{j≤i} φq_i·φk_j + eps)``.

Feature maps compute in fp32 whatever the input dtype: Taylor's squares and Performer's exponentials
overflow or lose all precision in bf16/fp16 (xformers' FAVOR notes; fla's normalizer-in-bf16 bug).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

__all__ = ["FeatureMap"]


class FeatureMap(nn.Module):
    """Base class: ``forward(x [..., d′], positions=None) -> [..., D]`` in fp32.

    Subclasses set the class attributes below and implement ``_features``; those with a closed-form
    kernel implement ``kernel``. ``kernel_id`` names the Triton device function that computes the
    same map inside the fused kernels (see ``mixerzoo/kernels/linear_attention``).
    """

    registry_name: ClassVar[str]
    kernel_id: ClassVar[str]  # the map's name in the fused kernels
    # φ(q)·φ(k) >= 0 for every q, k, so the normalized form's denominator is positive (Taylor's
    # features can be negative, but 1 + s + s²/2 >= 1/2; elementwise maps need every feature >= 0)
    nonnegative: ClassVar[bool] = True
    position_dependent: ClassVar[bool] = False  # needs absolute positions (CosFormer)

    def __init__(self, d_prime: int) -> None:
        super().__init__()
        if not isinstance(d_prime, int) or d_prime < 1:
            raise ValueError(f"{type(self).__name__}: d_prime must be a positive int, got {d_prime!r}")
        self.d_prime = d_prime

    @property
    def out_dim(self) -> int:
        """D, the number of features per head (the width of the stored state)."""
        raise NotImplementedError

    def forward(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        """Features of ``x [..., d′]`` as fp32 ``[..., D]``.

        ``positions`` (int64, broadcastable to ``x.shape[:-1]``) are the absolute token positions;
        only position-dependent maps read them, and they require them.
        """
        if x.shape[-1] != self.d_prime:
            raise ValueError(
                f"{type(self).__name__} expects inputs whose last dim is d′={self.d_prime}, got shape {tuple(x.shape)}"
            )
        if self.position_dependent and positions is None:
            raise ValueError(f"{type(self).__name__} depends on absolute positions: pass positions=")
        # fp32 compute (fp64 stays fp64, for the references)
        return self._features(x if x.dtype == torch.float64 else x.float(), positions)

    def _features(self, x: Tensor, positions: Tensor | None) -> Tensor:
        raise NotImplementedError

    def kernel(
        self, q: Tensor, k: Tensor, q_positions: Tensor | None = None, k_positions: Tensor | None = None
    ) -> Tensor | None:
        """The closed form of ``φ(q)·φ(k)`` for broadcastable ``q, k [..., d′]``, or None if there is none."""
        return None

    stateless: ClassVar[bool] = True  # no random draws or context: a name is enough to recreate it

    def maybe_redraw(self) -> None:
        """Hook called once per training forward; random-feature maps redraw on their schedule."""

    def extra_repr(self) -> str:
        return f"d_prime={self.d_prime}, out_dim={self.out_dim}"

    @staticmethod
    def _check_positions(positions: Tensor | None) -> Tensor:
        assert positions is not None  # forward() already raised a clear error
        return positions if isinstance(positions, Tensor) else torch.as_tensor(positions)
