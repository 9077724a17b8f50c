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
from torch import Tensor, nn

from mixerzoo.kernels import sliding_window_attention, sliding_window_attention_step
from mixerzoo.mixers.base import LayerContext, Mixer, State
from mixerzoo.mixers.rotary import apply_rotary
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


def attention_heads(ctx: LayerContext, heads: int | None, kv_heads: int | None, name: str) -> tuple[int, int, int]:
    """(heads, kv_heads, head_dim) with clear errors for shapes that do not divide."""
    heads = heads or ctx.n_heads
    kv_heads = kv_heads or heads
    if ctx.d_model % heads:
        raise ValueError(f"{name}: d_model={ctx.d_model} is not divisible by heads={heads}; set [heads=N] to a divisor")
    if heads % kv_heads:
        raise ValueError(f"{name}: heads={heads} is not a multiple of kv_heads={kv_heads}")
    return heads, kv_heads, ctx.d_model // heads


@register_mixer("sw", config=SlidingWindowConfig, number="window")
class SlidingWindowAttention(Mixer):
    """Causal softmax attention over the last W keys (the query's own included), with RoPE."""

    def __init__(self, config: SlidingWindowConfig, ctx: LayerContext) -> None:
        super().__init__(ctx)
        if config.window < 1:
            raise ValueError(f"sw: the window must be >= 1 key, got {config.window}")
        self.heads, self.kv_heads, self.head_dim = attention_heads(ctx, config.heads, config.kv_heads, "sw")
        self.config = dataclasses.replace(config, heads=self.heads, kv_heads=self.kv_heads)
        self.window = config.window
        kv_width = self.kv_heads * self.head_dim
        self.qkv_proj = nn.Linear(ctx.d_model, ctx.d_model + 2 * kv_width, bias=False)
        self.out_proj = nn.Linear(ctx.d_model, ctx.d_model, bias=False)

    def _qkv(self, x: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        lead = x.shape[:-1]
        q, k, v = self.qkv_proj(x).split([self.ctx.d_model, *(2 * [self.kv_heads * self.head_dim])], dim=-1)
        q = q.reshape(*lead, self.heads, self.head_dim)  # [B, (L,) H, hd]
        k = k.reshape(*lead, self.kv_heads, self.head_dim)  # [B, (L,) Hkv, hd]
        v = v.reshape(*lead, self.kv_heads, self.head_dim)
        if self.config.rope:
            q, k = apply_rotary(q, positions), apply_rotary(k, positions)
        return q, k, v

    def forward(self, x: Tensor, state: State | None = None, return_state: bool = False):
        self._check_input(x, self.ctx.d_model, self.token or "sw")
        B, L, _ = x.shape
        start = 0 if state is None else int(state["position"])
        q, k, v = self._qkv(x, torch.arange(start, start + L, device=x.device))
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
        p = self._param_like() if device is None or dtype is None else None
        device = device if device is not None else p.device
        dtype = dtype if dtype is not None else p.dtype
        shape = (batch_size, self.window, self.kv_heads, self.head_dim)
        return {
            "k": torch.zeros(shape, dtype=dtype, device=device),
            "v": torch.zeros(shape, dtype=dtype, device=device),
            "position": self._new_position(batch_size, device),
        }

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        self._check_step_input(x, self.ctx.d_model, self.token or "sw")
        pos = state["position"]
        q, k, v = self._qkv(x, pos)  # [B, H, hd], [B, Hkv, hd]
        o = sliding_window_attention_step(q, k, v, state["k"], state["v"], pos, backend=self.config.backend)
        state["position"] += 1
        return self.out_proj(o.reshape(x.shape[0], -1)), state
