"""Torch references for the gated short convolution: ``y = silu(causal_dwconv_K(u) + bias) ⊙ gate``.

Legend: ``u, gate [B, L, C]``, ``weight [C, K]`` (tap K−1 multiplies the current token), state
``[B, K−1, C]``: the last K−1 inputs, oldest first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from opt_einsum import contract
from torch import Tensor


def _with_history(u: Tensor, initial_state: Tensor | None, k: int) -> Tensor:
    """``[B, K−1+L, C]``: the K−1 previous inputs (zeros at the start) followed by u."""
    if initial_state is None:
        return F.pad(u, (0, 0, k - 1, 0))
    return torch.cat([initial_state.to(u.dtype), u], dim=1)


def gated_short_conv_torch(
    u: Tensor, gate: Tensor, weight: Tensor, bias: Tensor | None, initial_state: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Causal depthwise conv + SiLU + gate through ``F.conv1d``, computed in fp32.

    Returns ``(y [B, L, C] in u's dtype, final state [B, K−1, C] in u's dtype)``.
    """
    C, K = weight.shape
    x = _with_history(u.float(), initial_state, K)  # [B, K−1+L, C]
    conv = F.conv1d(
        x.transpose(1, 2), weight.float().unsqueeze(1), bias.float() if bias is not None else None, groups=C
    )
    y = F.silu(conv.transpose(1, 2)) * gate.float()  # [B, L, C]
    return y.to(u.dtype), x[:, x.shape[1] - (K - 1) :].to(u.dtype)


def gated_short_conv_reference(
    u: Tensor, gate: Tensor, weight: Tensor, bias: Tensor | None = None, initial_state: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The fp64 oracle for tests: the convolution written as an einsum over the K shifted copies."""
    B, L, C = u.shape
    K = weight.shape[1]
    x = _with_history(u.double(), None if initial_state is None else initial_state.double(), K)
    windows = torch.stack([x[:, t : t + L] for t in range(K)], dim=-1)  # [B, L, C, K]
    conv = contract("blck,ck->blc", windows, weight.double())
    if bias is not None:
        conv = conv + bias.double()
    return F.silu(conv) * gate.double(), x[:, L:]


def gated_short_conv_step_torch(u: Tensor, gate: Tensor, state: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """One token: ``u, gate [B, C]``; ``state [B, K−1, C]`` is shifted and updated in place."""
    K = weight.shape[1]
    window = torch.cat([state.float(), u.float().unsqueeze(1)], dim=1)  # [B, K, C]
    conv = (window * weight.float().T.unsqueeze(0)).sum(1)  # [B, C]
    if bias is not None:
        conv = conv + bias.float()
    if K > 1:
        state.copy_(window[:, 1:].to(state.dtype))
    return (F.silu(conv) * gate.float()).to(u.dtype)
