"""The decode step's projections: ``Linear``, an ``nn.Linear`` whose CUDA calls on a few rows without autograd go to
Triton kernels launched with programmatic dependent launch (``triton_ops``): a GEMV for one row (batch 1), a
tensor-core tile over all rows for 2 to ``MAX_ROWS`` (``DECODE_GEMM``).

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
``MIXERZOO_DECODE_GEMV=0`` turns it off. End to end on the H200 (session 13, ``benchmarks/results/session13/call1``,
compiled and graphed step after a 1,024-token prompt): Based-360M's batch-1 step 1.035 → 0.572 ms (5.2 → 2.86× its
floor), Transformer-360M's 1.084 → 0.743 ms; its GPU tests pass there (``tests/test_decode_linear.py -m gpu``).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixerzoo.kernels._checks import load_triton_ops

__all__ = ["DECODE_GEMM", "DECODE_GEMV", "MAX_ROWS", "Linear", "uses_decode_kernel"]

DECODE_GEMV: bool = os.environ.get("MIXERZOO_DECODE_GEMV", "1") != "0"
# 2 to MAX_ROWS rows (batches 2–128) through decode_matmul_kernel: off until measured against cuBLAS on the H200
DECODE_GEMM: bool = os.environ.get("MIXERZOO_DECODE_GEMM", "0") == "1"
MAX_ROWS = 128  # the most rows the kernels take: one [BM = 128, BN] tile of y per program
DTYPES = (torch.float32, torch.bfloat16, torch.float16)  # x, weight and bias; defined before triton_ops imports it

_TRITON_OPS = load_triton_ops("mixerzoo.kernels.decode_linear.triton_ops")


def uses_decode_kernel(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> bool:
    """Whether ``Linear`` takes a decode kernel: Triton present, CUDA, one row with ``DECODE_GEMV`` on or 2 to
    ``MAX_ROWS`` rows with ``DECODE_GEMM`` on, one supported dtype for x, weight and bias, and no gradient to track."""
    rows = x.numel() // max(weight.shape[-1], 1)
    return (
        (DECODE_GEMV if rows == 1 else DECODE_GEMM and 2 <= rows <= MAX_ROWS)
        and _TRITON_OPS is not None
        and x.is_cuda
        and x.shape[-1] == weight.shape[-1]
        and x.dtype in DTYPES
        and weight.dtype == x.dtype
        and (bias is None or bias.dtype == x.dtype)
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
    )


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, same state dict) whose CUDA calls on a few rows without autograd (the decode
    step, its head included) take a decode kernel (``uses_decode_kernel``); every other call is ``F.linear``."""

    def forward(self, x: Tensor) -> Tensor:
        if uses_decode_kernel(x, self.weight, self.bias):
            return torch.ops.mixerzoo.decode_linear(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)
