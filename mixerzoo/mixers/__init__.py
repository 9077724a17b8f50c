"""Sequence mixers; importing this package registers them (explicit imports: deterministic order)."""

from __future__ import annotations

from mixerzoo.mixers.attention import Attention, AttentionConfig
from mixerzoo.mixers.base import LayerContext, Mixer, State, state_numel
from mixerzoo.mixers.gated_conv import GatedConv, GatedConvConfig
from mixerzoo.mixers.linear_attention import LinearAttention, LinearAttentionConfig
from mixerzoo.mixers.sliding_window import SlidingWindowAttention, SlidingWindowConfig

__all__ = [
    "Attention",
    "AttentionConfig",
    "GatedConv",
    "GatedConvConfig",
    "LayerContext",
    "LinearAttention",
    "LinearAttentionConfig",
    "Mixer",
    "SlidingWindowAttention",
    "SlidingWindowConfig",
    "State",
    "state_numel",
]
