"""Gated short convolution (BaseConv, BASED arXiv 2402.18668 / Zoology): the ``conv3`` layer.

``y = out_proj(silu(causal_dwconv_K(u1) + b) ⊙ u2)`` with ``[u1, u2] = in_proj(x)``, each of
``expand·d_model`` channels (based's 360M/1.3B configs: expand_proj = 4, i.e. expand = 2 here).
The inline number is the kernel size K; generation keeps the last K − 1 values of u1:
(K − 1)·channels elements per sequence.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from mixerzoo.kernels import gated_short_conv, gated_short_conv_step
from mixerzoo.kernels.decode_linear import Linear
from mixerzoo.mixers.base import LayerContext, Mixer, State
from mixerzoo.registry import register_mixer

__all__ = ["GatedConv", "GatedConvConfig"]


@dataclass(frozen=True)
class GatedConvConfig:
    """Options of ``conv``: ``kernel_size`` (inline number), ``expand`` (channels = expand·d_model), ``backend``."""

    kernel_size: int = 3
    expand: int = 2
    backend: Literal["auto", "torch", "triton"] = "auto"


@register_mixer("conv", config=GatedConvConfig, number="kernel_size")
class GatedConv(Mixer):
    """Depthwise causal convolution of kernel K, SiLU, and a multiplicative gate."""

    def __init__(self, config: GatedConvConfig, ctx: LayerContext) -> None:
        super().__init__(ctx)
        if config.kernel_size < 1 or config.expand < 1:
            raise ValueError(f"conv: kernel_size and expand must be >= 1, got {config.kernel_size}, {config.expand}")
        self.config = dataclasses.replace(config)
        self.channels = config.expand * ctx.d_model
        self.in_proj = Linear(ctx.d_model, 2 * self.channels)
        self.conv_weight = nn.Parameter(torch.empty(self.channels, config.kernel_size))  # [C, K]
        self.conv_bias = nn.Parameter(torch.zeros(self.channels))
        nn.init.uniform_(self.conv_weight, -1 / math.sqrt(config.kernel_size), 1 / math.sqrt(config.kernel_size))
        self.out_proj = Linear(self.channels, ctx.d_model)

    def forward(self, x: Tensor, state: State | None = None, return_state: bool = False):
        self._check_input(x, self.ctx.d_model, self.token or "conv")
        u, gate = self.in_proj(x).chunk(2, dim=-1)  # [B, L, C] each
        want_state = return_state or state is not None
        out = gated_short_conv(
            u, gate, self.conv_weight.to(u.dtype), self.conv_bias.to(u.dtype),
            initial_state=None if state is None else state["conv"].to(u.dtype),
            output_final_state=want_state, backend=self.config.backend,
        )  # fmt: skip
        y, final = out if want_state else (out, None)
        y = self.out_proj(y)
        if not want_state:
            return y
        if state is None:
            state = self.init_state(x.shape[0], device=x.device, dtype=final.dtype)
        state["conv"].copy_(final)
        state["position"] += x.shape[1]
        return y, state

    def init_state(self, batch_size, device=None, dtype=None, capacity=None) -> State:
        device, dtype = self._device_dtype(device, dtype)
        k = self.config.kernel_size
        return {
            "conv": torch.zeros(batch_size, k - 1, self.channels, dtype=dtype, device=device),
            "position": self._new_position(device),
        }

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        self._check_step_input(x, self.ctx.d_model, self.token or "conv")
        u, gate = self.in_proj(x).chunk(2, dim=-1)  # [B, C] each
        y = gated_short_conv_step(
            u, gate, state["conv"], self.conv_weight.to(u.dtype), self.conv_bias.to(u.dtype),
            backend=self.config.backend,
        )  # fmt: skip
        state["position"] += 1
        return self.out_proj(y), state
