"""Causal linear attention with a pluggable feature map: the ``taylor16``, ``poselu16``, ... layers.

BASED's linear-attention layer (arXiv 2402.18668 §4): q and k are projected to d′ per head (the
inline number: it sets the state size without changing the value width), v to dv = d_model/heads,
and ``y_i = Σ_{j≤i} (φq_i·φk_j) v_j / (Σ_{j≤i} φq_i·φk_j + eps)``. State per sequence:
``kv [H, D, dv]`` and ``z [H, D]`` in fp32, D = ``feature_map.out_dim`` — H·D·dv + H·D elements.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from mixerzoo.feature_maps import FeatureMap
from mixerzoo.kernels import linear_attention, linear_attention_step
from mixerzoo.kernels.decode_linear import Linear
from mixerzoo.mixers.base import LayerContext, Mixer, State

__all__ = ["LinearAttention", "LinearAttentionConfig"]


@dataclass(frozen=True)
class LinearAttentionConfig:
    """Options of every feature-map layer token (``taylor16[heads=4,eps=1e-5]``).

    Attributes:
        d_prime: d′, the per-head q/k width fed to the feature map (the inline number).
        heads: number of heads (default: the build's ``n_heads``); dv = d_model / heads.
        eps: added to the denominator.
        normalize: divide by the denominator (default: whenever the feature map is non-negative).
        backend: ``auto`` (Triton on CUDA), ``torch`` or ``triton``.
    """

    d_prime: int = 16
    heads: int | None = None
    eps: float = 1e-6
    normalize: bool | None = None
    backend: Literal["auto", "torch", "triton"] = "auto"


class LinearAttention(Mixer):
    """Causal linear attention ``φ(Q)·(Σ φ(K)ᵀV)`` with a registered feature map."""

    def __init__(self, config: LinearAttentionConfig, ctx: LayerContext, feature_map: FeatureMap) -> None:
        super().__init__(ctx)
        heads = config.heads or ctx.n_heads
        if ctx.d_model % heads:
            raise ValueError(
                f"linear attention: d_model={ctx.d_model} is not divisible by heads={heads}; "
                f"choose heads that divide d_model (option [heads=N]) or another d_model"
            )
        normalize = feature_map.nonnegative if config.normalize is None else config.normalize
        if normalize and not feature_map.nonnegative:
            raise ValueError(
                f"linear attention: feature map {feature_map.registry_name!r} can be negative, so it cannot feed "
                "the normalized form; use [normalize=false]"
            )
        self.config = dataclasses.replace(config, heads=heads, normalize=normalize)
        self.heads, self.d_prime, self.head_dim = heads, config.d_prime, ctx.d_model // heads
        self.feature_map = feature_map
        # q, k and v in one projection (one launch instead of three in a decode step): rows [q; k; v] of H·d′, H·d′
        # and d_model; the kernels read its column slices without copying
        self.qkv_proj = Linear(ctx.d_model, 2 * heads * config.d_prime + ctx.d_model, bias=False)
        self.out_proj = Linear(ctx.d_model, ctx.d_model, bias=False)

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        qk_width = self.heads * self.d_prime
        q, k, v = self.qkv_proj(x).split([qk_width, qk_width, self.ctx.d_model], dim=-1)
        q = q.unflatten(-1, (self.heads, self.d_prime))  # [B, (L,) H, d′]
        k = k.unflatten(-1, (self.heads, self.d_prime))
        v = v.unflatten(-1, (self.heads, self.head_dim))  # [B, (L,) H, dv]
        return q, k, v

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """Checkpoints from before the fused projection (separate ``q_proj``, ``k_proj``, ``v_proj``) load too."""
        old = [f"{prefix}{name}_proj.weight" for name in "qkv"]
        if all(key in state_dict for key in old):
            state_dict[f"{prefix}qkv_proj.weight"] = torch.cat([state_dict.pop(key) for key in old])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor, state: State | None = None, return_state: bool = False):
        self._check_input(x, self.ctx.d_model, self.token or "linear attention")
        if self.training:
            self.feature_map.maybe_redraw()
        q, k, v = self._qkv(x)
        cfg = self.config
        initial = None if state is None else (state["kv"], state["z"])
        # only position-dependent maps read the offset; reading it costs a host sync (prefill only, never a step)
        offset = int(state["position"]) if state is not None and self.feature_map.position_dependent else 0
        want_state = return_state or state is not None
        out = linear_attention(
            q, k, v, self.feature_map, normalize=cfg.normalize, eps=cfg.eps, initial_state=initial,
            output_final_state=want_state, offset=offset, backend=cfg.backend,
        )  # fmt: skip
        o, new = out if want_state else (out, None)
        y = self.out_proj(o.reshape(*x.shape[:-1], -1))  # [B, L, D]
        if not want_state:
            return y
        if state is None:
            state = {"kv": new[0], "z": new[1], "position": torch.tensor(x.shape[1], device=x.device)}
        else:  # continue in place, so preallocated (CUDA-graph) buffers stay valid
            state["kv"].copy_(new[0])
            state["z"].copy_(new[1])
            state["position"] += x.shape[1]
        return y, state

    def init_state(self, batch_size, device=None, dtype=None, capacity=None) -> State:
        device, _ = self._device_dtype(device, None)  # the state is fp32 whatever the model's dtype
        D = self.feature_map.out_dim
        return {
            "kv": torch.zeros(batch_size, self.heads, D, self.head_dim, dtype=torch.float32, device=device),
            "z": torch.zeros(batch_size, self.heads, D, dtype=torch.float32, device=device),
            "position": self._new_position(device),
        }

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        self._check_step_input(x, self.ctx.d_model, self.token or "linear attention")
        q, k, v = self._qkv(x)  # [B, H, ·]
        cfg = self.config
        o, _ = linear_attention_step(
            q, k, v, (state["kv"], state["z"]), self.feature_map, normalize=cfg.normalize, eps=cfg.eps,
            offset=state["position"], backend=cfg.backend,
        )  # fmt: skip
        state["position"] += 1
        return self.out_proj(o.reshape(x.shape[0], -1)), state
