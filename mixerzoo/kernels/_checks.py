"""Input validation and backend choice shared by every kernel entry point.

Errors name the argument, what was expected, what arrived, and the fix; nothing reaches a kernel
that would fail deep inside it or, worse, silently compute something else.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Literal

import torch
from torch import Tensor

Backend = Literal["auto", "torch", "triton", "xformers"]
FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def check_tensor(name: str, t: object, ndim: int, layout: str, op: str) -> Tensor:
    """``t`` is a floating tensor with ``ndim`` dims; ``layout`` (e.g. ``"[B, L, H, d′]"``) goes in the message."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor {layout}, got {type(t).__name__}")
    if t.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {layout} ({ndim} dims), got shape {tuple(t.shape)}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} has dtype {t.dtype}; supported: float32, bfloat16, float16 (cast it first)")
    return t


def check_same(op: str, **tensors: Tensor) -> None:
    """All tensors share one dtype and one device."""
    items = list(tensors.items())
    name0, t0 = items[0]
    for name, t in items[1:]:
        if t.device != t0.device:
            raise ValueError(f"{op}: {name} is on {t.device} but {name0} is on {t0.device}; move them to one device")
        if t.dtype != t0.dtype:
            raise TypeError(f"{op}: {name} is {t.dtype} but {name0} is {t0.dtype}; use one dtype for all inputs")


def check_qkv(op: str, q: object, k: object, v: object, q_layout: str, k_layout: str, v_layout: str) -> None:
    """q, k, v are floating tensors of the given layouts (their rank is the layout's), on one device and dtype."""
    for name, t, layout in (("q", q, q_layout), ("k", k, k_layout), ("v", v, v_layout)):
        check_tensor(name, t, layout.count(",") + 1, layout, op)
    check_same(op, q=q, k=k, v=v)


def check_dim(op: str, what: str, got: int, expected: int, fix: str) -> None:
    if got != expected:
        raise ValueError(f"{op}: {what} is {got} but must be {expected}; {fix}")


def load_triton_ops(module: str):
    """Import an op's Triton implementation once, at package import; None where triton or the module is missing.

    Resolved eagerly (not inside the public functions) so ``torch.compile(fullgraph=True)`` traces the
    dispatch without meeting an import.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def triton_importable() -> bool:
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def unit_stride_rows(t: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """``(t, t.stride())`` when t's last dim has stride 1, else a contiguous copy and its strides. The Triton kernels
    read every other stride, so the mixers' views (q, k, v or u and gate: slices of one fused projection) reach them
    without a copy. One ``stride()`` call: ~0.3 µs of host time per tensor."""
    st = t.stride()
    if st[-1] != 1:
        t = t.contiguous()
        st = t.stride()
    return t, st


def cdiv(a: int, b: int) -> int:
    """Host-side ceil division: ``triton.cdiv`` is a ``constexpr_function`` in triton 3.6 (5–9 µs a host call)."""
    return -(-a // b)


def next_pow2(n: int) -> int:
    """``triton.next_power_of_2`` as plain Python (1 for n <= 1), without its host call overhead."""
    return 1 << max(0, n - 1).bit_length()


def resolve_backend(
    op: str, backend: str, device: torch.device, has_triton_impl: bool, allowed=("torch", "triton")
) -> str:
    """Pick the implementation: ``auto`` is Triton on CUDA when it is available, else torch.

    An explicit ``triton`` that cannot run (no triton, no CUDA and no ``TRITON_INTERPRET=1``) is an
    error that says why, never a silent fallback.
    """
    choices = ("auto", *allowed)
    if backend not in choices:
        raise ValueError(f"{op}: backend must be one of {', '.join(repr(c) for c in choices)}, got {backend!r}")
    if backend == "auto":
        if device.type == "cuda" and has_triton_impl:  # a loaded implementation means triton imported
            return "triton"
        return "torch"
    if backend == "triton":
        if not triton_importable():
            raise RuntimeError(
                f"{op}: backend='triton' but triton is not installed; pip install triton, or use 'torch'"
            )
        if not has_triton_impl:
            raise RuntimeError(f"{op}: no Triton kernel is available for this op yet; use backend='torch'")
        if device.type != "cuda" and not interpreting():
            raise RuntimeError(
                f"{op}: backend='triton' needs CUDA tensors (got {device.type}); on the CPU set TRITON_INTERPRET=1 "
                "before importing triton, or use backend='torch'"
            )
    return backend
