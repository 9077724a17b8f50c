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
sys.path.append("tests")

import torch  # noqa: E402
from _helpers import StandInCuda, StandInLauncher  # noqa: E402  (tests/_helpers.py: the stand-in driver)
from triton.runtime.driver import driver  # noqa: E402

StandInLauncher.record = False
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
        _launch.FAST_LAUNCH, StandInLauncher.touch = fast, touch
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
# one launch of _la_bwd_kernel (22 positional, 28 keyword arguments), its arguments captured from a fwd+bwd
captured = {}


class Capture:
    def __getitem__(self, grid):
        return lambda *a, **k: captured.setdefault("bwd", (grid, a, k))


T._la_bwd_kernel = Capture()
fb()
T._la_bwd_kernel = saved["_la_bwd_kernel"]
grid, a, k = captured["bwd"]
kernel = saved["_la_bwd_kernel"]
_launch.FAST_LAUNCH = True
launcher = _launch.fast(kernel)
binder = kernel.device_caches[0][4]


def per_call_us(f, n: int = 3000) -> float:
    best = 1e9
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


StandInLauncher.touch = False
print(f"one _la_bwd_kernel launch ({len(a)} positional, {len(k)} keyword arguments), µs, best of 5 × 3000:")
for label, f in (
    ("JITFunction.run", lambda: kernel[grid](*a, **k)),
    ("FAST_LAUNCH", lambda: launcher[grid](*a, **k)),
    ("  of which its key", lambda: launcher.key(0, a, k)),
    ("Triton's binder alone", lambda: binder(*a, **k)),
):
    print(f"  {label:44s} {per_call_us(f):6.1f}")
print("FAST_LAUNCH cache per kernel (hits over the runs above, keys):")
for kernel, launcher in _launch._LAUNCHERS.items():
    print(f"  {kernel.__name__:32s} hits {launcher.hits:6d}  keys {len(launcher.cache)}")
