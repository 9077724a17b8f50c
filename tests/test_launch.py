"""The fast launch path (``mixerzoo.kernels._launch``) on the CPU: its cache key is at least as fine as Triton's own
specialization (checked against Triton's binder), and a cache hit hands the compiled kernel's launcher exactly the
arguments ``JITFunction.run`` hands it (a stand-in driver, the kernel compiled for sm_90 by ptxas, no GPU)."""

import random

import pytest
import torch
from _helpers import StandInCuda, StandInLauncher

from mixerzoo.kernels import _launch

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")
# The key and launcher checks need the Triton version the path mirrors; on others fast() is the identity (last test).
mirrored = pytest.mark.skipif(
    not _launch._SUPPORTED, reason=f"FAST_LAUNCH mirrors triton {_launch._KNOWN}, not {triton.__version__}"
)

from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import make_backend  # noqa: E402
from triton.runtime.driver import driver  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402


def _axpy(x, y, out, n, stride, alpha, BLOCK: tl.constexpr, FLAG: tl.constexpr):
    o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = o < n
    a = tl.load(x + o * stride, mask=m)
    b = tl.load(y + o, mask=m)
    if FLAG:
        b = b * 2
    tl.store(out + o, a * alpha + b, mask=m)


KERNEL = JITFunction(_axpy)  # compiled mode whatever TRITON_INTERPRET says: only the binder and compiler are used


def random_call(rng: random.Random) -> tuple[tuple, dict]:
    dtype = rng.choice([torch.float32, torch.bfloat16, torch.float16])
    base = torch.empty(64, dtype=dtype)
    x, y, out = (base[rng.randrange(8) :] for _ in range(3))  # data pointers at assorted offsets
    n = rng.choice([1, 2, 15, 16, 17, 32, 48, 2**31 - 16, 2**31, 2**33 + 16, -1, 0])
    stride = rng.choice([1, 16, 3, 64])
    return (x, y, out, n, stride, rng.choice([0.5, 2.0])), dict(
        BLOCK=rng.choice([16, 32]), FLAG=rng.choice([True, False]), num_warps=rng.choice([1, 4])
    )


@mirrored
def test_key_is_at_least_as_fine_as_tritons_specialization():
    """Calls with equal fast-launch keys must get the same Triton specialization and options (so the same compiled
    kernel): over random pointers' alignments, integers around 1, 16 and the 32-bit bound, dtypes and constexprs."""
    from triton.runtime.jit import create_function_from_signature  # the binder JITFunction.run uses (triton 3.6)

    binder = create_function_from_signature(KERNEL.signature, KERNEL.params, make_backend(GPUTarget("cuda", 90, 32)))
    launcher = _launch.FastLauncher(KERNEL)
    seen: dict = {}
    rng = random.Random(0)
    distinct = set()
    for _ in range(3000):
        args, kwargs = random_call(rng)
        _, spec, options = binder(*args, **kwargs)
        theirs = (tuple(spec), tuple(sorted(options.items())))
        key = launcher.key(0, args, kwargs)
        assert seen.setdefault(key, theirs) == theirs, f"one key, two specializations: {key}"
        distinct.add(theirs)
    assert len(distinct) > 50  # the draw reached many specializations, so the check had something to catch


@pytest.fixture
def stand_in_driver():
    previous = driver._active  # None on a machine without a GPU (reset_active would look for a real driver)
    driver.set_active(StandInCuda())
    try:
        yield
    finally:
        driver.set_active(previous)


@mirrored
def test_hit_passes_the_launcher_what_jitfunction_run_passes(stand_in_driver, monkeypatch):
    """First launch: Triton's path (compiles for sm_90, launches); the same call again: a cache hit, whose launcher
    call equals Triton's in every argument. A new alignment or integer class misses."""
    monkeypatch.setattr(_launch, "FAST_LAUNCH", True)
    monkeypatch.setattr(_launch, "_LAUNCHERS", {})
    launcher = _launch.fast(KERNEL)
    assert isinstance(launcher, _launch.FastLauncher)
    x, y, out = torch.randn(40), torch.randn(40), torch.empty(40)
    call = ((x, y, out, 40, 1, 0.5), dict(BLOCK=16, FLAG=True, num_warps=4))
    StandInLauncher.calls.clear()
    KERNEL[(3,)](*call[0], **call[1])  # Triton's own path, for reference
    launcher[(3,)](*call[0], **call[1])  # miss: through JITFunction.run
    launcher[(3,)](*call[0], **call[1])  # hit
    assert launcher.hits == 1
    reference, miss, hit = StandInLauncher.calls

    def without_hooks(call):  # grid, stream, function, packed metadata | the kernel's arguments
        return call[:6] + call[9:]

    assert without_hooks(miss) == without_hooks(reference)  # the miss went through JITFunction.run

    # Triton passes its (empty) hook chains and a launch-metadata object; the hit passes None for those three, so the
    # launcher calls no hook either way. Everything else is identical.
    assert without_hooks(hit) == without_hooks(reference) and hit[6:9] == (None, None, None)
    assert not reference[7].calls and not reference[8].calls
    assert hit[:4] == (3, 1, 1, 7)  # grid, stream
    StandInLauncher.calls.clear()
    launcher[(3,)](*call[0][:5], alpha=-0.0, **call[1])  # alpha by keyword: -0.0 == 0.0, but its own value goes
    launcher[(3,)](*call[0][:5], alpha=0.0, **call[1])  # ... a hit of the same key, with this call's value
    assert launcher.hits == 2 and [c[-3] for c in StandInLauncher.calls] == [-0.0, 0.0]
    assert str(StandInLauncher.calls[1][-3]) == "0.0" and str(StandInLauncher.calls[0][-3]) == "-0.0"
    launcher[(3,)](x[1:], y, out, 39, 1, 0.5, BLOCK=16, FLAG=True, num_warps=4)  # 4-byte offset: a new key
    launcher[(3,)](x, y, out, 48, 1, 0.5, BLOCK=16, FLAG=True, num_warps=4)  # n % 16 == 0: a new key
    assert launcher.hits == 2 and len(launcher.cache) == 4


def test_fast_is_the_kernel_itself_when_off_or_for_stand_ins(monkeypatch):
    monkeypatch.setattr(_launch, "FAST_LAUNCH", False)
    assert _launch.fast(KERNEL) is KERNEL
    monkeypatch.setattr(_launch, "FAST_LAUNCH", True)
    stand_in = object()
    assert _launch.fast(stand_in) is stand_in  # e.g. the interpreter's kernels, or a test's launch counter
    monkeypatch.setattr(_launch, "_SUPPORTED", False)  # a Triton version the path does not mirror
    assert _launch.fast(KERNEL) is KERNEL


def _double(x):
    return x * 2


def test_conftest_restores_what_an_interpreted_device_call_swapped():
    """conftest's fixture puts `triton.language` back after every test: an interpreted jit function called as a
    device function swaps its builtins and, in triton 3.6, leaves them swapped (a later compile for sm_90 in the same
    process can then fail)."""
    from triton.runtime.interpreter import InterpretedFunction

    from conftest import _LANG_SNAPSHOT, restore_triton_language

    assert InterpretedFunction(_double)(3) == 6
    if triton.__version__ == "3.6.0":  # the version CI pins; a later one may have fixed the leak
        assert not tl.core.is_builtin(tl.core.tensor.__mul__), "triton 3.6 leaves the interpreted operators in place"
    restore_triton_language()
    assert tl.core.is_builtin(tl.core.tensor.__mul__) and tl.core.is_builtin(tl.program_id)
    for obj, attrs in _LANG_SNAPSHOT:
        assert all(vars(obj).get(name) is value for name, value in attrs.items()), obj
