"""The decode step's projections at batch 1: ``Linear``, an ``nn.Linear`` whose single-row CUDA calls without
autograd go to a Triton GEMV launched with programmatic dependent launch (``triton_ops``).

Why: at batch 1 every projection of a decode step is a weight read (2–11 MB at 360M) that cuBLAS serves in 5.7–8.8 µs
inside a CUDA graph, and cuBLAS launches without programmatic dependent launch, so none of it overlaps the kernel
before. The GEMV loads its weights first, then waits for the kernel before (``griddepcontrol.wait``); the compiled
step's inductor kernels let the next kernel launch after their last load (``lm.STEP_INDUCTOR_PDL``), so the weight
reads start while the norm before the projection still runs. H200, session 12 (``benchmarks/results/session12/call8``:
an RMSNorm-like kernel then the projection, 20 cold weight sets in one CUDA graph, µs per pair, cuBLAS → the GEMV with
PDL): Based-360M's conv in-projection 5.70 → 3.34, out-projection 8.79 → 2.38, MLP up 7.29 → 5.10, MLP down
7.90 → 3.94, window qkv 6.68 → 3.92.

``DECODE_GEMV`` on (the default) and Triton present: ``Linear`` takes the GEMV for one row on CUDA, in fp32 / bf16 /
fp16, with no gradient to track; every other call (training, prefill, batches above 1, the CPU) is ``F.linear``.
``MIXERZOO_DECODE_GEMV=0`` turns it off. End to end on the H200 (session 13, ``benchmarks/results/session13``,
compiled and graphed step after a 1,024-token prompt): Based-360M's batch-1 step 1.035 → 0.572 ms (call 1; 5.2 →
2.86× its floor), Transformer-360M's 1.084 → 0.743 ms; its GPU tests pass there (``tests/test_decode_linear.py -m
gpu``, call 2).

Batches of 2–128 stay on cuBLAS: a tensor-core tile over all rows with the same PDL scheme (session 13, calls 2–3,
``benchmarks/results/session13/decode_gemm_pdl.py``) was slower than cuBLAS at every Based-360M projection shape,
at 128 rows (8.1–17.8 against 4.9–8.7 µs per norm + projection) and at 16 (all but the smallest, 256 × 1024).

The MLP's residual add + RMSNorm fused into the up-projection's GEMV, and its activation into the down-projection's,
were slower or no faster (session 14, ``benchmarks/results/session14/fused_mlp.diff``; Based-360M's compiled,
graphed batch-1 step: 0.561–0.565 ms without, 0.569 with the norm fused, 0.598 with the activation, 0.590 with both):
with PDL those small kernels already run while the GEMV after them loads its weights, and fused, every program of
the GEMV reads the whole row and computes them after its wait, in series with its products.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixerzoo.kernels._checks import load_triton_ops

__all__ = ["DECODE_GEMV", "Linear", "uses_decode_gemv"]

DECODE_GEMV: bool = os.environ.get("MIXERZOO_DECODE_GEMV", "1") != "0"
DTYPES = (torch.float32, torch.bfloat16, torch.float16)  # x, weight and bias; defined before triton_ops imports it

_TRITON_OPS = load_triton_ops("mixerzoo.kernels.decode_linear.triton_ops")


def uses_decode_gemv(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> bool:
    """Whether ``Linear`` takes the GEMV: ``DECODE_GEMV`` on, Triton present, CUDA, one row, one supported dtype for
    x, weight and bias, and no gradient to track."""
    return (
        DECODE_GEMV
        and _TRITON_OPS is not None
        and x.is_cuda
        and x.numel() == weight.shape[-1]
        and x.dtype in DTYPES
        and weight.dtype == x.dtype
        and (bias is None or bias.dtype == x.dtype)
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
    )


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, same state dict) whose single-row CUDA calls without autograd (the decode step
    at batch 1, its head included) take the GEMV when ``DECODE_GEMV`` is on; every other call is ``F.linear``."""

    def forward(self, x: Tensor) -> Tensor:
        if uses_decode_gemv(x, self.weight, self.bias):
            return torch.ops.mixerzoo.decode_linear(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)
