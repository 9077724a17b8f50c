"""Benchmark the fused linear-attention kernels against FLA 0.6.0 and SDPA causal attention on one GPU.

Writes ``<out>/linear_attention.{json,md}`` (copied to ``benchmarks/results/``): the command, GPU, versions,
the card's measured ceilings, medians from ``triton.testing.do_bench`` (bf16 random-normal inputs; fwd+bwd
= forward plus ``autograd.grad`` of a random upstream gradient), peers measured in the same run, ratios
against the issue's targets, and decode steps timed by CUDA-graph replay over rotating state sets.

Usage: ``python benchmarks/linear_attention.py --out DIR [--quick] [--algo auto|serial|parallel] [--sections ...]
[--pin-cpu N]``.
``--algo`` sets the chunked mode's state algorithm for every section (``triton_ops.ALGORITHM``); the ``algo``
section times both algorithms side by side (chunked mode forced, Taylor/PosELU/Performer/CosFormer at L = 4096 and
16384, PosELU/CosFormer also at 8192, with a per-kernel profile of one Taylor fwd+bwd each; Taylor also with one
default changed per row, ``TAYLOR_ALGO_ROWS``): ``--sections algo`` runs it alone in ~1.5 min. The ``MIXERZOO_LA_*``
environment variables of ``triton_ops`` set the defaults for every section.
The default ``--algo`` is ``auto`` (``triton_ops.PARALLEL_STATES_MIN_DI``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback

import torch
import triton
from triton.testing import do_bench

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# the script's folder, benchmarks/, is on sys.path
from _common import PIN_CPU_HELP, NoLaunch, host_us, pin_cpu  # noqa: E402

from mixerzoo.feature_maps import feature_map  # noqa: E402
from mixerzoo.kernels.linear_attention import (  # noqa: E402
    linear_attention,
    linear_attention_reference,
    linear_attention_step,
)
from mixerzoo.kernels.linear_attention import triton_ops as T  # noqa: E402

DEV = "cuda"
B, H, DV, DK = 4, 16, 64, 16
LENGTHS = [1024, 2048, 4096, 8192, 16384]
MAPS = {
    "taylor": dict(),
    "poselu": dict(),
    "relu": dict(),
    "performer": dict(m=64),
    "cosformer": dict(max_len=32768),
}
# FLA chunk_linear_attn(normalize=True), K = V = 64, elu+1 outside, fwd+bwd ms: anchors_h200.md section D (another
# run on another H200); used only where this run did not time FLA's chunk kernel itself.
ANCHOR_FLA_CHUNK_K64 = {8192: 2.649, 16384: 3.430}
# SDPA cuDNN causal, d=64, B=4, H=16, fwd+bwd ms: anchors_h200.md section B; used only where this run has none.
ANCHOR_SDPA_CUDNN_D64 = {4096: 1.282, 8192: 4.686, 16384: 17.763}
RESULTS: dict = {"meta": {}, "ceilings": {}, "train": [], "variants": [], "decode": [], "checks": [], "errors": []}


def bench(fn, rep=60) -> float:
    """Median ms of ``fn`` (do_bench flushes L2 before each call)."""
    return float(do_bench(fn, warmup=15, rep=rep, return_mode="median"))


def note_error(where: str, e: BaseException) -> None:
    msg = f"{where}: {type(e).__name__}: {e}"
    print("ERROR", msg, flush=True)
    RESULTS["errors"].append(msg + "\n" + traceback.format_exc(limit=3))


def ceilings() -> None:
    n = 1 << 30  # 1 GiB
    a = torch.empty(n, dtype=torch.uint8, device=DEV).random_(0, 255)
    b = torch.empty_like(a)
    t = bench(lambda: b.copy_(a))
    RESULTS["ceilings"]["copy_GBps"] = 2 * n / t / 1e6
    x = torch.randn(8192, 8192, device=DEV, dtype=torch.bfloat16)
    y = torch.randn(8192, 8192, device=DEV, dtype=torch.bfloat16)
    t = bench(lambda: x @ y)
    RESULTS["ceilings"]["matmul_TFLOPs"] = 2 * 8192**3 / t / 1e9
    print("ceilings", RESULTS["ceilings"], flush=True)


def make_inputs(L: int, dk: int = DK, dv: int = DV, b: int = B, seed: int = 0):
    g = torch.Generator(device=DEV).manual_seed(seed)
    q = torch.randn(b, L, H, dk, device=DEV, dtype=torch.bfloat16, generator=g)
    k = torch.randn(b, L, H, dk, device=DEV, dtype=torch.bfloat16, generator=g)
    v = torch.randn(b, L, H, dv, device=DEV, dtype=torch.bfloat16, generator=g)
    do = torch.randn(b, L, H, dv, device=DEV, dtype=torch.bfloat16, generator=g)
    return q, k, v, do


def time_fwd_bwd(f, leaves, do, caller: bool = False) -> tuple[float, float] | tuple[float, float, float]:
    """``(fwd ms, fwd+bwd ms)``; ``caller``: also fwd+bwd with the backward on the calling thread (third)."""
    with torch.no_grad():
        t_f = bench(lambda: f(*leaves))
    req = [x.detach().requires_grad_() for x in leaves]

    def fb():
        o = f(*req)
        torch.autograd.grad(o, req, do)

    t_fb = bench(fb)
    if not caller:
        return t_f, t_fb
    # autograd runs the backward of CUDA tensors on its device thread, a hand-off that costs the host a fixed time per
    # backward call (autograd_handoff); a model pays it once per step, a per-op timing once per op
    with torch.autograd.set_multithreading_enabled(False):
        t_fb_caller = bench(fb)
    return t_f, t_fb, t_fb_caller


def autograd_handoff() -> dict:
    """Host µs per ``autograd.grad`` of one tiny CUDA op (4 KB), calls back to back, with autograd's device thread
    and with the backward on the calling thread, alternated over 3 rounds (minimum per mode): the engine's fixed
    cost per backward call on this host, which the fwd+bwd rows of a host-bound shape include."""
    x = torch.randn(1024, device=DEV, requires_grad=True)
    g = torch.ones(1024, device=DEV)
    out = {"device_thread": [], "calling_thread": []}
    for _round in range(3):
        for mode, threads in (("device_thread", True), ("calling_thread", False)):
            with torch.autograd.set_multithreading_enabled(threads):
                for _ in range(20):
                    torch.autograd.grad(x * 2, x, g)
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(200):
                    torch.autograd.grad(x * 2, x, g)
                out[mode].append((time.perf_counter() - t0) / 200 * 1e6)
                torch.cuda.synchronize()
    res = {mode: min(ts) for mode, ts in out.items()}
    print(f"autograd hand-off, host µs per tiny fwd+bwd: {res}", flush=True)
    return res


def record(kind: str, impl: str, L: int, t_f: float | None, t_fb: float | None, t_fbc: float | None = None,
           **extra) -> None:  # fmt: skip
    """A training row; ``t_fbc``: fwd+bwd with the backward on the calling thread."""
    row = dict(kind=kind, impl=impl, L=L, fwd_ms=t_f, fwdbwd_ms=t_fb, fwdbwd_caller_ms=t_fbc, **extra)
    RESULTS["train"].append(row)
    print(
        f"{kind:10s} {impl:32s} L={L:6d} fwd {t_f or float('nan'):8.3f} ms  fwd+bwd {t_fb or float('nan'):8.3f} ms"
        f"  (backward on the calling thread {t_fbc or float('nan'):8.3f} ms)",
        flush=True,
    )


def floors(kind: str, D: int, L: int) -> dict:
    """FLOPs of the chunked algorithm (C = 64) over the matmul rate, minimal bytes over copy bandwidth."""
    flops_fwd = B * H * L * (4 * D * DV + 2 * 64 * (DK + DV))
    bytes_fwd = B * L * H * (2 * DK + 2 * DV) * 2
    c = RESULTS["ceilings"]
    f_fwd = max(flops_fwd / (c["matmul_TFLOPs"] * 1e9), bytes_fwd / (c["copy_GBps"] * 1e6))
    f_fb = max(3 * flops_fwd / (c["matmul_TFLOPs"] * 1e9), 3 * bytes_fwd / (c["copy_GBps"] * 1e6))
    return dict(floor_fwd_ms=f_fwd, floor_fwdbwd_ms=f_fb)


# The state widths D of MAPS' non-Taylor maps (PosELU and ReLU 16, CosFormer 32, Performer 64), widest first: the
# issue compares each with FLA's chunk kernel at its own D. On the H200 with triton 3.6, D=16 (session 1, session 9)
# and D=32 (session 9) end in an illegal memory access, so each D runs in a child process of its own, which times FLA's
# fused_chunk_linear_attn (runs at every D here; session 10) and, at D ≥ 64 only, the chunk kernel.
FLA_CHUNK_D = (64, 16, 32)


def section_train(quick: bool, fla_chunk: bool = False, fla_chunk_d: tuple[int, ...] = FLA_CHUNK_D) -> None:
    lengths = LENGTHS[2:] if quick else LENGTHS
    have_fla = False
    try:
        from fla.ops.based import fused_chunk_based, parallel_based

        have_fla = True
        RESULTS["meta"]["fla"] = getattr(sys.modules["fla"], "__version__", "?")
    except Exception as e:  # noqa: BLE001
        note_error("import fla", e)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    RESULTS["meta"]["autograd_handoff_us"] = autograd_handoff()
    for L in lengths:
        q, k, v, do = make_inputs(L)
        for name, opts in MAPS.items():
            fm = feature_map(name, DK, **opts).to(DEV)
            try:
                ts = time_fwd_bwd(lambda q, k, v, fm=fm: linear_attention(q, k, v, fm), (q, k, v), do, caller=True)
                record(name, "mixerzoo", L, *ts, D=fm.out_dim, mode="auto", **floors(name, fm.out_dim, L))
            except Exception as e:  # noqa: BLE001
                note_error(f"mixerzoo {name} L={L}", e)
        if have_fla:
            for impl, fn in (("fla.parallel_based", parallel_based), ("fla.fused_chunk_based", fused_chunk_based)):
                try:
                    ts = time_fwd_bwd(
                        lambda q, k, v, fn=fn: fn(q, k, v, scale=DK**-0.5, use_norm=True), (q, k, v), do, caller=True
                    )
                    record("taylor", impl, L, *ts)
                except Exception as e:  # noqa: BLE001
                    note_error(f"{impl} L={L}", e)
        qa = torch.randn(B, H, L, 64, device=DEV, dtype=torch.bfloat16)
        ka, va, doa = torch.randn_like(qa), torch.randn_like(qa), torch.randn_like(qa)
        for impl, backend in (
            ("sdpa.flash(d=64)", SDPBackend.FLASH_ATTENTION),
            ("sdpa.cudnn(d=64)", SDPBackend.CUDNN_ATTENTION),
        ):
            try:

                def sd(a, b, c, backend=backend):
                    with sdpa_kernel(backend):
                        return torch.nn.functional.scaled_dot_product_attention(a, b, c, is_causal=True)

                ts = time_fwd_bwd(sd, (qa, ka, va), doa, caller=True)
                record("softmax", impl, L, *ts)
            except Exception as e:  # noqa: BLE001
                note_error(f"{impl} L={L}", e)
        del qa, ka, va, doa
    if have_fla and fla_chunk:
        fla_chunk_rows([L for L in lengths if L >= 8192], fla_chunk_d)


def fla_chunk_rows(lengths: list[int], widths: tuple[int, ...] = FLA_CHUNK_D) -> None:
    """FLA's ``fused_chunk_linear_attn`` and ``chunk_linear_attn`` (normalizer included) on features materialized
    outside, for each D of ``widths`` (default ``FLA_CHUNK_D``) at ``lengths``: one child process per D
    (``--fla-chunk-child``), since a fault in FLA's kernels ends the CUDA context of the process it happens in.
    Autotunes for ~2 min per new D and kernel (not timed)."""
    for d in widths:
        cmd = [sys.executable, os.path.abspath(__file__), "--fla-chunk-child", str(d),
               "--child-L", ",".join(map(str, lengths))]  # fmt: skip
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=420)
        except subprocess.TimeoutExpired:
            note_error(f"fla chunk_linear_attn D={d}", TimeoutError("child process ran past 420 s"))
            continue
        for line in res.stdout.splitlines():
            if line.startswith("ROW "):
                r = json.loads(line[4:])
                record(
                    "features", f"fla.{r.get('kernel', 'chunk_linear_attn')}(D={d})", r["L"], r["fwd_ms"],
                    r["fwdbwd_ms"], r.get("fwdbwd_caller_ms"), D=d,
                )  # fmt: skip
            elif line.startswith("ERROR "):
                msg = line[6:]
                print("ERROR", msg, flush=True)
                RESULTS["errors"].append(msg)
        if res.returncode != 0 and "ERROR " not in res.stdout:
            note_error(
                f"fla chunk_linear_attn D={d}", RuntimeError(f"child exited {res.returncode}: {res.stderr[-800:]}")
            )


def fla_chunk_child(d: int, lengths: list[int]) -> None:
    """The child process of ``fla_chunk_rows``: FLA's ``fused_chunk_linear_attn`` (which runs at every D here), then
    ``chunk_linear_attn`` at D ≥ 64 only (it faults at D=16 and 32 on the H200 stack of sessions 1–11); prints ``ROW
    {json}`` per kernel and length, or ``ERROR ...`` and ends the process at the first failure without its teardown
    (after an illegal memory access the CUDA context is gone, and session 11's child hung in its exit until the
    call's time limit)."""
    from fla.ops.linear_attn import chunk_linear_attn, fused_chunk_linear_attn

    def inputs(L: int) -> tuple:
        """elu+1 features of width d, the benchmark's v and upstream gradient: ``(leaves, do)``."""
        _, _, v, do = make_inputs(L)
        g = torch.Generator(device=DEV).manual_seed(d)
        x = torch.randn(2, B, L, H, d, device=DEV, dtype=torch.bfloat16, generator=g)
        pq, pk = ((torch.nn.functional.elu(t.float()) + 1).to(torch.bfloat16) for t in x)
        return (pq, pk, v), do

    kernels = [("fused_chunk_linear_attn", fused_chunk_linear_attn)]
    if d >= 64:
        kernels.append(("chunk_linear_attn", chunk_linear_attn))
    per_length = {L: inputs(L) for L in lengths}  # built once, shared by the kernels
    for name, fn in kernels:

        def op(a, b, c, fn=fn):
            return fn(a, b, c, scale=1.0, normalize=True)[0]

        for L in lengths:
            try:
                t_f, t_fb, t_fbc = time_fwd_bwd(op, *per_length[L], caller=True)
                row = dict(kernel=name, L=L, fwd_ms=t_f, fwdbwd_ms=t_fb, fwdbwd_caller_ms=t_fbc)
                print("ROW " + json.dumps(row), flush=True)
            except Exception as e:  # noqa: BLE001
                print(f"ERROR fla {name} D={d} L={L}: {type(e).__name__}: {str(e).splitlines()[0]}", flush=True)
                sys.stderr.flush()
                os._exit(1)


def section_variants(quick: bool, crossover_lengths: list[int] | None = None) -> None:
    """Chunk size for Taylor, and the quadratic/chunked crossover (fwd+bwd) for Taylor and PosELU; with
    ``crossover_lengths`` only the crossover, at those lengths."""
    for L in (4096, 16384) if crossover_lengths is None else ():
        q, k, v, do = make_inputs(L)
        fm = feature_map("taylor", DK).to(DEV)
        for bt in (64, 128):
            T.FORCE_CHUNK, T.FORCE_MODE = bt, "chunk"
            try:
                t_f, t_fb = time_fwd_bwd(lambda q, k, v, fm=fm: linear_attention(q, k, v, fm), (q, k, v), do)
                RESULTS["variants"].append(
                    dict(what="chunk_size", kind="taylor", L=L, BT=bt, fwd_ms=t_f, fwdbwd_ms=t_fb)
                )
                print(f"taylor BT={bt} L={L} fwd {t_f:.3f} fwd+bwd {t_fb:.3f}", flush=True)
            except Exception as e:  # noqa: BLE001
                note_error(f"variant BT={bt} L={L}", e)
    T.FORCE_CHUNK = None
    for name in ("taylor", "poselu"):
        fm = feature_map(name, DK).to(DEV)
        for L in crossover_lengths or (64, 128, 256, 512, 1024, 2048):
            q, k, v, do = make_inputs(L)
            for mode in ("chunk", "parallel"):
                T.FORCE_MODE = mode
                try:
                    t_f, t_fb = time_fwd_bwd(lambda q, k, v, fm=fm: linear_attention(q, k, v, fm), (q, k, v), do)
                    RESULTS["variants"].append(
                        dict(what="crossover", kind=name, L=L, mode=mode, fwd_ms=t_f, fwdbwd_ms=t_fb)
                    )
                    print(f"{name} {mode:8s} L={L} fwd {t_f:.3f} fwd+bwd {t_fb:.3f}", flush=True)
                except Exception as e:  # noqa: BLE001
                    note_error(f"crossover {name} {mode} L={L}", e)
    T.FORCE_MODE = None


def kernel_profile(f, leaves, do) -> dict[str, float]:
    """GPU ms per kernel name over one fwd+bwd (after a warm-up call), from torch.profiler: summed over its launches
    (``kernel_calls`` gives their number: the parallel algorithm's chunk-state and scan kernels run 3×)."""
    from torch.profiler import ProfilerActivity, profile

    req = [x.detach().requires_grad_() for x in leaves]
    torch.autograd.grad(f(*req), req, do)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        torch.autograd.grad(f(*req), req, do)
        torch.cuda.synchronize()
    out: dict[str, float] = {}
    for e in prof.key_averages():
        t = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0.0)
        if t > 0 and e.key.startswith("_la_"):
            out[e.key] = out.get(e.key, 0.0) + t / 1e3
            KERNEL_CALLS[e.key] = KERNEL_CALLS.get(e.key, 0) + e.count
    return out


KERNEL_CALLS: dict[str, int] = {}  # launches per kernel name in the last ``kernel_profile`` (reset by its caller)


# The algo section's rows: module settings of ``triton_ops`` on top of its defaults (``parallel`` = the defaults with the
# parallel algorithm). The Taylor-only rows isolate one choice each.
ALGO_ROWS = {
    "serial": dict(ALGORITHM="serial"),
    "serial-recompute": dict(ALGORITHM="serial", SAVE_FWD_STATES=False),  # the backward recomputes the states
    "parallel": dict(ALGORITHM="parallel"),
    "parallel-nosplit": dict(ALGORITHM="parallel", BWD_SPLIT=False),  # dq and dk/dv in one backward program
    "parallel-tf32": dict(ALGORITHM="parallel", DOTS_BF16=False),  # tf32 products instead of bf16 ones
    "parallel-2launch": dict(ALGORITHM="parallel", BWD_ONE_LAUNCH="none"),  # dq and dk/dv as two launches
    "parallel-1launch": dict(ALGORITHM="parallel", BWD_ONE_LAUNCH="all"),  # ... as one launch, every map
}
NON_TAYLOR_ALGO_ROWS = {
    "parallel-loops": dict(ALGORITHM="parallel", BWD_TILE_PASS=False),  # the backward's feature tiles in two loops
}
TAYLOR_ALGO_ROWS = {
    "parallel-tiles": dict(ALGORITHM="parallel", CHUNK_STATE="tiles"),  # the per-feature-tile chunk-state kernel
    "parallel-fp32S": dict(ALGORITHM="parallel", FWD_STATES_BF16=False),  # fp32 forward states
    "parallel-full": dict(ALGORITHM="parallel", TAYLOR_SYMMETRIC=False),  # the full d′×d′ internal layout
    "parallel-recompute": dict(ALGORITHM="parallel", SAVE_FWD_STATES=False),  # the backward recomputes the states
}


def section_algo(quick: bool) -> None:
    """The chunked mode's two state algorithms (serial scan vs per-chunk states + prefix sum), same inputs; for Taylor
    also the parallel one with one default changed per row (``TAYLOR_ALGO_ROWS``) and a per-kernel profile."""
    names = ("ALGORITHM", "CHUNK_STATE", "CHUNK_STATE_WARPS", "FWD_STATES_BF16", "BWD_SPLIT", "TAYLOR_SYMMETRIC",
             "SAVE_FWD_STATES", "DOTS_BF16", "BWD_ONE_LAUNCH", "BWD_TILE_PASS")  # fmt: skip
    defaults = {n: getattr(T, n) for n in names}
    T.FORCE_MODE = "chunk"
    try:
        for L in (4096, 8192, 16384):
            q, k, v, do = make_inputs(L)
            # the narrow maps also at 8192 (128 chunks of 64): where their serial/parallel crossover lies (run 3:
            # serial won at 64 chunks, parallel at 256)
            for name in ("poselu", "cosformer") if L == 8192 else ("taylor", "poselu", "performer", "cosformer"):
                fm = feature_map(name, DK, **MAPS[name]).to(DEV)
                f = lambda q, k, v, fm=fm: linear_attention(q, k, v, fm)  # noqa: E731
                rows = {**ALGO_ROWS, **(TAYLOR_ALGO_ROWS if name == "taylor" else NON_TAYLOR_ALGO_ROWS)}
                for bt in (128,) if name == "taylor" else (None,):  # BT=64 lost every row of runs 3-6
                    for algo, settings in rows.items():
                        for n, value in {**defaults, **settings}.items():
                            setattr(T, n, value)
                        T.FORCE_CHUNK = bt
                        algo_row(name, f, (q, k, v), do, L, bt, algo)
    finally:
        for n, value in defaults.items():
            setattr(T, n, value)
        T.FORCE_MODE, T.FORCE_CHUNK = None, None


def algo_row(name: str, f, leaves, do, L: int, bt: int | None, algo: str) -> None:
    try:
        t_f, t_fb = time_fwd_bwd(f, leaves, do)
        KERNEL_CALLS.clear()
        prof = kernel_profile(f, leaves, do) if name == "taylor" else {}
        RESULTS["variants"].append(
            dict(what="algorithm", kind=name, L=L, BT=bt or "auto", mode=algo, fwd_ms=t_f, fwdbwd_ms=t_fb,
                 kernels_ms=prof, kernel_calls=dict(KERNEL_CALLS))
        )  # fmt: skip
        print(f"{name} {algo:14s} BT={bt} L={L} fwd {t_f:.3f} fwd+bwd {t_fb:.3f} {prof}", flush=True)
    except Exception as e:  # noqa: BLE001
        note_error(f"algorithm {name} {algo} BT={bt} L={L}", e)


def step_oracle_error(fm, q, k, v, kv, z, pos: int) -> tuple[float, float, float]:
    """One Triton step (the current ``T.FORCE_STEP``) against the same step in fp64: rel. errors of (o, kv, z)."""
    from mixerzoo.kernels.linear_attention.naive import linear_attention_step_torch

    kv64, z64 = kv.double(), z.double()
    p = torch.tensor([[pos]], device=DEV) if fm.position_dependent else None
    ref = linear_attention_step_torch(fm(q.double(), p), fm(k.double(), p), v.double(), kv64, z64, True, 1e-6)
    o, _ = linear_attention_step(q, k, v, (kv, z), fm, offset=pos)

    def rel(a, b):
        return float((a.double() - b).norm() / b.norm())

    return rel(o, ref), rel(kv, kv64), rel(z, z64)


DECODE_STEPS = 20  # steps per CUDA graph: a generation graph holds the whole model step, not one kernel


def decode_one(name: str, b: int, config: str) -> None:
    """One (map, B, candidate): oracle check, then per-step µs from a graph of ``DECODE_STEPS`` steps on distinct
    state sets (like consecutive layers; L2 flushed before each replay) and from a graph of one step."""
    dv = 128
    copy = RESULTS["ceilings"]["copy_GBps"]
    T.FORCE_STEP = T.STEP_CONFIGS[config]
    cfg = T._step_config(T.make_plan(name, DK, MAPS[name].get("m", 0), MAPS[name].get("max_len", 0)), b * H, dv)
    fm = feature_map(name, DK, **MAPS[name]).to(DEV)
    D = fm.out_dim
    step_bytes = 2 * b * H * (D * dv + D) * 4  # state read + written
    zmode = cfg.zmode if cfg.bv < dv else "own"  # one program per head writes its own z
    row = dict(kind=name, B=b, D=D, config=config, bv=cfg.bv, bf=cfg.bf, warps=cfg.warps, zmode=zmode,
               state_bytes=step_bytes, steps=DECODE_STEPS)  # fmt: skip
    try:
        g = torch.Generator(device=DEV).manual_seed(b)
        q, k = (torch.randn(b, H, DK, device=DEV, dtype=torch.bfloat16, generator=g) for _ in range(2))
        v = torch.randn(b, H, dv, device=DEV, dtype=torch.bfloat16, generator=g)
        kv, z = torch.rand(b, H, D, dv, device=DEV, generator=g), torch.rand(b, H, D, device=DEV, generator=g)
        e_o, e_kv, e_z = step_oracle_error(fm, q, k, v, kv, z, 100)
        row.update(err_o=e_o, err_kv=e_kv, err_z=e_z, ok=e_o < 1e-2 and e_kv < 1e-5 and e_z < 1e-5)
        sets = [(torch.rand_like(kv), torch.rand_like(z)) for _ in range(DECODE_STEPS)]
        pos = torch.tensor(100, device=DEV)
        linear_attention_step(q, k, v, sets[0], fm, offset=pos)  # compile + the counter, outside the capture
        torch.cuda.synchronize()
        graphs = {}
        for n in (DECODE_STEPS, 1):
            graphs[n] = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graphs[n]):
                for state in sets[:n]:
                    linear_attention_step(q, k, v, state, fm, offset=pos)
        t_n = bench(graphs[DECODE_STEPS].replay, rep=100) / DECODE_STEPS
        t_1 = bench(graphs[1].replay, rep=100)
        gbps = step_bytes / (t_n * 1e6)
        row.update(graph_us=t_n * 1e3, graph1_us=t_1 * 1e3, GBps=gbps, frac_copy=gbps / copy)
        print(
            f"decode {name} B={b} {config:11s} ok={row['ok']} {DECODE_STEPS}-step graph {t_n * 1e3:6.1f} us/step "
            f"({gbps:.0f} GB/s, {gbps / copy:.0%} of copy), 1-step graph {t_1 * 1e3:6.1f} us",
            flush=True,
        )
        del sets, graphs
    except Exception as e:  # noqa: BLE001
        note_error(f"decode {name} B={b} {config}", e)
    RESULTS["decode"].append(row)


def section_decode(quick: bool, configs: list[str] | None = None) -> None:
    """Decode step, H=16, dv=128, d′=16: every candidate of ``T.STEP_CONFIGS`` (or ``configs``) for Taylor at
    B = 1, 16, 64, 256 and for the other maps at B = 1, 64, 256 (``STEP_RULE``'s D <= 64 entry was measured at B=64
    only in run 3), then the fastest correct candidate per (map, B) and what the rule picks."""
    configs = configs or list(T.STEP_CONFIGS)
    cases = [("taylor", b) for b in ((64, 256) if quick else (1, 16, 64, 256))]
    cases += [(n, b) for n in ("poselu", "performer", "cosformer") for b in ((64,) if quick else (1, 64, 256))]
    try:
        for name, b in cases:
            for config in configs:
                decode_one(name, b, config)
    finally:
        T.FORCE_STEP = None
    for name, b in cases:
        rows = [r for r in RESULTS["decode"] if r["kind"] == name and r["B"] == b and r.get("ok") and "graph_us" in r]
        if rows:
            best = min(rows, key=lambda r: r["graph_us"])
            print(f"decode best {name} B={b} (B·H={b * H}): {best['config']} {best['graph_us']:.1f} us/step, "
                  f"{best['frac_copy']:.0%} of copy; rule picks {T._step_config(T.make_plan(name, DK, MAPS[name].get('m', 0), MAPS[name].get('max_len', 0)), b * H, 128)}",
                  flush=True)  # fmt: skip


def section_checks() -> None:
    """Accuracy at the benchmark's shapes (B=1, L=1024) against fp64, for each map, forward and grads."""
    for name, opts in MAPS.items():
        try:
            check_one(name, opts)
        except Exception as e:  # noqa: BLE001
            note_error(f"check {name}", e)


def check_one(name: str, opts: dict) -> None:
    fm = feature_map(name, DK, **opts).to(DEV)
    q, k, v, do = make_inputs(1024, b=1)
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    o = linear_attention(*leaves, fm)
    g = torch.autograd.grad(o, leaves, do)
    ref_in = [x.double().requires_grad_() for x in (q, k, v)]
    ref, _ = linear_attention_reference(*ref_in, fm)
    gr = torch.autograd.grad(ref, ref_in, do.double())

    def rel(a, b):
        return float((a.double() - b).norm() / b.norm())

    row = dict(kind=name, o=rel(o, ref), dq=rel(g[0], gr[0]), dk=rel(g[1], gr[1]), dv=rel(g[2], gr[2]))
    RESULTS["checks"].append(row)
    print("check", row, flush=True)


def host_overhead(reps: int = 500, profile: bool = False, device: str = "cpu", stub: bool = True) -> list[dict]:
    """CPU microbenchmark of the Python path: every Triton launch of ``triton_ops`` replaced by a no-op, the median µs
    per forward (no grad) and per forward + backward (``autograd.grad``) call (best of 5 batch medians), B=4, H=16, d′=16, dv=64, bf16 on the CPU.

    What it counts: validation, the custom-op dispatch, autograd, allocations, launch-argument setup (not Triton's own
    launcher, nor the CUDA launch itself, ~5 µs per launch on the GPU). Run: ``python benchmarks/linear_attention.py
    --host-overhead`` (no GPU needed; ``--host-profile`` adds a cProfile of the chunked Taylor fwd+bwd). The GPU
    benchmark's ``host`` section runs it on CUDA tensors, with stubs and with the real launches (back to back, no
    sync: while the host is the bottleneck that is the host time per call).
    """
    if device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"  # lets backend="triton" run on CPU tensors; the launches are stubs
        T._INTERPRET = False  # the GPU's launch configuration (chunk sizes, 16-bit dots)
    kernels = {n: getattr(T, n) for n in dir(T) if n.startswith("_la_") and n.endswith("_kernel")} if stub else {}
    for n in kernels:
        setattr(T, n, NoLaunch())
    rows = []
    try:
        for name in ("taylor", "poselu", "performer"):
            fm = feature_map(name, DK, **MAPS[name]).to(device)
            for mode, L in (("parallel", 1024), ("chunk", 4096)):
                T.FORCE_MODE = mode
                q, k, v, do = (torch.randn(B, L, H, n, dtype=torch.bfloat16, device=device) for n in (DK, DK, DV, DV))
                leaves = [x.clone().requires_grad_() for x in (q, k, v)]

                def fwd(q=q, k=k, v=v, fm=fm):
                    with torch.no_grad():
                        linear_attention(q, k, v, fm, backend="triton")

                def fwd_bwd(leaves=leaves, fm=fm, do=do):
                    o = linear_attention(*leaves, fm, backend="triton")
                    torch.autograd.grad(o, leaves, do)

                row = dict(kind=name, mode=mode, L=L)
                for label, f in (("fwd_us", fwd), ("fwdbwd_us", fwd_bwd)):
                    row[label] = host_us(f, reps)  # counts the stubbed launches of the timed calls in NoLaunch
                    row[label.replace("_us", "_launches")] = NoLaunch.launches / (reps // 5 * 5)
                    if device != "cpu":
                        torch.cuda.synchronize()
                row.update(device=device, stub=stub)
                rows.append(row)
                print(
                    f"host {device} {'stub' if stub else 'real'} {name:10s} {mode:8s} L={L}: fwd {row['fwd_us']:6.1f} us ({row['fwd_launches']:.0f} launches), "
                    f"fwd+bwd {row['fwdbwd_us']:6.1f} us ({row['fwdbwd_launches']:.0f} launches)",
                    flush=True,
                )
        if profile:
            import cProfile
            import pstats

            T.FORCE_MODE = "chunk"
            fm = feature_map("taylor", DK)
            leaves = [torch.randn(B, 4096, H, n, dtype=torch.bfloat16).requires_grad_() for n in (DK, DK, DV)]
            do = torch.randn(B, 4096, H, DV, dtype=torch.bfloat16)
            with cProfile.Profile() as prof:
                for _ in range(200):
                    torch.autograd.grad(linear_attention(*leaves, fm, backend="triton"), leaves, do)
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    finally:
        for n, kern in kernels.items():
            setattr(T, n, kern)
        T.FORCE_MODE = None
    return rows


def section_host(quick: bool) -> None:
    """Host time per call on the GPU machine: the Python path alone (launches stubbed) and with the real launches
    (calls back to back, no sync; host-bound at these sizes), so the launches' own host cost is the difference."""
    RESULTS.setdefault("host", [])
    for stub in (True, False):
        RESULTS["host"] += host_overhead(reps=100, device=DEV, stub=stub)


def write_markdown(path: str) -> None:
    m = RESULTS["meta"]
    lines = [
        "# Linear attention kernels on the H200",
        "",
        f"Command: `{m.get('command')}`  ",
        f"GPU: {m.get('gpu')}; torch {m.get('torch')}, triton {m.get('triton')}, fla {m.get('fla', '-')}; {m.get('date')}  ",
        f"Ceilings measured in this run: copy {RESULTS['ceilings'].get('copy_GBps', 0):.0f} GB/s (read+write), "
        f"bf16 matmul {RESULTS['ceilings'].get('matmul_TFLOPs', 0):.0f} TFLOP/s.  ",
        f"Shapes: B={B}, H={H}, d′={DK}, dv={DV}, bf16; medians of `triton.testing.do_bench` (ms). "
        "fwd+bwd = forward + `autograd.grad` of a random upstream gradient; *caller* = the same with the backward "
        "on the calling thread (`torch.autograd.set_multithreading_enabled(False)`), which leaves out autograd's "
        "hand-off to its device thread, a fixed host cost per backward call that a model pays once per step.  ",
        *(
            [
                f"Autograd's hand-off on this host, µs per `autograd.grad` of one tiny op (device thread / calling "
                f"thread): {m['autograd_handoff_us']['device_thread']:.0f} / "
                f"{m['autograd_handoff_us']['calling_thread']:.0f}.  "
            ]
            if m.get("autograd_handoff_us")
            else []
        ),
        f"Chunked-mode state algorithm (`--algo`): {m.get('algorithm', 'serial')}."
        + (f" Every thread pinned to CPU {m['pinned_cpu']} (`--pin-cpu`)." if m.get("pinned_cpu") is not None else ""),
        "",
        *([f"Note: {m['note']}", ""] if m.get("note") else []),
        "## Training: ms (fwd / fwd+bwd" + (" / fwd+bwd *caller*)" if m.get("autograd_handoff_us") else ")"),
        "",
    ]
    rows = RESULTS["train"]
    impls = []
    for r in rows:
        key = (r["kind"], r["impl"])
        if key not in impls:
            impls.append(key)
    Ls = sorted({r["L"] for r in rows})
    lines.append("| map | impl | " + " | ".join(f"L={L}" for L in Ls) + " |")
    lines.append("|---|---|" + "---|" * len(Ls))

    def row(kind, impl, L):
        return next((x for x in rows if x["kind"] == kind and x["impl"] == impl and x["L"] == L), None)

    def get(kind, impl, L, col="fwdbwd_ms"):
        r = row(kind, impl, L)
        return None if r is None else r.get(col)

    for kind, impl in impls:
        cells = []
        for L in Ls:
            r = row(kind, impl, L)
            cell = "–" if r is None else f"{r['fwd_ms']:.3f} / {r['fwdbwd_ms']:.3f}"
            if r is not None and r.get("fwdbwd_caller_ms") is not None:
                cell += f" / {r['fwdbwd_caller_ms']:.3f}"
            cells.append(cell)
        lines.append(f"| {kind} | {impl} | " + " | ".join(cells) + " |")
    if any(r.get("fwdbwd_caller_ms") is not None for r in rows):
        lines += ["", "(third number: fwd+bwd with the backward on the calling thread, *caller*)"]

    lines += ["", "## Targets (fwd+bwd ratios, same run)", "", "| target | L | ours ms | peer ms | ratio | goal | met |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip

    def target(label, L, ours, peer, goal):
        if ours is None or peer is None:
            lines.append(f"| {label} | {L} | – | – | – | {goal} | not measured |")
            return
        ratio = peer / ours
        lines.append(
            f"| {label} | {L} | {ours:.3f} | {peer:.3f} | {ratio:.2f}× | ≥{goal}× | {'yes' if ratio >= goal else 'NO'} |"
        )

    def fla_best(L, col):
        ts = [t for t in (get("taylor", i, L, col) for i in ("fla.parallel_based", "fla.fused_chunk_based")) if t]
        return min(ts) if ts else None

    for L in Ls:
        # the default fwd+bwd, then (where this run has it) the same with the backward on the calling thread
        for col, tag in (("fwdbwd_ms", ""), ("fwdbwd_caller_ms", ", *caller*")):
            ours = get("taylor", "mixerzoo", L, col)
            if tag and ours is None:
                continue
            if L in (4096, 16384):
                target(f"Taylor vs FLA best Based{tag}", L, ours, fla_best(L, col), 2.5 if L == 4096 else 6.0)
            if L >= 4096:
                peer, label = get("softmax", "sdpa.cudnn(d=64)", L, col), f"Taylor vs SDPA-cuDNN d=64 (same run){tag}"
                if peer is None and not tag:
                    peer, label = ANCHOR_SDPA_CUDNN_D64.get(L), "Taylor vs SDPA-cuDNN d=64 (anchors file, not same run)"
                target(label, L, ours, peer, 5.0 if L == 16384 else 1.0)
    for L in Ls:
        if L < 8192:
            continue
        for kind in ("poselu", "relu", "performer", "cosformer"):
            ours = next((x for x in rows if x["kind"] == kind and x["impl"] == "mixerzoo" and x["L"] == L), None)
            d = ours["D"] if ours else None
            peer = get("features", f"fla.chunk_linear_attn(D={d})", L)
            label = f"FLA chunk_linear_attn (D={d}, same run)"
            if peer is None and d is not None and d < 64 and get("features", "fla.chunk_linear_attn(D=64)", L):
                # FLA faults at this D here (not run): its D=64 kernel on zero-padded features computes the same
                peer = get("features", "fla.chunk_linear_attn(D=64)", L)
                label = f"FLA chunk_linear_attn (D={d} faults, not run; D=64 = zero-padded features, same run)"
            if peer is None and L in ANCHOR_FLA_CHUNK_K64:
                peer, label = ANCHOR_FLA_CHUNK_K64[L], "FLA chunk_linear_attn (K=64, anchors file, not same run)"
            target(f"{kind} vs {label}", L, ours["fwdbwd_ms"] if ours else None, peer, 1.5)
            fused = get("features", f"fla.fused_chunk_linear_attn(D={d})", L)
            if fused is not None:  # FLA's other linear-attention kernel at the same D (it runs where chunk faults)
                target(f"{kind} vs FLA fused_chunk_linear_attn (D={d}, same run)", L,
                       ours["fwdbwd_ms"] if ours else None, fused, 1.5)  # fmt: skip
    lines += ["", "Floors (max of FLOPs/matmul rate, bytes/copy bandwidth), ms fwd / fwd+bwd:", ""]
    for r in rows:
        if r["impl"] == "mixerzoo" and "floor_fwd_ms" in r:
            lines.append(f"- {r['kind']} L={r['L']} (D={r['D']}): {r['floor_fwd_ms']:.3f} / {r['floor_fwdbwd_ms']:.3f}")
    if RESULTS["variants"]:
        lines += ["", "## Variants (ms fwd / fwd+bwd)", ""]
        for r in RESULTS["variants"]:
            tag = {"chunk_size": f"BT={r.get('BT')}", "algorithm": f"{r['mode']} BT={r.get('BT')}"}.get(
                r["what"], r["mode"]
            )
            line = f"- {r['what']} {r['kind']} L={r['L']} {tag}: {r['fwd_ms']:.3f} / {r['fwdbwd_ms']:.3f}"
            if r.get("kernels_ms"):
                calls = r.get("kernel_calls", {})
                line += " (kernels, ms summed over their launches: " + ", ".join(
                    f"{k} {t:.3f}" + (f" ({calls[k]}×)" if k in calls else "") for k, t in sorted(r["kernels_ms"].items())
                ) + ")"  # fmt: skip
            lines.append(line)
    if RESULTS["decode"]:
        lines += ["", f"## Decode (H=16, dv=128, d′=16; per-step µs from a CUDA graph of {DECODE_STEPS} steps on distinct "
                  "state sets, and from a graph of 1 step; L2 flushed before each replay)", "",
                  "| map | B | config (BV, BF, warps, z) | fp64 check (o, kv) | state bytes/step | µs/step (20-step graph) "
                  "| µs (1-step graph) | GB/s | of copy |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in RESULTS["decode"]:
            check = "–" if "ok" not in r else f"{'ok' if r['ok'] else 'FAIL'} {r['err_o']:.0e}, {r['err_kv']:.0e}"
            if "graph_us" not in r:
                lines.append(f"| {r['kind']} | {r['B']} | {r['config']} | {check} | – | error | – | – | – |")
                continue
            lines.append(f"| {r['kind']} | {r['B']} | {r['config']} ({r['bv']}, {r['bf']}, {r['warps']}, {r['zmode']}) | "
                         f"{check} | {r['state_bytes'] / 1e6:.1f} MB | {r['graph_us']:.1f} | {r['graph1_us']:.1f} | "
                         f"{r['GBps']:.0f} | {r['frac_copy']:.0%} |")  # fmt: skip
        lines += ["", "Fastest correct candidate per (map, B):", ""]
        for key in dict.fromkeys((r["kind"], r["B"]) for r in RESULTS["decode"]):
            rows = [r for r in RESULTS["decode"] if (r["kind"], r["B"]) == key and r.get("ok") and "graph_us" in r]
            if rows:
                best = min(rows, key=lambda r: r["graph_us"])
                lines.append(f"- {key[0]} B={key[1]} (B·H={key[1] * H}): {best['config']}, {best['graph_us']:.1f} µs/step, "
                             f"{best['frac_copy']:.0%} of copy")  # fmt: skip
    if RESULTS.get("host"):
        lines += ["", "## Host µs per call (launches stubbed vs real, calls back to back; best of 5 batch medians)", "",
                  "| map | mode | L | kernels | fwd µs | fwd+bwd µs |", "|---|---|---|---|---|---|"]  # fmt: skip
        for r in RESULTS["host"]:
            lines.append(f"| {r['kind']} | {r['mode']} | {r['L']} | {'stubbed' if r['stub'] else 'real'} | "
                         f"{r['fwd_us']:.0f} | {r['fwdbwd_us']:.0f} |")  # fmt: skip
    if RESULTS["checks"]:
        lines += ["", "## Accuracy at B=1, L=1024 vs fp64 (rel. error)", ""]
        for r in RESULTS["checks"]:
            lines.append(f"- {r['kind']}: o {r['o']:.1e}, dq {r['dq']:.1e}, dk {r['dk']:.1e}, dv {r['dv']:.1e}")
    if RESULTS["errors"]:
        lines += ["", "## Errors", ""] + [f"- {e.splitlines()[0]}" for e in RESULTS["errors"]]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--fla-chunk",
        action="store_true",
        help="also time FLA fused_chunk_linear_attn and chunk_linear_attn at each map's D, L >= 8192 (autotunes "
        "~2 min per D and kernel)",
    )
    ap.add_argument(
        "--fla-chunk-d",
        default=",".join(map(str, FLA_CHUNK_D)),
        help="with --fla-chunk: the state widths D to time (fused_chunk_linear_attn at every D; chunk_linear_attn "
        "at D >= 64 only: it faults at D=16 and 32 on the H200 stack of sessions 1-11)",
    )
    ap.add_argument("--pin-cpu", type=int, default=None, help=PIN_CPU_HELP)
    ap.add_argument("--sections", default="checks,decode,train,variants,algo,host")
    ap.add_argument("--decode-configs", default=None, help="comma-separated T.STEP_CONFIGS names (default: all)")
    ap.add_argument(
        "--crossover-L", default=None, help="variants section: only the crossover, at these lengths (a,b,..)"
    )
    ap.add_argument("--algo", choices=T.ALGORITHMS, default=None, help="chunked-mode state algorithm for every section")
    ap.add_argument("--host-overhead", action="store_true", help="CPU: time the Python path with no-op launches, exit")
    ap.add_argument("--host-profile", action="store_true", help="with --host-overhead: also a cProfile")
    ap.add_argument("--fla-chunk-child", type=int, default=None, help=argparse.SUPPRESS)  # fla_chunk_rows' child
    ap.add_argument("--child-L", default="8192,16384", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fla_chunk_child is not None:
        fla_chunk_child(args.fla_chunk_child, [int(x) for x in args.child_L.split(",")])
        return
    if args.host_overhead:
        host_overhead(profile=args.host_profile)
        return
    pin_cpu(args.pin_cpu)  # before CUDA starts its threads; autograd's device threads start later and inherit it
    fla_widths = tuple(int(d) for d in args.fla_chunk_d.split(","))
    if args.algo is not None:
        T.ALGORITHM = args.algo
    os.makedirs(args.out, exist_ok=True)
    props = torch.cuda.get_device_properties(0)
    RESULTS["meta"] = dict(
        command="python " + " ".join(sys.argv), gpu=f"{props.name}, {props.multi_processor_count} SMs",
        torch=torch.__version__, triton=triton.__version__, python=platform.python_version(),
        date=time.strftime("%Y-%m-%d %H:%M"), parallel_max_l=dict(T.PARALLEL_MAX_L), algorithm=T.ALGORITHM,
        pinned_cpu=args.pin_cpu,
    )  # fmt: skip
    ceilings()
    for sec in args.sections.split(","):
        t0 = time.time()
        try:
            {"checks": section_checks, "train": lambda: section_train(args.quick, args.fla_chunk, fla_widths),
             "variants": lambda: section_variants(args.quick, args.crossover_L and [int(x) for x in args.crossover_L.split(",")]), "decode": lambda: section_decode(args.quick, args.decode_configs and args.decode_configs.split(",")),
             "algo": lambda: section_algo(args.quick), "host": lambda: section_host(args.quick)}[sec]()  # fmt: skip
        except Exception as e:  # noqa: BLE001
            note_error(f"section {sec}", e)
        print(f"section {sec} took {time.time() - t0:.1f}s", flush=True)
        with open(os.path.join(args.out, "linear_attention.json"), "w") as f:
            json.dump(RESULTS, f, indent=1)
        write_markdown(os.path.join(args.out, "linear_attention.md"))


if __name__ == "__main__":
    main()
