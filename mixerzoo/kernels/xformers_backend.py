"""Optional xformers backend for sliding-window and full causal attention (``backend="xformers"``).

Legend: ``q [B, Lq, H, d]``, ``k [B, Lk, Hkv, d]``, ``v [B, Lk, Hkv, dv]``, queries bottom-right aligned
(query i at position ``Lk − Lq + i``). Both ops call ``xformers.ops.memory_efficient_attention``,
which dispatches to FlashAttention-2 or CUTLASS kernels:

- sliding window W: ``LowerTriangularFromBottomRightLocalAttentionMask(W)``: a query whose distance from the
  last query is X may attend keys at distance X … X + W − 1 from the last key, i.e. position p sees
  ``p − W + 1 … p``, W keys including itself (FlashAttention ``window_size=(W − 1, 0)``), the same band
  as ``sliding_window_reference``;
- full causal: ``LowerTriangularFromBottomRightMask()``.

Grouped kv heads go in xformers' 5-D layout ``[B, M, G, H, K]`` (G = kv heads, H = query heads per group,
the kv tensors expanded along H without a copy). ``backend="auto"`` never picks xformers; asking for it
where it cannot run raises a RuntimeError that says why (not installed, no CUDA, operators not built).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["attention_xformers", "sliding_window_xformers", "xformers_available"]

_AVAILABLE: tuple[bool, str] | None = None  # only a success is cached: a failed probe is retried


def xformers_available() -> tuple[bool, str]:
    """``(True, "ok")`` when xformers imports and one small causal attention runs on the current CUDA device;
    else ``(False, reason)`` with the fix."""
    global _AVAILABLE
    if _AVAILABLE is not None:
        return _AVAILABLE
    try:
        import xformers.ops as xops
        from xformers.ops.fmha.attn_bias import LowerTriangularFromBottomRightMask
    except ImportError as e:
        return False, f"xformers is not installed ({e}); pip install xformers (a build that matches your torch)"
    if not torch.cuda.is_available():
        return False, "no CUDA device: xformers' attention operators run on CUDA GPUs only"
    try:
        x = torch.randn(1, 16, 1, 64, device="cuda", dtype=torch.float16)
        xops.memory_efficient_attention(x, x, x, attn_bias=LowerTriangularFromBottomRightMask())
        torch.cuda.synchronize()
    except Exception as e:  # NotImplementedError ("No operator found ... wasn't build with CUDA support"), ...
        first = " ".join(str(e).split())[:400]
        return False, (
            f"xformers is installed but its CUDA attention operators cannot run here ({type(e).__name__}: {first}); "
            "install an xformers build for this torch/CUDA version (python -m xformers.info lists the operators)"
        )
    _AVAILABLE = (True, "ok")
    return _AVAILABLE


def _require(op: str, q: Tensor):
    ok, reason = xformers_available()
    if not ok:
        raise RuntimeError(f"{op}: backend='xformers' cannot run: {reason}; or use backend='triton' / 'torch'")
    if q.device.type != "cuda":
        raise RuntimeError(f"{op}: backend='xformers' needs CUDA tensors, got {q.device}; or use backend='torch'")
    import xformers.ops as xops

    return xops


def _grouped(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """4-D when H == Hkv; else xformers' 5-D GQA layout ``[B, M, Hkv, G, ·]``, kv expanded (no copy)."""
    B, Lq, H, d = q.shape
    Lk, Hkv = k.shape[1], k.shape[2]
    if H == Hkv:
        return q, k, v
    G = H // Hkv
    q5 = q.reshape(B, Lq, Hkv, G, d)  # query head h = hk·G + g, so it reads kv head hk = h // G
    k5 = k.unsqueeze(3).expand(B, Lk, Hkv, G, d)
    v5 = v.unsqueeze(3).expand(B, Lk, Hkv, G, v.shape[-1])
    return q5, k5, v5


def _run(op: str, q: Tensor, k: Tensor, v: Tensor, bias, scale: float | None) -> Tensor:
    xops = _require(op, q)
    B, Lq, H, _ = q.shape
    q_, k_, v_ = _grouped(q, k, v)
    o = xops.memory_efficient_attention(q_, k_, v_, attn_bias=bias, scale=scale)
    return o.reshape(B, Lq, H, v.shape[-1])


def sliding_window_xformers(q: Tensor, k: Tensor, v: Tensor, window: int, *, scale: float | None = None) -> Tensor:
    """Sliding-window attention through xformers (W keys including the query's own), ``o [B, Lq, H, dv]``."""
    op = "sliding_window_attention"
    _require(op, q)
    from xformers.ops.fmha.attn_bias import LowerTriangularFromBottomRightLocalAttentionMask

    return _run(op, q, k, v, LowerTriangularFromBottomRightLocalAttentionMask(window), scale)


def attention_xformers(q: Tensor, k: Tensor, v: Tensor, *, scale: float | None = None) -> Tensor:
    """Full causal (bottom-right aligned) attention through xformers, ``o [B, Lq, H, dv]``."""
    op = "attention"
    _require(op, q)
    from xformers.ops.fmha.attn_bias import LowerTriangularFromBottomRightMask

    return _run(op, q, k, v, LowerTriangularFromBottomRightMask(), scale)
