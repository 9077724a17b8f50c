"""Helpers shared by the test modules."""

from __future__ import annotations

import torch


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """‖out − ref‖ / ‖ref‖ in fp64 (NaN anywhere gives inf, so it never passes)."""
    out, ref = out.detach().double(), ref.detach().double()
    if not torch.isfinite(out).all():
        return float("inf")
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


class StandInLauncher:
    """A stand-in for Triton's compiled-kernel launcher (``StandInCuda``): records each call's arguments in
    ``calls`` (``record``) and, with ``touch``, reads every tensor argument's ``data_ptr`` as the C launcher does."""

    calls: list = []
    record = True
    touch = False

    def __init__(self, src, metadata):
        pass

    def __call__(self, *args):
        if StandInLauncher.record:
            StandInLauncher.calls.append(args)
        if StandInLauncher.touch:
            for a in args:
                if isinstance(a, torch.Tensor):
                    a.data_ptr()


class _StandInUtils:
    def load_binary(self, name, kernel, shared, device):
        return object(), "function", 0, 0, 1024  # module, function, registers, spills, max threads

    def get_device_properties(self, device):
        return {"max_shared_mem": 232448, "multiprocessor_count": 132, "max_num_regs": 65536, "warpSize": 32}


class StandInCuda:
    """Enough of Triton's CUDA driver for ``JITFunction.run`` on a machine without a GPU: an sm_90 target (kernels
    compile with the real compiler and ptxas), device 0, stream 7, launches that go to ``StandInLauncher``. Install
    with ``triton.runtime.driver.driver.set_active(StandInCuda())``."""

    launcher_cls = StandInLauncher
    utils = _StandInUtils()

    def get_current_target(self):
        from triton.backends.compiler import GPUTarget

        return GPUTarget("cuda", 90, 32)

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 7

    def get_active_torch_device(self):
        return torch.device("cpu")


def rows_then(n: int, end: str):
    """A child's rows for `mixerzoo.bench.run_in_child`'s tests: ``n`` rows, then the end: ``"ok"``, ``"raise"`` (an
    exception) or ``"exit"`` (the process dies at once, as in a crash)."""
    for i in range(n):
        yield {"i": i}
    if end == "raise":
        raise ValueError("boom")
    if end == "exit":
        import os

        os._exit(3)
