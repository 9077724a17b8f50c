"""A shorter host path for launching ``@triton.jit`` kernels (``FAST_LAUNCH``; on by default).

Why: Triton's ``JITFunction.run`` does a fixed amount of Python work per launch before the C launcher: it reads its
knobs, binds every argument into a dict, specializes each one (dtype, 16-byte alignment, integer divisibility),
stringifies the options and hashes the whole specialization to find the compiled kernel. For ``_la_bwd_kernel``
(50 arguments) that is 29.9 µs per launch on the CPU machine, the binder alone 12.9 µs (a stand-in driver with a
no-op launcher, ``benchmarks/results/session8/``); the H200's host took ~80 µs per launch in session 7, and a
linear-attention fwd+bwd of 7 launches at L=4096 is bound by its host there. With this path: 14.0 µs per launch,
and 178 → 94 µs (run 3) or 193 → 105 µs (run 5) of launch work per Taylor fwd+bwd (``launch_cost.log``).

How: ``fast(kernel)[grid](*args, **kwargs)`` keys its own cache on what Triton's specialization depends on, computed
in Python and at least as fine (tensor dtype and data-pointer address mod 16, integer value mod 16, equality to 1 and
integer width class, every constexpr, float and option by value, the current device), and sends a hit straight to
the compiled kernel's launcher, with the same arguments ``JITFunction.run`` passes it. A miss (or a launch hook set,
e.g. by a profiler) goes through ``JITFunction.run``, which compiles if needed and launches, and whose compiled kernel
the cache then keeps. ``tests/test_launch.py`` checks on the CPU, against Triton's own binder, that equal keys imply
equal specializations.

On the H200 (session 9, ``benchmarks/results/session9/``): the LA, window and conv GPU tests pass with it, and the
host time of a Taylor fwd+bwd at 4096 (no sync, back to back) went 921 → 817 µs and 1169 → 993 µs in two rounds
(autograd's device thread on; 508 → 428 and 930 → 766 µs with the backward on the calling thread).

Only for the Triton versions in ``_KNOWN`` (whose ``JITFunction.run`` this mirrors); elsewhere ``fast`` returns the
kernel itself. ``MIXERZOO_FAST_LAUNCH=0`` turns it off.
"""

from __future__ import annotations

import os

import torch

from mixerzoo.kernels._checks import interpreting

FAST_LAUNCH: bool = os.environ.get("MIXERZOO_FAST_LAUNCH", "1") != "0"

_KNOWN = ("3.6.",)  # Triton versions whose JITFunction.run / CompiledKernel.run call this mirrors
MAX_KEYS = 4096  # per kernel; a cache past this is emptied (e.g. NaN float arguments, which never compare equal)

try:
    import triton
    from triton import knobs as _knobs
    from triton.runtime.driver import driver as _driver

    _SUPPORTED = triton.__version__.startswith(_KNOWN)
except ImportError:  # no triton: fast() is the identity
    _SUPPORTED = False


_FLOAT = "fp32"

try:  # griddepcontrol (programmatic dependent launch), Triton ≥ 3.4
    from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait
except ImportError:
    gdc_launch_dependents = gdc_wait = None

# Programmatic dependent launch of the decode steps (sm_90+): a step's programs may be scheduled while the kernel
# before it finishes; they wait for it (``griddepcontrol.wait``) before any memory access. ``STEP_PDL``: 0 off, 1 that
# wait (the default), 2 the wait and then ``griddepcontrol.launch_dependents`` (the kernel after may launch at once
# instead of when this one's programs exit). H200, session 12 (``results/session12/call3``, a CUDA graph of consecutive
# steps, µs per step for modes 0 / 1 / 2): window step (W=64, d=128, H=16) 3.16 / 2.89 / 2.86 at B=1, 6.69 / 6.06 /
# 7.06 at B=16, 12.42 / 11.82 / 11.81 at B=64, 36.27 / 35.66 / 35.68 at B=256; conv step (C=4096) 1.65 / 1.24 / 1.26,
# 1.79 / 1.37 / 1.38, 3.19 / 2.58 / 2.70, 6.52 / 5.91 / 6.39; outputs and states bit-equal in every mode.
# ``MIXERZOO_STEP_PDL`` sets it.
STEP_PDL: int = int(os.environ.get("MIXERZOO_STEP_PDL", "1"))
_PDL_DEVICES: dict = {}  # device index -> compute capability ≥ 9.0


def pdl_kwargs(t: torch.Tensor) -> dict:
    """The PDL keywords of a decode step's launch on ``t``'s device (its kernel's ``PDL`` and Triton's
    ``launch_pdl``): none under the interpreter (inline PTX), before sm_90, without ``griddepcontrol`` in this
    Triton, or with ``STEP_PDL`` 0."""
    if not STEP_PDL or gdc_wait is None or t.device.type != "cuda" or interpreting():
        return {}
    i = t.device.index if t.device.index is not None else torch.cuda.current_device()
    ok = _PDL_DEVICES.get(i)
    if ok is None:
        ok = _PDL_DEVICES[i] = torch.cuda.get_device_capability(i)[0] >= 9
    return dict(PDL=STEP_PDL, launch_pdl=True) if ok else {}


def arg_key(a):
    """What Triton's specialization of a runtime argument can depend on, or finer; anything else by value."""
    t = type(a)
    if t is int:  # not bool
        if -(2**31) <= a < 2**31:
            return (a & 15, a == 1)
        return (a & 15, a == 1, 64 if -(2**63) <= a < 2**63 else 65)
    if t is float:
        return _FLOAT  # Triton passes every float as fp32, whatever its value
    if isinstance(a, torch.Tensor):
        return (a.dtype, a.data_ptr() & 15)
    return a


class FastLauncher:
    """``launcher[grid](*args, **kwargs)`` for one ``JITFunction``: see the module docstring."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.names = tuple(fn.arg_names)
        self.constexpr = tuple(p.is_constexpr for p in fn.params)
        # for n positional arguments: whether one of them is a constexpr (keyed by value, not by arg_key)
        self.positional_constexpr = [any(self.constexpr[:n]) for n in range(len(self.constexpr) + 1)]
        self.cache: dict = {}
        self.hits = 0  # launches that skipped JITFunction.run (tests read it)

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.launch(grid, args, kwargs)

    def key(self, device: int, args: tuple, kwargs: dict) -> tuple:
        """The cache key of a launch: what Triton's own cache key depends on, or finer (the module docstring);
        the debug and instrumentation knobs too, as ``JITFunction.run`` puts them in its options."""
        if self.positional_constexpr[len(args)]:
            const = self.constexpr
            pos = tuple(a if const[i] else arg_key(a) for i, a in enumerate(args))
        else:
            pos = tuple(map(arg_key, args))
        # keyword arguments by value (constexprs, options, and runtime floats or integers: finer than Triton's key);
        # a tensor among them is not cached (``launch``)
        return (
            device,
            pos,
            tuple(kwargs),
            tuple(kwargs.values()),
            _knobs.runtime.debug,
            _knobs.compilation.instrumentation_mode,
        )

    def launch(self, grid, args: tuple, kwargs: dict):
        rt = _knobs.runtime
        if callable(grid) or _hooked(rt.launch_enter_hook) or _hooked(rt.launch_exit_hook):
            # a grid computed from the bound arguments, or hooks that want JITFunction.run's launch metadata
            return self.fn[grid](*args, **kwargs)
        active = _driver.active
        device = active.get_current_device()
        key = self.key(device, args, kwargs)
        try:
            hit = self.cache.get(key)
        except TypeError:  # an unhashable keyword argument: Triton's path decides what it means
            return self.fn[grid](*args, **kwargs)
        if hit is None:
            kernel = self.fn[grid](*args, **kwargs)
            tail = self.names[len(args) :]
            cacheable = all(n in kwargs for n in tail) and not any(isinstance(v, torch.Tensor) for v in kwargs.values())
            if cacheable:  # every parameter given (so the launcher's argument list is known), no tensor keyed by value
                if len(self.cache) >= MAX_KEYS:
                    self.cache.clear()
                self.cache[key] = (kernel, tail)
            return kernel
        kernel, tail = hit
        g1 = grid[1] if len(grid) > 1 else 1
        g2 = grid[2] if len(grid) > 2 else 1
        stream = active.get_current_stream(device)
        # JITFunction.run's call: grid, stream, function, packed metadata, launch metadata and the two hooks (None:
        # no hook is set, so the launcher calls none), then every parameter in signature order (the launcher skips the
        # constexprs)
        # (the keyword values are this call's: equal keys can hold values that compare equal but differ, 0.0 and -0.0)
        kernel.run(grid[0], g1, g2, stream, kernel.function, kernel.packed_metadata, None, None, None,
                   *args, *[kwargs[n] for n in tail])  # fmt: skip
        self.hits += 1
        return kernel


def _hooked(hook) -> bool:
    """Whether a launch hook is set: Triton 3.6's are ``HookChain`` objects, empty unless a tool (a profiler) adds a
    hook; older ones are None when unset."""
    return hook is not None and bool(getattr(hook, "calls", True))


_LAUNCHERS: dict = {}


def fast(kernel):
    """``kernel`` itself, or its ``FastLauncher`` where ``FAST_LAUNCH`` is on, Triton is a known version, torch.compile
    is not tracing, and ``kernel`` is a compiled-mode ``JITFunction`` (not the interpreter's, nor a test's stand-in)."""
    if not (FAST_LAUNCH and _SUPPORTED) or torch.compiler.is_compiling():  # dynamo traces Triton's own launches
        return kernel
    if type(kernel) is not triton.runtime.jit.JITFunction:
        return kernel
    launcher = _LAUNCHERS.get(kernel)
    if launcher is None:
        launcher = _LAUNCHERS[kernel] = FastLauncher(kernel)
    return launcher


_COUNTERS: dict[tuple[str, torch.device], torch.Tensor] = {}
_COUNTERS_OUTGROWN: list[torch.Tensor] = []


def arrival_counters(owner: str, device: torch.device, n: int) -> torch.Tensor:
    """At least ``n`` int32 arrival counters for ``owner``'s decode kernel on ``device``: zero between launches (the
    last program to arrive at a counter resets it), so a step's programs can elect one of them to finish the work
    without a second launch. One buffer per owner and device, grown on demand; the launches that share it must run
    in stream order (as a model's layers do). Allocate it before a CUDA-graph capture (any eager step does), or the
    capture records its memset."""
    buf = _COUNTERS.get((owner, device))
    if buf is None or buf.numel() < n:
        if buf is not None:  # a captured CUDA graph may still point at it: never free it
            _COUNTERS_OUTGROWN.append(buf)
        buf = torch.zeros(max(n, 1024), dtype=torch.int32, device=device)
        _COUNTERS[(owner, device)] = buf
    return buf
