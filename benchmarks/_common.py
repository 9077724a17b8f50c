"""Timing helpers shared by the kernel benchmarks (run as ``python benchmarks/<name>.py`` on a GPU)."""

from __future__ import annotations

import os
import time

import torch
from triton.testing import do_bench


def bench(fn) -> float:
    """Median milliseconds of ``fn()`` (``do_bench`` flushes L2 before each call)."""
    return do_bench(fn, warmup=10, rep=40, return_mode="median")


def copy_bandwidth() -> float:
    """Device-to-device copy of 1 GiB, GB/s counting bytes read + written."""
    x = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    ms = do_bench(lambda: y.copy_(x), warmup=10, rep=50, return_mode="median")
    return 2 * x.numel() / (ms * 1e-3) / 1e9


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ in fp64."""
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def graph_time_us(step, n_sets: int, replays: int = 20) -> float:
    """Microseconds per ``step(i)`` from CUDA-graph replays cycling over ``n_sets`` input sets (cold caches)."""
    for i in range(n_sets):
        step(i)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(n_sets):
            step(i)
    graph.replay()
    torch.cuda.synchronize()
    t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(5):
        t0.record()
        for _ in range(replays):
            graph.replay()
        t1.record()
        torch.cuda.synchronize()
        times.append(t0.elapsed_time(t1) * 1e3 / (replays * n_sets))
    return sorted(times)[len(times) // 2]


PIN_CPU_HELP = (
    "run every thread of the process on this CPU core (as `taskset -c N`): on the H200's VM a call whose host work "
    "hops to an idle core (autograd's device thread, for one) loses hundreds of µs (notes/linear_attention.md, "
    "Session 10)"
)


def pin_cpu(cpu: int | None) -> None:
    """Pin the calling thread, and every thread it starts from now on, to CPU ``cpu`` (None: leave it). Call it
    before CUDA starts: threads started earlier keep their cores."""
    if cpu is None:
        return
    allowed = os.sched_getaffinity(0)
    if cpu not in allowed:
        raise SystemExit(f"--pin-cpu {cpu}: this process may run on CPUs {sorted(allowed)} only; pick one of them")
    os.sched_setaffinity(0, {cpu})


def environment(copy_gbps: float) -> dict:
    """``mixerzoo.bench.environment()`` (command, GPU, versions, date) plus the copy bandwidth measured in the run."""
    from mixerzoo.bench import environment as run_environment

    return {**run_environment(), "copy_GBps": copy_gbps}


def kernel_times(prof, per: int = 1, skip: tuple[str, ...] = ()) -> dict[str, list[float]]:
    """The GPU kernels of a ``torch.profiler`` run: name → ``[ms, launches]``, each divided by ``per`` (e.g. the
    replays profiled). CPU ops are left out (their device total repeats their kernels' time), and so are kernels
    whose name contains one of ``skip`` (case-insensitive)."""
    from torch.autograd import DeviceType

    kernels = {}
    for e in prof.key_averages():
        t = getattr(e, "device_time_total", 0.0)
        if t > 0 and e.device_type != DeviceType.CPU and not any(x.lower() in e.key.lower() for x in skip):
            kernels[e.key] = [t / 1e3 / per, e.count / per]
    return kernels


def warm_up(fns, seconds: float = 2.0) -> None:
    """Run ``fns`` round-robin for ``seconds`` (after one call each: compiles) before the first timed row of a table.
    ``do_bench`` times 40 ms per call site: without this, the first row ran at the GPU's idle clocks (2026-11-28 15:19
    run: d=64 W=64 L=8192 f+b 1.099 ms and FA2 fwd 0.513, against 0.623 / 0.241 in the run before and 0.243 for FA2 in
    the next row of the same run)."""
    live = []
    for fn in fns:
        try:
            fn()
            live.append(fn)
        except Exception:  # a failing implementation is reported by its timed row
            pass
    torch.cuda.synchronize()
    t_end = time.time() + seconds
    while live and time.time() < t_end:
        for fn in live:
            fn()
        torch.cuda.synchronize()


class NoLaunch:
    """Stands in for a Triton kernel in the host-overhead microbenchmarks: ``kernel[grid](...)`` only counts."""

    launches = 0

    def __getitem__(self, grid):
        return self._launch

    @staticmethod
    def _launch(*args, **kwargs) -> None:
        NoLaunch.launches += 1


def host_us(fn, reps: int) -> float:
    """µs per call of ``fn``: 20 warm-up calls (not counted in any launch counter the caller resets after), then the
    best of 5 batch medians of ``reps // 5`` calls (the CPU is shared: noise only adds time)."""
    for _ in range(20):
        fn()
    NoLaunch.launches = 0
    medians = []
    for _ in range(5):
        times = []
        for _ in range(reps // 5):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        medians.append(sorted(times)[len(times) // 2])
    return min(medians) * 1e6


def host_overhead_rows(module, cases, reps: int = 500, profile: str | None = None) -> list[dict]:
    """CPU microbenchmark of a kernel module's Python path: every ``*_kernel`` of ``module`` replaced by a no-op and
    ``module.interpreting`` by ``False`` (the GPU's launch configuration), then each of ``cases`` — ``(label, fn)`` —
    timed as µs per call, the best of 5 batch medians of ``reps // 5`` calls after 20 warm-up calls (the CPU is shared:
    noise only adds time), with the stubbed launches per call. It counts validation, dispatch, autograd, allocations
    and launch-argument set-up; not Triton's own launcher nor the CUDA launch (~5 µs each on the GPU host).
    ``profile``: the label of one case to run 200 times under cProfile (top 25 by own time)."""
    os.environ["TRITON_INTERPRET"] = "1"  # backend="triton" accepts CPU tensors; the launches are stubs
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU ops (the conv's dweight sum) on a shared 2-core machine stalled 4–24 ms in OpenMP
    saved = {n: getattr(module, n) for n in dir(module) if n.endswith("_kernel")}
    saved_interp = getattr(module, "interpreting", None)
    for n in saved:
        setattr(module, n, NoLaunch())
    if saved_interp is not None:
        module.interpreting = lambda: False
    rows = []
    try:
        for label, fn in cases:
            NoLaunch.launches = 0
            us = host_us(fn, reps)
            rows.append(dict(case=label, us=us, launches=NoLaunch.launches / (reps // 5 * 5)))
            print(
                f"host, launches stubbed: {label:36s} {rows[-1]['us']:8.1f} us  ({rows[-1]['launches']:.0f} launches)",
                flush=True,
            )
        if profile is not None:
            import cProfile
            import pstats

            fn = dict(cases)[profile]
            with cProfile.Profile() as prof:
                for _ in range(200):
                    fn()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    finally:
        for n, kern in saved.items():
            setattr(module, n, kern)
        if saved_interp is not None:
            module.interpreting = saved_interp
        torch.set_num_threads(threads)
    return rows


def projection_sets(M: int, N: int, K: int, n_sets: int, dtype=torch.bfloat16) -> tuple[list, list, list, list]:
    """``n_sets`` cold input sets of a projection ``y [M, N] = norm(x) [M, K] · Wᵀ``: x (random), its normalized
    buffer, W (random, scaled by K^-½) and y, on CUDA."""

    def random(*shape: int, scale: float = 1.0) -> list:
        return [torch.randn(*shape, device="cuda", dtype=dtype) * scale for _ in range(n_sets)]

    def empty(*shape: int) -> list:
        return [torch.empty(*shape, device="cuda", dtype=dtype) for _ in range(n_sets)]

    return random(M, K), empty(M, K), random(N, K, scale=K**-0.5), empty(M, N)
