"""Shared test settings: bounded hypothesis profiles, fixed seeds (helpers live in ``_helpers.py``)."""

from __future__ import annotations

import inspect
import os
import warnings

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
# operators, ...) for interpreted ones while a kernel runs and puts them back afterwards; a jit function called as a
# device function outside a kernel (`InterpretedFunction.__call__`, triton 3.6) swaps them and never puts them back.
# A later compile for a real GPU in the same process (tests/test_launch.py compiles for sm_90) then fails with
# "'ir.value' object has no attribute 'dtype'" (CI, session 11). So every test ends with the language as it was at
# import, and a test that left it swapped is named in a warning.
def _language_objects() -> list:
    import triton.language as tl

    return [tl, tl.core, tl.math, tl.core.tensor, tl.core.tensor_descriptor_base, tl.core.dtype]


_LANG_SNAPSHOT = [(obj, dict(vars(obj))) for obj in _language_objects()]


@pytest.fixture(autouse=True)
def _triton_language_restored(request):
    yield
    changed = []
    for obj, attrs in _LANG_SNAPSHOT:
        current = vars(obj)
        for name, value in attrs.items():
            if current.get(name, _LANG_SNAPSHOT) is not value:
                changed.append(name)
                setattr(obj, name, value)
        # names added since (the interpreter adds some to tl.tensor); a submodule imported since stays
        for name in [n for n, v in current.items() if n not in attrs and not inspect.ismodule(v)]:
            changed.append(name)
            delattr(obj, name)
    if changed:
        warnings.warn(
            f"{request.node.nodeid} left triton.language swapped ({len(changed)} names); restored", stacklevel=1
        )
