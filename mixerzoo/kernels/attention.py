"""Full causal softmax attention (the baseline ``attn`` mixer): SDPA on the torch backend.

Queries align with the end of the keys, as in ``sliding_window_attention``: with ``Lk > Lq``
(continuing from a KV cache) query i sits at position ``Lk − Lq + i``. SDPA's ``is_causal`` aligns
to the top-left, so that case passes an explicit bottom-right mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from opt_einsum import contract
from torch import Tensor

from mixerzoo.kernels._checks import check_qkv, resolve_backend
from mixerzoo.kernels.sliding_window.naive import expand_kv

__all__ = ["attention", "attention_reference"]


def attention_reference(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None) -> Tensor:
    """fp64 causal (bottom-right aligned) softmax attention in einsum, for tests."""
    H, Lq, Lk = q.shape[2], q.shape[1], k.shape[1]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    s = contract("blhd,bmhd->bhlm", q.double(), expand_kv(k, H).double()) * scale
    mask = torch.arange(Lk, device=q.device) <= (torch.arange(Lq, device=q.device) + Lk - Lq).unsqueeze(1)
    s = s.masked_fill(~mask, float("-inf"))
    return contract("bhlm,bmhe->blhe", torch.softmax(s, -1), expand_kv(v, H).double())


def attention(q: Tensor, k: Tensor, v: Tensor, *, scale: float | None = None, backend: str = "auto") -> Tensor:
    """Causal softmax attention, ``q [B, Lq, H, d]``, ``k, v [B, Lk, Hkv, ·]`` with ``Lk >= Lq``.

    Backends: ``torch`` (SDPA: FlashAttention-2 / cuDNN / memory-efficient kernels on CUDA) and
    ``xformers`` (``memory_efficient_attention``) where installed. ``auto`` is torch.

    Example:
        >>> q = k = v = torch.randn(1, 10, 2, 16)
        >>> attention(q, k, v).shape
        torch.Size([1, 10, 2, 16])
    """
    op = "attention"
    check_qkv(op, q, k, v, "[B, Lq, H, d]", "[B, Lk, Hkv, d]", "[B, Lk, Hkv, dv]")
    B, Lq, H, d = q.shape
    Lk, Hkv = k.shape[1], k.shape[2]
    if k.shape[0] != B or k.shape[3] != d or v.shape[:3] != k.shape[:3]:
        raise ValueError(f"{op}: k/v must be [B, Lk, Hkv, ·] with q's B and d; got {tuple(k.shape)}, {tuple(v.shape)}")
    if Lq < 1 or Lk < Lq:
        raise ValueError(f"{op}: need 1 <= Lq <= Lk (queries align with the last keys), got Lq={Lq}, Lk={Lk}")
    if H % Hkv:
        raise ValueError(f"{op}: query heads ({H}) must be a multiple of key/value heads ({Hkv})")
    chosen = resolve_backend(op, backend, q.device, False, allowed=("torch", "xformers"))
    if chosen == "auto":
        chosen = "torch"
    if chosen == "xformers":
        from mixerzoo.kernels.xformers_backend import attention_xformers

        return attention_xformers(q, k, v, scale=scale)
    qh = q.transpose(1, 2)  # [B, H, Lq, d]
    kh, vh = expand_kv(k, H).transpose(1, 2), expand_kv(v, H).transpose(1, 2)
    if Lq == Lk:
        o = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, scale=scale)
    else:
        mask = torch.arange(Lk, device=q.device) <= (torch.arange(Lq, device=q.device) + Lk - Lq).unsqueeze(1)
        o = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, scale=scale)
    return o.transpose(1, 2)
