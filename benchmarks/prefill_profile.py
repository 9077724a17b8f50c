"""Where a model's prefill spends its time: wall time against the summed GPU kernel time, and the top kernels.

Run on the GPU:  python benchmarks/prefill_profile.py [--models based-360m transformer-360m] [--len 4096]
                 [--batch 1 4] [--compile [MODE]] [--graph] [--host]
Count kernels on the CPU:  TRITON_INTERPRET=1 python benchmarks/prefill_profile.py --count [--width 128]

A prefill whose wall time is far above its summed kernel time is bound by the host (Python, launches, syncs); one
whose kernel time is far above the FLOP floor (``mixerzoo.bench.bench_prefill``) is bound by its kernels, and the
table names them. ``--compile`` profiles the ``torch.compile``'d prefill beside the eager one (compiled in an
untimed warm-up). Prints a table per model and writes ``prefill_profile.json`` under ``--out``.

``--count`` needs no GPU: it builds each model at ``--width`` (head dim 64, as the presets) with the GPU's code
paths (``backend=triton`` for conv, linear attention and the window; the Triton interpreter runs them) and counts
the kernels of one prefill, eager and compiled (``count_kernels``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
from collections import Counter

import torch
from _common import kernel_times  # the script's folder, benchmarks/, is on sys.path
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from mixerzoo import bench, build
from mixerzoo.bench import prefill_label
from mixerzoo.zoo import PRESETS


def profile_prefill(
    model, name: str, batch: int, length: int, top: int, compile: bool | str = False, host: bool = False,
    graph: bool = False,
) -> dict:  # fmt: skip
    ids = torch.randint(0, model.vocab_size, (batch, length), device="cuda")
    run = lambda: model.prefill(ids, compile=compile, cuda_graph=graph)  # noqa: E731
    with torch.no_grad():
        warmup_s, wall_ms = bench._warm_up_and_time(run, reps=5)
        activities = [ProfilerActivity.CUDA] + ([ProfilerActivity.CPU] if host else [])
        with profile(activities=activities) as prof:
            run()
            torch.cuda.synchronize()
    host_rows = _host_table(prof, top) if host else []
    kernels = kernel_times(prof)
    gpu_ms = sum(t for t, _ in kernels.values())
    launches = sum(n for _, n in kernels.values())
    ranked = sorted(kernels.items(), key=lambda kv: -kv[1][0])[:top]
    label = prefill_label(compile, graph)
    print(f"\n## {name} ({label}), batch {batch}, {length} tokens: wall {wall_ms:.2f} ms, GPU kernels {gpu_ms:.2f} ms, "
          f"{launches} launches (warm-up {warmup_s:.1f} s)\n")  # fmt: skip
    print("| kernel | ms | launches |\n|---|---:|---:|")
    for key, (t, n) in ranked:
        print(f"| `{key[:90]}` | {t:.3f} | {n} |")
    return {"model": name, "prefill": label, "batch": batch, "len": length, "wall_ms": wall_ms, "gpu_ms": gpu_ms,
            "launches": launches, "warmup_s": warmup_s, "host_top": host_rows,
            "top": [{"kernel": k, "ms": t, "launches": n} for k, (t, n) in ranked]}  # fmt: skip


def _host_table(prof, top: int) -> list[dict]:
    """The host side of one profiled prefill: the CPU events with the most self time (Python-free: aten ops, custom
    ops, CUDA runtime calls such as ``cudaLaunchKernel`` and any ``cudaStreamSynchronize``), printed and returned."""
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total_ms = sum(e.self_cpu_time_total for e in events) / 1e3
    print(f"\nHost: {total_ms:.2f} ms of self CPU time in profiled events\n")
    print("| host event | self ms | calls |\n|---|---:|---:|")
    rows = []
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        print(f"| `{e.key[:80]}` | {e.self_cpu_time_total / 1e3:.3f} | {e.count} |")
        rows.append({"event": e.key, "self_ms": e.self_cpu_time_total / 1e3, "calls": e.count})
    return rows


# --- kernel counts on the CPU ---------------------------------------------------------------------------------------

_NOT_KERNELS = {
    "aten::empty", "aten::empty_like", "aten::empty_strided", "aten::new_empty", "aten::lift_fresh", "aten::_unsafe_view",
}  # fmt: skip
# a line of inductor's call() that launches work: a fused kernel (C++ on the CPU, Triton on the GPU), a GEMM, a
# custom or fallback op
_LAUNCH = re.compile(
    r"^\s+(?:\w+ = )?(cpp_fused_\w+|triton_\w+\.run|extern_kernels\.\w+|torch\.ops\.\w+\.\w+\.\w+|aten\.\w+)\("
)


class _TritonLaunches:
    """Counts Triton kernel launches under the interpreter (``ops["triton::NAME"]``); ``inside`` while one runs."""

    def __init__(self, ops: Counter) -> None:
        self.ops, self.inside = ops, False

    def __enter__(self):
        from triton.runtime.interpreter import GridExecutor

        self._launch = launch = GridExecutor.__call__

        def counted(executor, *args, **kwargs):
            self.ops[f"triton::{executor.fn.__name__}"] += 1
            self.inside = True
            try:
                return launch(executor, *args, **kwargs)
            finally:
                self.inside = False

        GridExecutor.__call__ = counted
        return self

    def __exit__(self, *exc):
        from triton.runtime.interpreter import GridExecutor

        GridExecutor.__call__ = self._launch


class _CountOps(TorchDispatchMode):
    """Every aten op that is not a view or an allocation (one kernel each on the GPU), each Triton launch once (also
    inside our custom ops; not the interpreter's own tensor ops), and the host syncs (``_local_scalar_dense``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.triton = _TritonLaunches(self.ops)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.name()
        if not (
            self.triton.inside or func.is_view or name.split(".")[0] in _NOT_KERNELS or name.startswith("mixerzoo::")
        ):
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        self.triton.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        self.triton.__exit__(*exc)
        return super().__exit__(*exc)


def _fresh_rows(model, batch: int, length: int) -> list[dict]:
    states = model.stack.init_state(batch, capacity=length)
    return [{k: (0 if k == "position" else t) for k, t in s.items()} for s in states]


@torch.no_grad()
def count_kernels(model, batch: int = 1, length: int = 256) -> dict:
    """Kernels of one ``prefill`` of ``[batch, length]`` tokens. Eager: a dispatch-mode count of the whole call
    (``syncs``: host reads of a tensor, ``int(t)``). Compiled: the launches in inductor's generated ``call()`` for
    the stack forward, plus what stays eager around it (the state allocation, the positions' ``_foreach_add_``)."""
    from torch._inductor.utils import run_and_get_code

    ids = torch.randint(0, model.vocab_size, (batch, length))
    model._check_ids = lambda ids: None  # its range check (min, max, 2 syncs) runs on CPU inputs only
    with _CountOps() as whole:
        model.prefill(ids)
    rows = _fresh_rows(model, batch, length)
    with _CountOps() as core:
        model._prefill_logits(ids, rows)
    fn = model._compiled(type(model)._prefill_logits, "default", ("count", batch, length))
    rows = _fresh_rows(model, batch, length)
    with _TritonLaunches(Counter()) as run:  # the Triton launches inside our custom ops
        _, codes = run_and_get_code(fn, ids, rows)
    launches = [m.group(1) for code in codes for line in code[code.index("def call(") :].splitlines()
                if (m := _LAUNCH.match(line)) and not m.group(1).startswith("torch.ops.mixerzoo.")]  # fmt: skip
    kinds = Counter(
        "fused" if k.startswith(("cpp_fused", "triton_")) else "gemm" if k.startswith("extern_kernels") else "op"
        for k in launches
    )
    kinds["triton (custom ops)"] = sum(n for op, n in run.ops.items() if op.startswith("triton::"))
    launches += ["triton"] * kinds["triton (custom ops)"]
    syncs = "aten::_local_scalar_dense"
    eager = whole.ops.total() - whole.ops[syncs]
    outside = eager - (core.ops.total() - core.ops[syncs])
    return {"eager": eager, "syncs": whole.ops[syncs], "compiled": len(launches) + outside, "outside": outside,
            "compiled_by_kind": dict(kinds), "eager_top": whole.ops.most_common(12)}  # fmt: skip


def gpu_paths(spec: str) -> str:
    """The spec with ``backend=triton`` on every conv / linear-attention / window layer (what ``auto`` picks on
    CUDA); ``attn`` keeps SDPA (one op, as cuDNN's on the GPU)."""
    return re.sub(r"\b((?:conv|taylor|sw)\d+)\b", r"\1[backend=triton]", spec)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["based-360m", "transformer-360m"])
    ap.add_argument("--len", type=int, default=4096)
    ap.add_argument("--batch", type=int, nargs="+", default=[1])
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument(
        "--compile", nargs="?", const="default", default=None, metavar="MODE",
        help="also profile the torch.compile'd prefill (optional mode, e.g. max-autotune-no-cudagraphs)",
    )  # fmt: skip
    ap.add_argument("--graph", action="store_true", help="also profile each prefill replayed from a CUDA graph")
    ap.add_argument("--host", action="store_true", help="also profile the host side (top CPU events by self time)")
    ap.add_argument("--count", action="store_true", help="count kernels on the CPU instead (TRITON_INTERPRET=1)")
    ap.add_argument("--width", type=int, default=128, help="d_model of --count (head dim 64)")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results"))
    args = ap.parse_args()
    if args.count:
        length = min(args.len, 256)  # the counts do not depend on L (past the window); the interpreter is slow
        for name in args.models:
            preset = PRESETS[name]
            model = build(gpu_paths(preset.spec), d_model=args.width, n_heads=args.width // 64, vocab_size=512,
                          max_len=preset.max_len, dtype=torch.bfloat16).eval()  # fmt: skip
            print(name, count_kernels(model, length=length), flush=True)  # bf16: eager counts its casts
        return
    out = pathlib.Path(args.out) / "prefill_profile.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    env, rows = bench.environment(), []
    models = {name: bench._build(name, torch.bfloat16) for name in args.models}
    for b in args.batch:  # batch-major: a run cut short by its time limit still has every model at the first batch
        for name, model in models.items():
            for mode in bench.compile_steps(args.compile):
                for graph in (False, True) if args.graph else (False,):
                    rows.append(
                        profile_prefill(model, name, b, args.len, args.top, compile=mode, host=args.host, graph=graph)
                    )
                torch.cuda.empty_cache()
                out.write_text(json.dumps({"environment": env, "rows": rows}, indent=1))  # after each row


if __name__ == "__main__":
    main()
