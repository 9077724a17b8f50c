"""The optional xformers backend: clear errors where it cannot run, never chosen by ``auto``, numerics on the GPU.

Tolerances (relative ‖out − ref‖ / ‖ref‖ against the fp64 oracles): bf16 1.5e-2, fp16 2e-3, as for the
Triton kernels (FlashAttention-2 rounds p to the input dtype the same way).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from mixerzoo.kernels import xformers_backend as xb
from mixerzoo.kernels._checks import resolve_backend
from mixerzoo.kernels.attention import attention, attention_reference
from mixerzoo.kernels.sliding_window import sliding_window_attention, sliding_window_reference

HAS_XFORMERS = importlib.util.find_spec("xformers") is not None
TOL = {torch.float16: 2e-3, torch.bfloat16: 1.5e-2}


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    assert out.shape == ref.shape and torch.isfinite(out).all()
    return ((out.double() - ref.double()).norm() / ref.double().norm()).item()


@pytest.mark.parametrize("call", ["sliding_window", "attention"])
def test_explicit_xformers_raises_a_clear_error_where_it_cannot_run(call):
    q = k = v = torch.randn(1, 8, 2, 16)
    with pytest.raises(RuntimeError, match="backend='xformers' cannot run") as info:
        if call == "sliding_window":
            sliding_window_attention(q, k, v, 4, backend="xformers")
        else:
            attention(q, k, v, backend="xformers")
    msg = str(info.value)
    if not HAS_XFORMERS:
        assert "not installed" in msg and "pip install xformers" in msg
    elif not torch.cuda.is_available():
        assert "no CUDA device" in msg


@pytest.mark.skipif(HAS_XFORMERS, reason="xformers is installed here")
def test_availability_reports_the_missing_package():
    ok, reason = xb.xformers_available()
    assert not ok and "not installed" in reason


def test_auto_never_picks_xformers(monkeypatch):
    for has_triton in (True, False):
        for dev in ("cpu", "cuda"):
            chosen = resolve_backend(
                "op", "auto", torch.device(dev), has_triton, allowed=("torch", "triton", "xformers")
            )
            assert chosen in ("torch", "triton")

    def boom(*args, **kwargs):
        raise AssertionError("auto must not call xformers")

    monkeypatch.setattr(xb, "sliding_window_xformers", boom)
    monkeypatch.setattr(xb, "attention_xformers", boom)
    q = k = v = torch.randn(1, 9, 2, 16)
    assert rel_err(sliding_window_attention(q, k, v, 3), sliding_window_reference(q, k, v, 3)) < 1e-5
    assert rel_err(attention(q, k, v), attention_reference(q, k, v)) < 1e-5


# ---------------------------------------------------------------------------------------------- GPU
@pytest.fixture
def xformers_ops(monkeypatch):
    """On the H200 image xformers' compiled extension does not load (built for another CUDA), so its
    dispatcher refuses every CUDA op although the FA2/CUTLASS ops it uses call torch's own kernels. The test
    (never the library) sets xformers' ``_built_with_cuda`` flag so the numerics can be checked."""
    if not (HAS_XFORMERS and torch.cuda.is_available()):
        pytest.skip("needs xformers and CUDA")
    import xformers.ops.fmha.common as common

    # always (not only when the probe fails): the probe caches a success, and the monkeypatch is undone after
    # each test, so a later test would otherwise run with the flag back at False
    monkeypatch.setattr(common, "_built_with_cuda", True)
    ok, reason = xb.xformers_available()
    assert ok, reason


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    "B,Lq,Lk,H,Hkv,d,W", [(2, 300, 300, 4, 4, 64, 64), (1, 200, 333, 8, 2, 128, 17), (1, 70, 70, 2, 1, 64, 1)]
)
def test_gpu_xformers_sliding_window_matches_oracle(xformers_ops, B, Lq, Lk, H, Hkv, d, W, dtype):
    g = torch.Generator().manual_seed(W)
    q = torch.randn(B, Lq, H, d, generator=g).to("cuda", dtype)
    k = torch.randn(B, Lk, Hkv, d, generator=g).to("cuda", dtype)
    v = torch.randn(B, Lk, Hkv, d, generator=g).to("cuda", dtype)
    o = sliding_window_attention(q, k, v, W, backend="xformers")
    assert rel_err(o, sliding_window_reference(q, k, v, W)) <= TOL[dtype]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("B,Lq,Lk,H,Hkv,d", [(2, 257, 257, 4, 4, 64), (1, 100, 300, 8, 2, 128)])
def test_gpu_xformers_attention_matches_oracle(xformers_ops, B, Lq, Lk, H, Hkv, d, dtype):
    g = torch.Generator().manual_seed(Lk)
    q = torch.randn(B, Lq, H, d, generator=g).to("cuda", dtype)
    k = torch.randn(B, Lk, Hkv, d, generator=g).to("cuda", dtype)
    v = torch.randn(B, Lk, Hkv, d, generator=g).to("cuda", dtype)
    o = attention(q, k, v, backend="xformers")
    assert rel_err(o, attention_reference(q, k, v)) <= TOL[dtype]
