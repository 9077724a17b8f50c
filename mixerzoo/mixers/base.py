"""The mixer contract every registered sequence mixer follows.

- ``forward(x, state=None, return_state=False)``: the whole sequence ``[B, L, D] -> [B, L, D]``;
  given a state it continues from it (split anywhere and resume ≡ one call); with
  ``return_state`` it also returns the state to continue from (prefill).
- ``init_state(batch_size, device, dtype, capacity=None)``, then ``step(x_t, state) -> (y_t, state)``
  for one token ``[B, D]``; states are dicts of tensors updated in place, so a decode step can be
  captured in a CUDA graph. The key ``"position"`` (int64, 0-dim) counts the tokens seen.
  ``forward`` also takes a state whose position is a Python int (``LanguageModel.prefill`` passes 0 with
  its fresh states): the start is then known without reading a tensor on the host, so a compiled
  prefill traces in one graph.
- ``state_size(seq_len)``: elements of recurrent state per sequence after ``seq_len`` tokens,
  counted from the tensors ``init_state`` really allocates (never a formula written by hand).
- ``snapshot(state, steps)``: saves what the next ``steps`` decode steps will change in ``state`` and returns the
  function that puts it back (a CUDA-graph capture warms up on the real state, then restores it). The default
  copies every tensor; a mixer that writes only part of its state per step saves only that part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["LayerContext", "Mixer", "State", "state_numel"]

State = dict[str, Tensor]


@dataclass(frozen=True)
class LayerContext:
    """What a layer learns from the model it is built into (not spec options)."""

    d_model: int
    n_heads: int
    max_len: int
    layer_idx: int = 0
    n_layers: int = 1


def state_numel(state: State) -> int:
    """Elements of recurrent state: every tensor but the position counter."""
    return sum(t.numel() for key, t in state.items() if key != "position")


class Mixer(nn.Module):
    """Base class of sequence mixers; see the module docstring for the contract."""

    registry_name: str
    token: str = ""  # the canonical layer token, e.g. "sw64[heads=4]", set by the builder

    def __init__(self, ctx: LayerContext) -> None:
        super().__init__()
        self.ctx = ctx

    def forward(self, x: Tensor, state: State | None = None, return_state: bool = False):
        raise NotImplementedError

    def init_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
        capacity: int | None = None,
    ) -> State:  # fmt: skip
        raise NotImplementedError

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        raise NotImplementedError

    def state_size(self, seq_len: int) -> int:
        """Recurrent-state elements per sequence after ``seq_len`` tokens (from the real allocation)."""
        return state_numel(self.init_state(1, device="meta", capacity=seq_len))

    def snapshot(self, state: State, steps: int) -> Callable[[], None]:
        """Save what ``steps`` calls of ``step`` will change in ``state``; the returned function puts it back, in
        place (device copies in stream order, no host synchronization). Here: a copy of every tensor."""
        saved = {key: t.clone() for key, t in state.items()}

        def restore() -> None:
            for key, t in saved.items():
                state[key].copy_(t)

        return restore

    def _device_dtype(self, device, dtype) -> tuple[torch.device, torch.dtype]:
        """The state's device and dtype: as given, else those of the mixer's parameters."""
        p = next(self.parameters())
        return (p.device if device is None else torch.device(device)), (p.dtype if dtype is None else dtype)

    @staticmethod
    def _new_position(device) -> Tensor:
        """The token counter every state carries (int64, 0-dim, updated in place)."""
        return torch.zeros((), dtype=torch.long, device=device)

    @staticmethod
    def _check_input(x: Tensor, d_model: int, name: str) -> None:
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != d_model:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name}.forward expects x [B, L, {d_model}], got {got}")
        if x.shape[1] < 1:
            raise ValueError(f"{name}.forward got an empty sequence (L = 0)")

    @staticmethod
    def _check_step_input(x: Tensor, d_model: int, name: str) -> None:
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[-1] != d_model:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name}.step expects one token x [B, {d_model}], got {got}")
