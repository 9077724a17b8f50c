"""Causal sliding-window softmax attention: the ``sw64`` layer.

The inline number W is the number of keys each query attends to, **including itself**: position i
sees i − W + 1 … i (FlashAttention's ``window_size=(W − 1, 0)``; based's configs pass ``W//2`` to
flash-attn, zoology's mask keeps W + 1 keys — neither is this). Rotary embeddings are applied here,
in the mixer, at absolute positions. Generation keeps a ring buffer of the last W keys and values:
2·W·H_kv·head_dim elements per sequence, whatever the length.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from mixerzoo.kernels import sliding_window_attention, sliding_window_attention_step
from mixerzoo.mixers.base import LayerContext, State
from mixerzoo.mixers.qkv import RotaryQKVMixer
from mixerzoo.registry import register_mixer

__all__ = ["SlidingWindowAttention", "SlidingWindowConfig"]


@dataclass(frozen=True)
class SlidingWindowConfig:
    """Options of ``sw``: ``window`` (inline number), ``heads``, ``kv_heads`` (grouped), ``rope``, ``backend``."""

    window: int = 64
    heads: int | None = None
    kv_heads: int | None = None
    rope: bool = True
    backend: Literal["auto", "torch", "triton", "xformers"] = "auto"


@register_mixer("sw", config=SlidingWindowConfig, number="window")
class SlidingWindowAttention(RotaryQKVMixer):
    """Causal softmax attention over the last W keys (the query's own included), with RoPE."""

    def __init__(self, config: SlidingWindowConfig, ctx: LayerContext) -> None:
        super().__init__(ctx)
        if config.window < 1:
            raise ValueError(f"sw: the window must be >= 1 key, got {config.window}")
        self._init_projections(config.heads, config.kv_heads, "sw")
        self.config = dataclasses.replace(config, heads=self.heads, kv_heads=self.kv_heads)
        self.window = config.window

    def forward(self, x: Tensor, state: State | None = None, return_state: bool = False):
        self._check_input(x, self.ctx.d_model, self.token or "sw")
        B, L, _ = x.shape
        start = 0 if state is None else int(state["position"])
        q, k, v = self._qkv(x, start)
        keys, values = k, v
        if state is not None and start > 0:  # prepend the cached keys the first queries still see
            past = torch.arange(max(0, start - self.window + 1), start, device=x.device) % self.window
            keys = torch.cat([state["k"][:, past].to(k.dtype), k], dim=1)
            values = torch.cat([state["v"][:, past].to(v.dtype), v], dim=1)
        o = sliding_window_attention(q, keys, values, self.window, backend=self.config.backend)  # [B, L, H, hd]
        y = self.out_proj(o.reshape(B, L, -1))
        if not (return_state or state is not None):
            return y
        if state is None:
            state = self.init_state(B, device=x.device, dtype=k.dtype)
        keep = min(L, self.window)  # only the last W tokens survive in the ring
        slots = torch.arange(start + L - keep, start + L, device=x.device) % self.window
        state["k"][:, slots] = k[:, L - keep :].to(state["k"].dtype)
        state["v"][:, slots] = v[:, L - keep :].to(state["v"].dtype)
        state["position"] += L
        return y, state

    def init_state(self, batch_size, device=None, dtype=None, capacity=None) -> State:
        return self._kv_state(batch_size, self.window, device, dtype)

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        self._check_step_input(x, self.ctx.d_model, self.token or "sw")
        pos = state["position"]
        q, k, v = self._qkv(x, pos)  # [B, H, hd], [B, Hkv, hd]
        o = sliding_window_attention_step(  # early reads: the projections run between two steps of this layer
            q, k, v, state["k"], state["v"], pos, backend=self.config.backend, early_reads=True
        )
        state["position"] += 1
        return self.out_proj(o.reshape(x.shape[0], -1)), state
