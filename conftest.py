"""Root pytest configuration: applies to the tests and to the doctests in ``mixerzoo/``."""

from __future__ import annotations

import os

import pytest
import torch

# Triton kernels run on the CPU through its interpreter; it must be on before any kernel is defined.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _doctest_torch(doctest_namespace):
    doctest_namespace["torch"] = torch
