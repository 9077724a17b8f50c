"""Kernels: each op's public function validates its inputs and dispatches to a backend.

``torch`` is the einsum/SDPA reference that runs anywhere; ``triton`` the fused kernels (CUDA, or
the CPU under ``TRITON_INTERPRET=1``); ``auto`` picks Triton on CUDA and torch elsewhere.
"""

from __future__ import annotations

from mixerzoo.kernels.attention import attention, attention_reference
from mixerzoo.kernels.linear_attention import linear_attention, linear_attention_reference, linear_attention_step
from mixerzoo.kernels.short_conv import gated_short_conv, gated_short_conv_reference, gated_short_conv_step
from mixerzoo.kernels.sliding_window import (
    sliding_window_attention,
    sliding_window_attention_step,
    sliding_window_reference,
)

__all__ = [
    "attention",
    "attention_reference",
    "gated_short_conv",
    "gated_short_conv_reference",
    "gated_short_conv_step",
    "linear_attention",
    "linear_attention_reference",
    "linear_attention_step",
    "sliding_window_attention",
    "sliding_window_attention_step",
    "sliding_window_reference",
]
