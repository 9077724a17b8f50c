"""Shared test settings: bounded hypothesis profiles, fixed seeds (helpers live in ``_helpers.py``)."""

from __future__ import annotations

import inspect
import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# Triton's interpreter (TRITON_INTERPRET=1) swaps the builtins of `triton.language` (its functions, `tl.tensor`'s
# operators, ...) for interpreted ones while a kernel runs. A jit function called as a device function
# (`InterpretedFunction.__call__`, triton 3.6) swaps them too and never puts them back: in session 11's CI, 298 tests
# ended with 64 names still swapped, and in an earlier run the sm_90 compile of tests/test_launch.py, in the same
# worker process, failed with "'ir.value' object has no attribute 'dtype'" (likely this; not reproduced). So every
# test ends with the language as it was at import.
def _language_objects() -> list:
    import triton.language as tl

    objects = (tl, tl.core, tl.math, tl.core.tensor, getattr(tl.core, "tensor_descriptor_base", None), tl.core.dtype)
    return [obj for obj in objects if obj is not None]


_LANG_SNAPSHOT = [(obj, dict(vars(obj))) for obj in _language_objects()]
_MISSING = object()


def restore_triton_language() -> None:
    """Put back every attribute of `_language_objects()` as it was at import."""
    for obj, attrs in _LANG_SNAPSHOT:
        current = vars(obj)
        for name, value in attrs.items():
            if current.get(name, _MISSING) is not value:
                setattr(obj, name, value)
        # names added since (the interpreter adds some to tl.tensor); a submodule imported since stays
        for name in [n for n, v in current.items() if n not in attrs and not inspect.ismodule(v)]:
            delattr(obj, name)


@pytest.fixture(autouse=True)
def _triton_language_restored():
    yield
    restore_triton_language()
