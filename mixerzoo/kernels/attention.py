"""Full causal softmax attention (the baseline ``attn`` mixer): SDPA on the torch backend.

Queries align with the end of the keys, as in ``sliding_window_attention``: with ``Lk > Lq``
(continuing from a KV cache) query i sits at position ``Lk − Lq + i``. SDPA's ``is_causal`` aligns
to the top-left, so that case passes an explicit bottom-right mask.

``sdpa`` pins SDPA to one of its kernels (``torch.nn.attention.sdpa_kernel``): ``flash``
(FlashAttention-2, the paper's baseline), ``cudnn``, ``efficient`` or ``math``; ``auto`` lets torch
choose (cuDNN's on an H200 with torch 2.11, where it is the fastest at 4,096 tokens).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from opt_einsum import contract
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from mixerzoo.kernels._checks import check_qkv, resolve_backend
from mixerzoo.kernels.sliding_window.naive import expand_kv

__all__ = ["SDPA_KERNELS", "attention", "attention_reference"]

SDPA_KERNELS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}


def attention_reference(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None) -> Tensor:
    """fp64 causal (bottom-right aligned) softmax attention in einsum, for tests."""
    H, Lq, Lk = q.shape[2], q.shape[1], k.shape[1]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    s = contract("blhd,bmhd->bhlm", q.double(), expand_kv(k, H).double()) * scale
    mask = torch.arange(Lk, device=q.device) <= (torch.arange(Lq, device=q.device) + Lk - Lq).unsqueeze(1)
    s = s.masked_fill(~mask, float("-inf"))
    return contract("bhlm,bmhe->blhe", torch.softmax(s, -1), expand_kv(v, H).double())


def attention(
    q: Tensor, k: Tensor, v: Tensor, *, scale: float | None = None, backend: str = "auto", sdpa: str = "auto"
) -> Tensor:
    """Causal softmax attention, ``q [B, Lq, H, d]``, ``k, v [B, Lk, Hkv, ·]`` with ``Lk >= Lq``.

    Backends: ``torch`` (SDPA: FlashAttention-2 / cuDNN / memory-efficient kernels on CUDA) and
    ``xformers`` (``memory_efficient_attention``) where installed. ``auto`` is torch. ``sdpa`` pins
    the torch backend to one SDPA kernel (``SDPA_KERNELS``); ``auto`` lets torch pick.

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
    _check_sdpa(op, sdpa, chosen, q, Lq, Lk)
    if chosen == "xformers":
        from mixerzoo.kernels.xformers_backend import attention_xformers

        return attention_xformers(q, k, v, scale=scale)
    qh = q.transpose(1, 2)  # [B, H, Lq, d]
    kh, vh = expand_kv(k, H).transpose(1, 2), expand_kv(v, H).transpose(1, 2)
    with sdpa_kernel([SDPA_KERNELS[sdpa]]) if sdpa != "auto" else contextlib.nullcontext():
        if Lq == Lk:
            o = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, scale=scale)
        else:
            mask = torch.arange(Lk, device=q.device) <= (torch.arange(Lq, device=q.device) + Lk - Lq).unsqueeze(1)
            o = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, scale=scale)
    return o.transpose(1, 2)


def _check_sdpa(op: str, sdpa: str, backend: str, q: Tensor, Lq: int, Lk: int) -> None:
    """The cases where the pinned SDPA kernel cannot run, as errors that say so before torch's dispatch would
    fail with "no available kernel"."""
    if sdpa == "auto":
        return
    if sdpa not in SDPA_KERNELS:
        raise ValueError(f"{op}: sdpa must be 'auto' or one of {', '.join(map(repr, SDPA_KERNELS))}, got {sdpa!r}")
    if backend != "torch":
        raise ValueError(f"{op}: sdpa={sdpa!r} pins a kernel of the torch backend, but the backend is {backend!r}")
    if sdpa in ("cudnn", "efficient") and q.device.type != "cuda":
        raise ValueError(f"{op}: SDPA's {sdpa} kernel runs on CUDA only (got {q.device.type} tensors); use 'auto'")
    if sdpa in ("flash", "cudnn") and q.device.type == "cuda" and q.dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"{op}: SDPA's {sdpa} kernel on CUDA takes fp16 or bf16, got {q.dtype}; use 'auto'")
    if sdpa == "flash" and Lk != Lq:
        raise ValueError(
            f"{op}: SDPA's flash kernel takes no mask, so it cannot continue from a KV cache (Lq={Lq} < Lk={Lk}); "
            "prefill from fresh states or use 'auto'"
        )
