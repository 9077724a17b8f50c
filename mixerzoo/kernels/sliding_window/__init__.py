"""Causal sliding-window softmax attention: public entry points and backend dispatch.

Window semantics: W keys including the query itself (position p sees p − W + 1 … p), i.e.
FlashAttention's ``window_size=(W − 1, 0)``. Queries are aligned to the end of the keys, so
``Lk > Lq`` continues from cached keys. Backends: ``torch`` (banded reference), ``triton`` (fused
kernels, where present), ``xformers`` (memory-efficient attention with a local-attention bias).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mixerzoo.kernels._checks import check_qkv, check_tensor, load_triton_ops, resolve_backend
from mixerzoo.kernels.sliding_window.naive import (
    sliding_window_reference,
    sliding_window_step_torch,
    sliding_window_torch,
)

__all__ = ["sliding_window_attention", "sliding_window_attention_step", "sliding_window_reference"]


def _triton_ops():
    """The Triton implementation module (loaded once at the end of this file), or None where it is missing."""
    return _TRITON_OPS


def _check_heads(op: str, H: int, Hkv: int) -> None:
    if Hkv < 1 or H % Hkv:
        raise ValueError(f"{op}: query heads ({H}) must be a multiple of key/value heads ({Hkv}) for grouped attention")


def _check_window(op: str, window: object) -> int:
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"{op}: window must be a positive int (keys attended, including the query), got {window!r}")
    return window


def sliding_window_attention(
    q: Tensor, k: Tensor, v: Tensor, window: int, *, scale: float | None = None, backend: str = "auto"
) -> Tensor:
    """Causal softmax attention over the last ``window`` keys of every query (itself included).

    Args:
        q: ``[B, Lq, H, d]`` queries (rotary embeddings, if any, already applied by the caller).
        k: ``[B, Lk, Hkv, d]`` keys, ``Lk >= Lq``; queries align with the last Lq keys.
        v: ``[B, Lk, Hkv, dv]`` values.
        window: W, keys each query attends to, including its own.
        scale: score scale (default ``d**-0.5``).
        backend: ``"auto"``, ``"torch"``, ``"triton"`` or ``"xformers"``.

    Returns:
        ``o [B, Lq, H, dv]`` in q's dtype.

    Example:
        >>> q = k = v = torch.randn(1, 100, 2, 16)
        >>> sliding_window_attention(q, k, v, window=8).shape
        torch.Size([1, 100, 2, 16])
    """
    op = "sliding_window_attention"
    check_qkv(op, q, k, v, "[B, Lq, H, d]", "[B, Lk, Hkv, d]", "[B, Lk, Hkv, dv]")
    window = _check_window(op, window)
    B, Lq, H, d = q.shape
    if k.shape[0] != B or k.shape[3] != d or v.shape[:3] != k.shape[:3]:
        raise ValueError(
            f"{op}: expected k [B, Lk, Hkv, d] and v [B, Lk, Hkv, dv] with q's B={B}, d={d}; "
            f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if Lq < 1 or k.shape[1] < Lq:
        raise ValueError(f"{op}: need 1 <= Lq <= Lk (queries align with the last keys), got Lq={Lq}, Lk={k.shape[1]}")
    _check_heads(op, H, k.shape[2])
    impl = _triton_ops()
    chosen = resolve_backend(op, backend, q.device, impl is not None, allowed=("torch", "triton", "xformers"))
    if chosen == "triton":
        return impl.sliding_window_triton(q, k, v, window, scale=scale)
    if chosen == "xformers":
        from mixerzoo.kernels.xformers_backend import sliding_window_xformers

        return sliding_window_xformers(q, k, v, window, scale=scale)
    return sliding_window_torch(q, k, v, window, scale)


def sliding_window_attention_step(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cache_k: Tensor,
    cache_v: Tensor,
    position: int | Tensor,
    *,
    scale: float | None = None,
    backend: str = "auto",
    early_reads: bool = False,
    rope: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """One generation step over a ring buffer of the last W keys and values.

    Writes the new key/value into slot ``position % W`` of the caches (in place), then attends over
    the ``min(position + 1, W)`` slots written so far.

    Args:
        q: ``[B, H, d]``; k: ``[B, Hkv, d]``; v: ``[B, Hkv, dv]`` for the new token.
        cache_k: ``[B, W, Hkv, d]``; cache_v: ``[B, W, Hkv, dv]``, the ring buffer.
        position: tokens processed before this one (int or 0-dim int64 tensor, for CUDA graphs).
        early_reads: the Triton kernel on sm_90+ may read the ring before the kernel launched just before it has
            finished (programmatic dependent launch), hiding that read's latency. Pass True only when that launch
            does not write this ring, as in a model, where other kernels run between two steps of one layer; never
            for steps on one ring back to back. Other backends ignore it.
        rope: ``(cos, sin)``, fp32 tables of rotary angles ``[N, 1, r/2]`` for positions 0 … N − 1
            (``mixerzoo.mixers.rotary.rotary_table(0, N, d, device)``, r = d rounded down to even): q and k arrive
            unrotated and are rotated by the angles of ``position`` first (the Triton kernel does it in registers,
            one launch fewer than rotating before the call). ``position`` must be below N: an int past it raises;
            a tensor one makes the Triton step's output NaN.

    Returns:
        ``o [B, H, dv]`` in q's dtype.
    """
    op = "sliding_window_attention_step"
    check_qkv(op, q, k, v, "[B, H, d]", "[B, Hkv, d]", "[B, Hkv, dv]")
    check_tensor("cache_k", cache_k, 4, "[B, W, Hkv, d]", op)
    check_tensor("cache_v", cache_v, 4, "[B, W, Hkv, dv]", op)
    B, H, d = q.shape
    if k.shape != (B, cache_k.shape[2], d) or v.shape[:2] != k.shape[:2]:
        raise ValueError(
            f"{op}: k/v must be [B, Hkv, ·] matching q and the cache; got {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if cache_k.shape[:3] != (B, cache_k.shape[1], k.shape[1]) or cache_k.shape[3] != d:
        raise ValueError(
            f"{op}: cache_k must be [B, W, Hkv, d] = [{B}, W, {k.shape[1]}, {d}], got {tuple(cache_k.shape)}"
        )
    if cache_v.shape != (*cache_k.shape[:3], v.shape[2]):
        raise ValueError(f"{op}: cache_v must be [B, W, Hkv, dv] matching cache_k, got {tuple(cache_v.shape)}")
    if cache_k.device != q.device or cache_v.device != q.device:
        raise ValueError(f"{op}: the caches must be on q's device {q.device}")
    _check_heads(op, H, k.shape[1])
    if rope is not None:
        _check_rope(op, rope, d, q.device, position)
    impl = _triton_ops()
    has_step = impl is not None and hasattr(impl, "sliding_window_step_triton")
    chosen = resolve_backend(op, backend, q.device, has_step, allowed=("torch", "triton", "xformers"))
    if chosen == "triton":
        return impl.sliding_window_step_triton(
            q, k, v, cache_k, cache_v, position, scale=scale, early_reads=early_reads, rope=rope
        )
    if rope is not None:
        from mixerzoo.mixers.rotary import rotate  # the mixers' own rotation (imported late: mixers import kernels)

        row = torch.as_tensor(position, device=q.device).reshape(1)
        cos, sin = (t.reshape(t.shape[0], -1).index_select(0, row) for t in rope)  # [1, r/2]
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
    return sliding_window_step_torch(q, k, v, cache_k, cache_v, position, scale)


def _check_rope(op: str, rope, d: int, device: torch.device, position: int | Tensor) -> None:
    """``rope = (cos, sin)``: two fp32 ``[N, 1, r/2]`` (or ``[N, r/2]``) tables on q's device, r/2 = d // 2, each row
    contiguous; an int ``position`` below N."""
    if not (isinstance(rope, tuple) and len(rope) == 2 and all(isinstance(t, Tensor) for t in rope)):
        raise ValueError(
            f"{op}: rope must be a (cos, sin) pair of tensors from rotary_table, got {type(rope).__name__}"
        )
    cos, sin = rope
    half = d // 2
    for name, t in (("cos", cos), ("sin", sin)):
        if t.dtype != torch.float32 or t.device != device or t.ndim not in (2, 3):
            raise ValueError(
                f"{op}: rope's {name} must be an fp32 [N, 1, {half}] table on {device} (rotary_table), got "
                f"{t.dtype} {tuple(t.shape)} on {t.device}"
            )
        if t.shape[-1] != half or t.numel() != t.shape[0] * half or t.stride(-1) != 1 or t.shape != cos.shape:
            raise ValueError(
                f"{op}: rope's {name} must be [N, 1, {half}] (head dim {d}) with rows of unit stride, and cos and sin "
                f"the same shape; got {tuple(t.shape)} with strides {t.stride()}"
            )
    if cos.stride(0) != sin.stride(0):
        raise ValueError(
            f"{op}: rope's cos and sin must have the same row stride, got {cos.stride(0)} and {sin.stride(0)}"
        )
    if not isinstance(position, Tensor) and position >= cos.shape[0]:
        raise ValueError(
            f"{op}: position {position} is past rope's table of {cos.shape[0]} positions; build it to cover the "
            "positions decoded (rotary_table(0, N, d, device))"
        )


_TRITON_OPS = load_triton_ops("mixerzoo.kernels.sliding_window.triton_ops")
