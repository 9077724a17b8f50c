"""Host cost of Triton's launch path on a CPU-only machine: one Taylor fwd+bwd (B=4, L=4096, H=16, d′=16, dv=64, bf16,
chunked mode, CPU tensors) through the real ``JITFunction.run`` with the kernels compiled for sm_90 (ptxas), where a
stand-in driver replaces the GPU: its "launcher" does nothing, or reads every tensor's ``data_ptr`` as the C launcher
does. Compared with the same call with every launch stubbed (the Python path alone) and with ``FAST_LAUNCH``.

    python3 benchmarks/results/session8/launch_cost.py      # from the repository root; ~1 min (compiles first)
"""

import os
import sys
import time

os.environ["TRITON_INTERPRET"] = "0"
sys.path.insert(0, ".")
sys.path.append("benchmarks")

import torch  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.runtime.driver import driver  # noqa: E402

TOUCH = False  # the stand-in launcher reads every tensor argument's data_ptr


class _Utils:
    def load_binary(self, name, kernel, shared, device):
        return object(), object(), 0, 0, 1024  # module, function, registers, spills, max threads

    def get_device_properties(self, device):
        return {"max_shared_mem": 232448, "multiprocessor_count": 132, "max_num_regs": 65536, "warpSize": 32}


class _Launcher:
    def __init__(self, src, metadata):
        pass

    def __call__(self, gx, gy, gz, stream, function, packed_metadata, launch_metadata, enter, exit_, *args):
        if TOUCH:
            for a in args:
                if isinstance(a, torch.Tensor):
                    a.data_ptr()


class StandInCuda:
    """Enough of Triton's CUDA driver for JITFunction.run: an sm_90 target, device 0, stream 0, no-op launches."""

    launcher_cls = _Launcher

    def __init__(self):
        self.utils = _Utils()

    def get_current_target(self):
        return GPUTarget("cuda", 90, 32)

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_active_torch_device(self):
        return torch.device("cpu")

    def is_active(self):
        return True


driver.set_active(StandInCuda())

import mixerzoo.kernels._checks as checks  # noqa: E402

checks.interpreting = lambda: True  # let backend="triton" take CPU tensors
from _common import NoLaunch  # noqa: E402

from mixerzoo.feature_maps import feature_map  # noqa: E402
from mixerzoo.kernels import _launch  # noqa: E402
from mixerzoo.kernels.linear_attention import linear_attention  # noqa: E402
from mixerzoo.kernels.linear_attention import triton_ops as T  # noqa: E402

T._INTERPRET = False  # the GPU's launch configuration
T.FORCE_MODE = "chunk"
B, H, DK, DV, L = 4, 16, 16, 64, 4096
fm = feature_map("taylor", DK)
leaves = [torch.randn(B, L, H, n, dtype=torch.bfloat16).requires_grad_() for n in (DK, DK, DV)]
do = torch.randn(B, L, H, DV, dtype=torch.bfloat16)


def fb():
    torch.autograd.grad(linear_attention(*leaves, fm, backend="triton"), leaves, do)


def best_us(reps: int = 100, rounds: int = 5) -> float:
    for _ in range(20):
        fb()
    best = 1e9
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            fb()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best * 1e6


t0 = time.time()
fb()
print(f"first call (compiles 7 kernels for sm_90): {time.time() - t0:.1f} s", flush=True)
saved = {n: getattr(T, n) for n in dir(T) if n.startswith("_la_") and n.endswith("_kernel")}
MODES = {  # (FAST_LAUNCH, launcher reads data_ptrs, launches stubbed)
    "JITFunction.run, launcher no-op": (False, False, False),
    "FAST_LAUNCH, launcher no-op": (True, False, False),
    "JITFunction.run, launcher reads data_ptrs": (False, True, False),
    "FAST_LAUNCH, launcher reads data_ptrs": (True, True, False),
    "launches stubbed (the Python path alone)": (False, False, True),
}
rows = {label: [] for label in MODES}
for _round in range(8):  # the modes interleaved: this machine's speed drifts by tens of percent
    for label, (fast, touch, stub) in MODES.items():
        _launch.FAST_LAUNCH, TOUCH = fast, touch
        for n, kernel in saved.items():
            setattr(T, n, NoLaunch() if stub else kernel)
        NoLaunch.launches = 0
        rows[label].append(best_us(reps=50, rounds=3))
for n, kernel in saved.items():
    setattr(T, n, kernel)
_launch.FAST_LAUNCH = True
NoLaunch.launches = 0
for n in saved:
    setattr(T, n, NoLaunch())
fb()
launches = NoLaunch.launches
for n, kernel in saved.items():
    setattr(T, n, kernel)
print(f"µs per fwd+bwd ({launches} launches): min and median over 8 interleaved rounds (each the best of 3 × 50 calls)")
for label, ts in rows.items():
    ts = sorted(ts)
    print(f"  {label:44s} min {ts[0]:6.0f}  median {ts[len(ts) // 2]:6.0f}")
print("FAST_LAUNCH cache per kernel (hits over the runs above, keys):")
for kernel, launcher in _launch._LAUNCHERS.items():
    print(f"  {kernel.__name__:32s} hits {launcher.hits:6d}  keys {len(launcher.cache)}")
