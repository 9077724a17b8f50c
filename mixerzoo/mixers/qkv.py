"""What the softmax-attention mixers (``sw``, ``attn``) share: head arithmetic and the rotary q/k/v projection."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from mixerzoo.kernels.decode_linear import Linear
from mixerzoo.mixers.base import LayerContext, Mixer, State
from mixerzoo.mixers.rotary import rotary_angles, rotary_table, rotate


def attention_heads(ctx: LayerContext, heads: int | None, kv_heads: int | None, name: str) -> tuple[int, int, int]:
    """(heads, kv_heads, head_dim) with clear errors for shapes that do not divide."""
    heads = heads or ctx.n_heads
    kv_heads = kv_heads or heads
    if ctx.d_model % heads:
        raise ValueError(f"{name}: d_model={ctx.d_model} is not divisible by heads={heads}; set [heads=N] to a divisor")
    if heads % kv_heads:
        raise ValueError(f"{name}: heads={heads} is not a multiple of kv_heads={kv_heads}")
    return heads, kv_heads, ctx.d_model // heads


class RotaryQKVMixer(Mixer):
    """A mixer with one fused q/k/v projection (grouped k/v heads) and rotary q/k at absolute positions."""

    def _init_projections(self, heads: int | None, kv_heads: int | None, name: str) -> None:
        self.heads, self.kv_heads, self.head_dim = attention_heads(self.ctx, heads, kv_heads, name)
        d = self.ctx.d_model
        self.qkv_proj = Linear(d, d + 2 * self.kv_heads * self.head_dim, bias=False)
        self.out_proj = Linear(d, d, bias=False)

    def _qkv(self, x: Tensor, positions: Tensor | int, rotate_qk: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """``x [B, (L,) D]`` → q ``[B, (L,) H, hd]``, k and v ``[B, (L,) Hkv, hd]``, rotated if ``config.rope``
        and ``rotate_qk`` (a decode kernel that rotates them itself takes them unrotated).

        ``positions``: the int position of the first of x's L tokens (a forward: angles from the cached table), or a
        0-dim tensor (a decode step: computed, no host sync)."""
        lead = x.shape[:-1]
        kv_width = self.kv_heads * self.head_dim
        qk, v = self.qkv_proj(x).split([self.ctx.d_model + kv_width, kv_width], dim=-1)
        qk = qk.reshape(*lead, self.heads + self.kv_heads, self.head_dim)  # [B, (L,) H + Hkv, hd]: q's heads, then k's
        v = v.reshape(*lead, self.kv_heads, self.head_dim)
        if self.config.rope and rotate_qk:  # q and k in one pass, with one cos/sin of the positions
            if isinstance(positions, int):
                cos, sin = rotary_table(positions, x.shape[1], self.head_dim, x.device)
            else:
                cos, sin = rotary_angles(positions, self.head_dim)
            qk = rotate(qk, cos, sin)
        return qk[..., : self.heads, :], qk[..., self.heads :, :], v

    def snapshot(self, state: State, steps: int) -> Callable[[], None]:
        """A step writes one slot of the keys and values (``position`` modulo their length: the ring of a window,
        or the KV cache, whose position stays below its capacity) and advances the position: ``steps`` steps change
        ``steps`` slots, so only those are saved, not the cache."""
        position = state["position"].clone()
        slots = (position + torch.arange(steps, device=position.device)) % state["k"].shape[1]
        k, v = state["k"].index_select(1, slots), state["v"].index_select(1, slots)

        def restore() -> None:
            state["k"].index_copy_(1, slots, k)
            state["v"].index_copy_(1, slots, v)
            state["position"].copy_(position)

        return restore

    def _kv_state(self, batch_size: int, length: int, device, dtype) -> State:
        """Zeroed keys and values ``[B, length, Hkv, hd]`` (the ring buffer or the KV cache) and the position."""
        device, dtype = self._device_dtype(device, dtype)
        shape = (batch_size, length, self.kv_heads, self.head_dim)
        return {
            "k": torch.zeros(shape, dtype=dtype, device=device),
            "v": torch.zeros(shape, dtype=dtype, device=device),
            "position": self._new_position(device),
        }
