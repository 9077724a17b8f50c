"""The residual block around every mixer, and the stack of blocks.

Block (pre-norm, as in BASED and zoology's TransformerBlock): ``x + mixer(norm(x))`` then
``x + mlp(norm(x))``; ``mlp="none"`` drops the second half (the MQAR models of the paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixerzoo.kernels.decode_linear import Linear
from mixerzoo.mixers.base import Mixer, State

__all__ = ["MLP", "Block", "RMSNorm", "Stack"]


class RMSNorm(nn.Module):
    """``x / rms(x) · weight``, computed in fp32 (Zhang & Sennrich 2019)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        return (xf * (xf.pow(2).mean(-1, keepdim=True) + self.eps).rsqrt()).to(x.dtype) * self.weight.to(x.dtype)


class MLP(nn.Module):
    """``swiglu`` (hidden 8/3·d rounded to 64, as Llama) or ``gelu`` (hidden 4·d)."""

    def __init__(self, d_model: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        if kind == "swiglu":
            hidden = 64 * ((8 * d_model // 3 + 63) // 64)
            self.up = Linear(d_model, 2 * hidden, bias=False)
            self.down = Linear(hidden, d_model, bias=False)
        elif kind == "gelu":
            self.up = Linear(d_model, 4 * d_model)
            self.down = Linear(4 * d_model, d_model)
        else:
            raise ValueError(f"unknown mlp kind {kind!r}; choose 'swiglu', 'gelu' or 'none'")

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "swiglu":
            a, b = self.up(x).chunk(2, dim=-1)
            return self.down(F.silu(a) * b)
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """Pre-norm residual block: ``x + mixer(norm(x))``, then ``x + mlp(norm(x))`` unless ``mlp="none"``."""

    def __init__(self, mixer: Mixer, d_model: int, mlp: str) -> None:
        super().__init__()
        self.norm1 = RMSNorm(d_model)
        self.mixer = mixer
        self.mlp_kind = mlp
        if mlp != "none":
            self.norm2 = RMSNorm(d_model)
            self.mlp = MLP(d_model, mlp)

    def forward(self, x: Tensor, state: State | None = None, return_state: bool = False):
        want_state = return_state or state is not None
        out = self.mixer(self.norm1(x), state, return_state=want_state)
        h, state = out if want_state else (out, None)
        x = x + h
        if self.mlp_kind != "none":
            x = x + self.mlp(self.norm2(x))
        return (x, state) if want_state else x

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        h, state = self.mixer.step(self.norm1(x), state)
        x = x + h
        if self.mlp_kind != "none":
            x = x + self.mlp(self.norm2(x))
        return x, state


class Stack(nn.Module):
    """The blocks of a spec, ``[B, L, D] -> [B, L, D]``; what ``build`` returns without a vocabulary."""

    def __init__(self, blocks: list[Block], spec: str, d_model: int, layer_configs: list[dict]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.spec = spec
        self.d_model = d_model
        self.layer_configs = layer_configs

    def forward(self, x: Tensor, states: list[State] | None = None, return_state: bool = False):
        want_state = return_state or states is not None
        new_states = []
        for i, block in enumerate(self.blocks):
            if want_state:
                x, s = block(x, None if states is None else states[i], return_state=True)
                new_states.append(s)
            else:
                x = block(x)
        return (x, new_states) if want_state else x

    def init_state(self, batch_size: int, device=None, dtype=None, capacity: int | None = None) -> list[State]:
        return [b.mixer.init_state(batch_size, device=device, dtype=dtype, capacity=capacity) for b in self.blocks]

    def step(self, x: Tensor, states: list[State]) -> tuple[Tensor, list[State]]:
        for block, state in zip(self.blocks, states):
            x, _ = block.step(x, state)
        return x, states

    def state_size(self, seq_len: int) -> int:
        """Recurrent-state elements per sequence after ``seq_len`` tokens, summed over layers."""
        return sum(b.mixer.state_size(seq_len) for b in self.blocks)
