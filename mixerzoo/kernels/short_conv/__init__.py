"""Gated short convolution (BaseConv's core): ``y = silu(causal_dwconv_K(u) + bias) ⊙ gate``.

The mixer computes ``u, gate`` by one input projection and applies its output projection around
this op; the op itself is the memory-bound middle that the Triton kernel fuses.
"""

from __future__ import annotations

from torch import Tensor

from mixerzoo.kernels._checks import check_same, check_tensor, load_triton_ops, resolve_backend
from mixerzoo.kernels.short_conv.naive import (
    gated_short_conv_reference,
    gated_short_conv_step_torch,
    gated_short_conv_torch,
)

__all__ = ["gated_short_conv", "gated_short_conv_reference", "gated_short_conv_step"]


def _triton_ops():
    """The Triton implementation module (loaded once at the end of this file), or None where it is missing."""
    return _TRITON_OPS


def _check_params(op: str, C: int, weight: Tensor, bias: Tensor | None, like: Tensor) -> int:
    check_tensor("weight", weight, 2, "[C, K]", op)
    if weight.shape[0] != C or weight.shape[1] < 1:
        raise ValueError(f"{op}: weight must be [C, K] with C={C} channels and K >= 1, got {tuple(weight.shape)}")
    if weight.device != like.device:
        raise ValueError(f"{op}: weight is on {weight.device} but the inputs are on {like.device}")
    if bias is not None:
        check_tensor("bias", bias, 1, "[C]", op)
        if bias.shape[0] != C or bias.device != like.device:
            raise ValueError(f"{op}: bias must be [C]=[{C}] on {like.device}, got {tuple(bias.shape)} on {bias.device}")
    return weight.shape[1]


def _check_state(op: str, state: Tensor, B: int, K: int, C: int, like: Tensor) -> None:
    check_tensor("state", state, 3, "[B, K−1, C]", op)
    if tuple(state.shape) != (B, K - 1, C):
        raise ValueError(f"{op}: state must be [B, K−1, C] = [{B}, {K - 1}, {C}], got {tuple(state.shape)}")
    if state.device != like.device:
        raise ValueError(f"{op}: state is on {state.device} but the inputs are on {like.device}")


def gated_short_conv(
    u: Tensor,
    gate: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    initial_state: Tensor | None = None,
    output_final_state: bool = False,
    backend: str = "auto",
) -> Tensor | tuple[Tensor, Tensor]:
    """Causal depthwise convolution of ``u``, SiLU, times ``gate``.

    Args:
        u, gate: ``[B, L, C]``.
        weight: ``[C, K]``, tap K−1 on the current token; bias: ``[C]`` or None.
        initial_state: ``[B, K−1, C]``, the K−1 inputs before ``u`` (zeros when None).
        output_final_state: also return the last K−1 inputs, to continue from.
        backend: ``"auto"``, ``"torch"`` or ``"triton"``.

    Returns:
        ``y [B, L, C]`` in u's dtype, and the state ``[B, K−1, C]`` when asked.

    Example:
        >>> u, g = torch.randn(2, 7, 8), torch.randn(2, 7, 8)
        >>> gated_short_conv(u, g, torch.randn(8, 3)).shape
        torch.Size([2, 7, 8])
    """
    op = "gated_short_conv"
    check_tensor("u", u, 3, "[B, L, C]", op)
    check_tensor("gate", gate, 3, "[B, L, C]", op)
    check_same(op, u=u, gate=gate)
    if gate.shape != u.shape or u.shape[1] < 1:
        raise ValueError(
            f"{op}: u and gate must both be [B, L, C] with L >= 1, got {tuple(u.shape)} and {tuple(gate.shape)}"
        )
    B, L, C = u.shape
    K = _check_params(op, C, weight, bias, u)
    if initial_state is not None:
        _check_state(op, initial_state, B, K, C, u)
    impl = _triton_ops()
    chosen = resolve_backend(op, backend, u.device, impl is not None)
    if chosen == "triton":
        y, state = impl.gated_short_conv_triton(
            u, gate, weight, bias, initial_state=initial_state, output_final_state=output_final_state
        )
    else:
        y, state = gated_short_conv_torch(u, gate, weight, bias, initial_state)
    return (y, state) if output_final_state else y


def gated_short_conv_step(
    u: Tensor, gate: Tensor, state: Tensor, weight: Tensor, bias: Tensor | None = None, *, backend: str = "auto"
) -> Tensor:
    """One token: ``u, gate [B, C]``; ``state [B, K−1, C]`` shifted and updated in place; returns ``[B, C]``."""
    op = "gated_short_conv_step"
    check_tensor("u", u, 2, "[B, C]", op)
    check_tensor("gate", gate, 2, "[B, C]", op)
    check_same(op, u=u, gate=gate)
    if gate.shape != u.shape:
        raise ValueError(f"{op}: u and gate must both be [B, C], got {tuple(u.shape)} and {tuple(gate.shape)}")
    B, C = u.shape
    K = _check_params(op, C, weight, bias, u)
    _check_state(op, state, B, K, C, u)
    impl = _triton_ops()
    has_step = impl is not None and hasattr(impl, "gated_short_conv_step_triton")
    chosen = resolve_backend(op, backend, u.device, has_step)
    if chosen == "triton":
        return impl.gated_short_conv_step_triton(u, gate, state, weight, bias)
    return gated_short_conv_step_torch(u, gate, state, weight, bias)


_TRITON_OPS = load_triton_ops("mixerzoo.kernels.short_conv.triton_ops")
