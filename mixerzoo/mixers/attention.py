"""Full causal softmax attention, the baseline ``attn`` layer (no inline number).

SDPA on the torch backend (FlashAttention-2 / cuDNN on CUDA), xformers where installed; rotary
embeddings applied in the mixer. The decode step runs the sliding window's fused Triton kernel on CUDA
(``backend="auto"``) with the window as wide as the cache. Generation keeps a KV cache preallocated to ``capacity`` tokens
(the model's ``max_len`` by default): 2·L·H_kv·head_dim elements per sequence after L tokens.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from mixerzoo.kernels import attention
from mixerzoo.kernels.sliding_window import sliding_window_attention_step
from mixerzoo.kernels.sliding_window.naive import expand_kv
from mixerzoo.mixers.base import LayerContext, State
from mixerzoo.mixers.qkv import RotaryQKVMixer
from mixerzoo.mixers.rotary import rotary_table
from mixerzoo.registry import register_mixer

__all__ = ["Attention", "AttentionConfig"]

# The CUDA decode step turns q and k by RoPE inside the attention kernel (rows of ``rotary_table`` at the position:
# one launch fewer per layer) instead of before it: on the H200 (session 16) Transformer-360M's compiled step went
# 0.675 -> 0.643 ms at batch 1 and 5.97 -> 5.78 ms at batch 128. ``MIXERZOO_ROPE_IN_STEP=0`` turns it off. Its
# positions stay below the KV cache's capacity, which the tables cover.
ROPE_IN_STEP: bool = os.environ.get("MIXERZOO_ROPE_IN_STEP", "1") == "1"


@dataclass(frozen=True)
class AttentionConfig:
    """Options of ``attn``: ``heads``, ``kv_heads`` (grouped), ``rope``, ``backend``, and ``sdpa``: the SDPA kernel
    of the parallel forward (prefill, training) on the torch backend: ``auto`` (torch's choice), ``flash``
    (FlashAttention-2, the BASED paper's baseline), ``cudnn``, ``efficient`` or ``math``. The decode step on CUDA
    runs mixerzoo's own kernel whatever it says."""

    heads: int | None = None
    kv_heads: int | None = None
    rope: bool = True
    backend: Literal["auto", "torch", "xformers"] = "auto"
    sdpa: Literal["auto", "flash", "cudnn", "efficient", "math"] = "auto"


@register_mixer("attn", config=AttentionConfig)
class Attention(RotaryQKVMixer):
    """Causal multi-head softmax attention with RoPE and a preallocated KV cache."""

    def __init__(self, config: AttentionConfig, ctx: LayerContext) -> None:
        super().__init__(ctx)
        if config.sdpa != "auto" and config.backend == "xformers":
            raise ValueError(
                f"attn: sdpa={config.sdpa!r} pins a kernel of the torch backend; drop it or backend=xformers"
            )
        self._init_projections(config.heads, config.kv_heads, "attn")
        self.config = dataclasses.replace(config, heads=self.heads, kv_heads=self.kv_heads)

    def _check_capacity(self, state: State, start: int, n: int) -> None:
        if start + n > state["k"].shape[1]:
            raise ValueError(
                f"attn: the KV cache holds {state['k'].shape[1]} tokens but {start + n} are needed; "
                "allocate it with init_state(..., capacity=N) (or build the model with a larger max_len)"
            )

    def forward(self, x: Tensor, state: State | None = None, return_state: bool = False):
        self._check_input(x, self.ctx.d_model, self.token or "attn")
        B, L, _ = x.shape
        start = 0 if state is None else int(state["position"])
        q, k, v = self._qkv(x, start)
        if state is not None:
            self._check_capacity(state, start, L)
            state["k"][:, start : start + L] = k.to(state["k"].dtype)
            state["v"][:, start : start + L] = v.to(state["v"].dtype)
            k, v = state["k"][:, : start + L].to(q.dtype), state["v"][:, : start + L].to(q.dtype)
        o = attention(q, k, v, backend=self.config.backend, sdpa=self.config.sdpa)  # [B, L, H, hd]
        y = self.out_proj(o.reshape(B, L, -1))
        if state is None and not return_state:
            return y
        if state is None:
            state = self.init_state(B, device=x.device, dtype=k.dtype, capacity=max(L, self.ctx.max_len))
            state["k"][:, :L] = k
            state["v"][:, :L] = v
        state["position"] += L
        return y, state

    def init_state(self, batch_size, device=None, dtype=None, capacity=None) -> State:
        return self._kv_state(batch_size, capacity or self.ctx.max_len, device, dtype)

    def _ring_step_backend(self, device: torch.device) -> str | None:
        """The sliding-window step's backend for this step (``auto`` on CUDA: its fused Triton kernel), or None
        for the SDPA step (the CPU, and explicit ``torch`` / ``xformers``)."""
        return "auto" if self.config.backend == "auto" and device.type == "cuda" else None

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """One token, without host synchronization (CUDA-graph capturable).

        The new key/value goes to slot ``position`` of the preallocated cache (``position`` must stay
        below its capacity: ``generate`` sizes it to prompt + new tokens). With ``backend="auto"`` on CUDA
        the fused Triton decode kernel of the sliding window reads the cache once: a cache of C slots that
        never wraps is a ring buffer of window C, and window C over positions < C is full causal attention.
        Otherwise SDPA attends over the whole cache with the unwritten slots masked.
        """
        self._check_step_input(x, self.ctx.d_model, self.token or "attn")
        pos = state["position"]
        ring = self._ring_step_backend(x.device)
        rope = None
        if ring is not None and ROPE_IN_STEP and self.config.rope:  # the kernel turns q and k
            rope = rotary_table(0, state["k"].shape[1], self.head_dim, x.device)
        q, k, v = self._qkv(x, pos, rotate_qk=rope is None)  # [B, H, hd], [B, Hkv, hd]
        if ring is not None:
            # early reads: the projections (and RoPE) run between two steps of this layer
            o = sliding_window_attention_step(
                q, k, v, state["k"], state["v"], pos, backend=ring, early_reads=True, rope=rope
            )
            state["position"] += 1
            return self.out_proj(o.reshape(x.shape[0], -1)), state
        slot = pos.reshape(1)
        state["k"].index_copy_(1, slot, k.unsqueeze(1).to(state["k"].dtype))
        state["v"].index_copy_(1, slot, v.unsqueeze(1).to(state["v"].dtype))
        capacity = state["k"].shape[1]
        valid = torch.arange(capacity, device=x.device) <= pos  # [capacity]
        kk = expand_kv(state["k"], self.heads).to(q.dtype).transpose(1, 2)  # [B, H, capacity, hd]
        vv = expand_kv(state["v"], self.heads).to(q.dtype).transpose(1, 2)
        vv = vv.masked_fill(~valid.view(1, 1, -1, 1), 0.0)  # never read what was not written
        o = F.scaled_dot_product_attention(q.unsqueeze(2), kk, vv, attn_mask=valid.view(1, 1, 1, -1))  # [B, H, 1, hd]
        state["position"] += 1
        return self.out_proj(o.reshape(x.shape[0], -1)), state
