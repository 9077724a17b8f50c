"""Whole models agree across backends: the Triton kernels (interpreter on the CPU, compiled on a GPU) and torch."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch
from _helpers import rel_err

import mixerzoo as zoo

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")


def _has_triton(op_package: str) -> bool:
    return importlib.util.find_spec(f"mixerzoo.kernels.{op_package}.triton_ops") is not None


def _set_backend(model, backend: str) -> None:
    for block in model.stack.blocks:
        mixer = block.mixer
        if "backend" in {f.name for f in dataclasses.fields(mixer.config)}:
            allowed = type(mixer.config).__dataclass_fields__["backend"].type
            if backend in str(allowed):
                mixer.config = dataclasses.replace(mixer.config, backend=backend)


def _spec() -> str:
    layers = ["sw5", "conv3"] if _has_triton("sliding_window") else ["conv3"]
    if _has_triton("linear_attention"):
        layers += ["taylor4", "performer4[m=8]", "cosformer4"]
    return "-".join(layers)


def _check(device: str, dtype: torch.dtype, tol: float, d_model: int, length: int) -> None:
    torch.manual_seed(0)
    model = zoo.build(_spec(), d_model=d_model, vocab_size=50, n_heads=2, max_len=256, device=device, dtype=dtype)
    ids = torch.randint(0, 50, (2, length), device=device)
    _set_backend(model, "torch")
    ref_logits = model(ids)
    ref_gen = model.generate(ids[:, :5], 6, cuda_graph=False)
    _set_backend(model, "triton")
    logits = model(ids)
    assert rel_err(logits, ref_logits) < tol
    assert torch.equal(model.generate(ids[:, :5], 6, cuda_graph=False)[:, :6], ref_gen[:, :6])
    logits.float().square().mean().backward()  # the fused backward runs inside a whole model
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_models_agree_across_backends_on_the_cpu_interpreter():
    _check("cpu", torch.float32, 1e-4, d_model=16, length=13)


@pytest.mark.gpu
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 2e-3), (torch.bfloat16, 3e-2)])
def test_models_agree_across_backends_on_the_gpu(dtype, tol):
    _check("cuda", dtype, tol, d_model=256, length=300)
