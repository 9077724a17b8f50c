"""Causal linear attention with a feature map: the public entry points and their backend dispatch.

``linear_attention`` runs a whole sequence (training, prefill); ``linear_attention_step`` one token
(generation). Both take q, k of width d′ and compute φ inside: on ``backend="triton"`` the fused
kernels in this package, on ``backend="torch"`` the chunked reference in ``naive.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mixerzoo.feature_maps import FeatureMap
from mixerzoo.kernels._checks import check_dim, check_qkv, load_triton_ops, resolve_backend
from mixerzoo.kernels.linear_attention.naive import (
    linear_attention_chunked,
    linear_attention_reference,
    linear_attention_step_torch,
    positions_for,
)

__all__ = ["linear_attention", "linear_attention_reference", "linear_attention_step", "resolve_feature_map"]

State = tuple[Tensor, Tensor]  # (kv [B, H, D, dv], z [B, H, D]), fp32


def _triton_ops():
    """The Triton implementation module (loaded once at the end of this file), or None where it is missing."""
    return _TRITON_OPS


def resolve_feature_map(feature_map: str | FeatureMap, d_prime: int, op: str) -> FeatureMap:
    """A feature-map instance from an instance or a registered name (for maps a name fully determines)."""
    if isinstance(feature_map, FeatureMap):
        check_dim(op, "q/k width d′", d_prime, feature_map.d_prime, "project q and k to the feature map's d′")
        return feature_map
    if isinstance(feature_map, str):
        from mixerzoo import registry
        from mixerzoo.feature_maps import feature_map as make

        entry = registry.get(feature_map, "feature_map")
        if not getattr(entry.cls, "stateless", True):
            raise ValueError(
                f"{op}: feature map {feature_map!r} carries state (random features or a horizon), so a name is not "
                f"enough; create it once with mixerzoo.feature_map({feature_map!r}, {d_prime}, ...) and pass it"
            )
        return make(feature_map, d_prime)
    raise TypeError(f"{op}: feature_map must be a registered name or a FeatureMap, got {type(feature_map).__name__}")


def _check_state(op: str, state, B: int, H: int, D: int, dv: int, device: torch.device) -> State:
    if not (isinstance(state, (tuple, list)) and len(state) == 2):
        raise TypeError(f"{op}: the state must be a tuple (kv [B, H, D, dv], z [B, H, D]), got {type(state).__name__}")
    kv, z = state
    for name, t, shape in (("kv", kv, (B, H, D, dv)), ("z", z, (B, H, D))):
        if not isinstance(t, Tensor) or tuple(t.shape) != shape:
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{op}: state {name} must have shape {list(shape)} (D = feature_map.out_dim), got {got}")
        if t.dtype != torch.float32:
            raise TypeError(
                f"{op}: state {name} must be float32 (the state is always accumulated in fp32), got {t.dtype}"
            )
        if t.device != device:
            raise ValueError(f"{op}: state {name} is on {t.device} but q is on {device}")
    return kv, z


def _check_normalize(op: str, fm: FeatureMap, normalize: bool) -> None:
    if normalize and not fm.nonnegative:
        raise ValueError(
            f"{op}: feature map {type(fm).__name__} can produce negative features, so the normalized form may divide "
            "by ~0; pass normalize=False (or choose a non-negative map)"
        )


def linear_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    feature_map: str | FeatureMap,
    *,
    normalize: bool = True,
    eps: float = 1e-6,
    initial_state: State | None = None,
    output_final_state: bool = False,
    offset: int = 0,
    backend: str = "auto",
) -> Tensor | tuple[Tensor, State]:
    """Causal linear attention ``y_i = Σ_{j≤i} (φq_i·φk_j) v_j / (Σ_{j≤i} φq_i·φk_j + eps)``.

    Args:
        q, k: ``[B, L, H, d′]`` queries and keys before the feature map.
        v: ``[B, L, H, dv]`` values.
        feature_map: a registered name (``"taylor"``) or a ``FeatureMap`` instance with ``d_prime == d′``.
        normalize: divide by the denominator (fp32, plus ``eps``); False gives the numerator only.
        eps: added to the denominator.
        initial_state: ``(kv [B, H, D, dv], z [B, H, D])`` fp32 to continue from (D = ``feature_map.out_dim``).
        output_final_state: also return the state after the last token (prefill → generation).
        offset: absolute position of the first token (position-dependent maps such as cosformer).
        backend: ``"auto"`` (Triton on CUDA, else torch), ``"torch"`` or ``"triton"``.

    Returns:
        ``o [B, L, H, dv]`` in v's dtype, and ``(kv, z)`` when ``output_final_state``.

    Example:
        >>> q, k = torch.randn(2, 10, 4, 16), torch.randn(2, 10, 4, 16)
        >>> v = torch.randn(2, 10, 4, 32)
        >>> linear_attention(q, k, v, "taylor").shape
        torch.Size([2, 10, 4, 32])
    """
    op = "linear_attention"
    check_qkv(op, q, k, v, "[B, L, H, d′]", "[B, L, H, d′]", "[B, L, H, dv]")
    if k.shape != q.shape:
        raise ValueError(
            f"{op}: q and k must have the same shape [B, L, H, d′], got {tuple(q.shape)} and {tuple(k.shape)}"
        )
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(f"{op}: v must be [B, L, H, dv] with q's B, L, H={tuple(q.shape[:3])}, got {tuple(v.shape)}")
    if q.shape[1] < 1:
        raise ValueError(f"{op}: the sequence is empty (L = 0); pass at least one token")
    B, L, H, d_prime = q.shape
    dv = v.shape[-1]
    fm = resolve_feature_map(feature_map, d_prime, op)
    _check_normalize(op, fm, normalize)
    D = fm.out_dim
    if initial_state is not None:
        initial_state = _check_state(op, initial_state, B, H, D, dv, q.device)
    impl = _triton_ops()
    chosen = resolve_backend(op, backend, q.device, impl is not None)
    if chosen == "triton":
        o, state = impl.linear_attention_triton(
            q, k, v, fm, normalize=normalize, eps=eps, initial_state=initial_state,
            output_final_state=output_final_state, offset=offset,
        )  # fmt: skip
        return (o, state) if output_final_state else o
    pos = positions_for(L, offset, q.device) if fm.position_dependent else None
    phi_q, phi_k = fm(q, pos), fm(k, pos)  # [B, L, H, D] fp32
    if initial_state is None:
        kv0 = phi_q.new_zeros(B, H, D, dv)
        z0 = phi_q.new_zeros(B, H, D)
    else:
        kv0, z0 = initial_state
    o, kv, z = linear_attention_chunked(phi_q, phi_k, v.float(), normalize, eps, kv0, z0)
    o = o.to(v.dtype)
    return (o, (kv, z)) if output_final_state else o


def linear_attention_step(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    state: State,
    feature_map: str | FeatureMap,
    *,
    normalize: bool = True,
    eps: float = 1e-6,
    offset: int | Tensor = 0,
    backend: str = "auto",
) -> tuple[Tensor, State]:
    """One generation step: ``kv += φk ⊗ v``, ``z += φk`` (in place), then read out with ``φq``.

    Args:
        q, k: ``[B, H, d′]``; v: ``[B, H, dv]`` for the new token.
        state: ``(kv [B, H, D, dv], z [B, H, D])`` fp32, updated in place (CUDA-graph friendly).
        offset: the token's absolute position (int or 0-dim int64 tensor; cosformer reads it).
        feature_map, normalize, eps, backend: as in ``linear_attention``.

    Returns:
        ``(o [B, H, dv] in v's dtype, state)``, the state being the same tensors, updated.
    """
    op = "linear_attention_step"
    check_qkv(op, q, k, v, "[B, H, d′]", "[B, H, d′]", "[B, H, dv]")
    if k.shape != q.shape or v.shape[:2] != q.shape[:2]:
        raise ValueError(
            f"{op}: expected q, k [B, H, d′] and v [B, H, dv] with one B and H; "
            f"got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    B, H, d_prime = q.shape
    fm = resolve_feature_map(feature_map, d_prime, op)
    _check_normalize(op, fm, normalize)
    kv, z = _check_state(op, state, B, H, fm.out_dim, v.shape[-1], q.device)
    impl = _triton_ops()
    chosen = resolve_backend(op, backend, q.device, impl is not None)
    if chosen == "triton":
        o = impl.linear_attention_step_triton(q, k, v, (kv, z), fm, normalize=normalize, eps=eps, offset=offset)
        return o, (kv, z)
    pos = torch.as_tensor(offset, device=q.device).reshape(1, 1) if fm.position_dependent else None
    o = linear_attention_step_torch(fm(q, pos), fm(k, pos), v, kv, z, normalize, eps)
    return o.to(v.dtype), (kv, z)


_TRITON_OPS = load_triton_ops("mixerzoo.kernels.linear_attention.triton_ops")
