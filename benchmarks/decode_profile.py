"""Where a graphed decode step spends its GPU time: kernels per step, grouped, beside the step's floor.

Run on the GPU:  python benchmarks/decode_profile.py [--models based-360m transformer-360m] [--batch 1 128]
                 [--prompt 1024] [--compile-step [MODE]] [--top 12]

Each model prefills ``--prompt`` random tokens, captures its decode step in one CUDA graph (eager step, and with
``--compile-step`` the ``torch.compile``'d one as well, as ``model.generate`` does), times ``REPLAYS`` replays with
CUDA events, then profiles ``PROFILED`` more with the CUDA profiler. Every kernel of a step is put in one group:

- ``gemm``: cuBLAS/cuDNN matmuls (the projections, the MLP, the head);
- ``mixer``: mixerzoo's Triton step kernels (linear attention, window ring, short conv) and attention itself;
- ``fused``: inductor's generated Triton kernels (norms, residual adds, SiLU·mul, rotary, casts);
- ``other``: the rest (eager elementwise ops, copies, fills).

The floor is ``mixerzoo.bench``'s: the larger of the step's minimal bytes over the copy bandwidth and its FLOPs over
the bf16 matmul rate. The launch floor is the step's kernel count times the time of one graphed one-element kernel
(`graph_kernel_us`, measured first): no step of that many kernels runs faster. A step far above its floor with many
kernels of a few µs each is bound by the kernel count; one whose ``gemm`` or ``mixer`` time alone is above the floor
is bound by those kernels. Prints a table per row and
writes ``decode_profile.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re

import torch
from _common import kernel_times  # the script's folder, benchmarks/, is on sys.path
from torch.profiler import ProfilerActivity, profile

from mixerzoo import bench
from mixerzoo.bench import step_label

REPLAYS = 50  # timed
PROFILED = 10  # profiled

GROUPS = (
    ("gemm", re.compile(r"nvjet|gemm|cutlass|xmma|sm90_|sm80_|cublas", re.I)),
    ("mixer", re.compile(r"^_la_|sliding_window|gated_short_conv|flash|fmha|sdpa|attention", re.I)),
    ("fused", re.compile(r"^triton_")),
)


_TORCH_KERNEL_PART = re.compile(r"\w+(?:Functor|Ops|_kernel_cuda)\b")
_TORCH_DTYPE = re.compile(r"BFloat16|Half|float|double|long|int|bool")


def short_name(kernel: str, width: int = 90) -> str:
    """``kernel`` cut to ``width`` characters; torch's templated kernels (``void at::native::…``) are named by their
    op (functor or kernel function) and first dtype instead, which is what tells them apart:
    ``elementwise_kernel MulFunctor BFloat16``."""
    if not kernel.startswith("void at::native::"):
        return kernel[:width]
    head = kernel[len("void at::native::") :].split("<", 1)[0]
    ops = [op for op in dict.fromkeys(_TORCH_KERNEL_PART.findall(kernel)) if op != "BinaryFunctor"]
    dtype = _TORCH_DTYPE.search(kernel)
    return " ".join([head, *ops, dtype.group(0) if dtype else ""]).strip()[:width]


def group_of(kernel: str) -> str:
    for name, pattern in GROUPS:
        if pattern.search(kernel):
            return name
    return "other"


@torch.no_grad()
def graph_kernel_us(n: int = 400, replays: int = 20) -> float:
    """µs per kernel of a CUDA graph of ``n`` dependent one-element kernels (``x.add_(1)``): what each kernel of a
    graphed step costs at the least, its launch and drain. A step of ``k`` kernels takes at least ``k`` times this,
    whatever its bytes and FLOPs (the ``launch floor`` below)."""
    x = torch.zeros(1, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        x.add_(1)  # warm-up off the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(n):
            x.add_(1)
    for _ in range(3):
        graph.replay()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(replays):
        graph.replay()
    end.record()
    end.synchronize()
    assert x.item() == 1 + n * (3 + replays), "the graph did not run every kernel"
    return 1e3 * start.elapsed_time(end) / (replays * n)


@torch.no_grad()
def profile_decode(
    model, name: str, batch: int, prompt: int, top: int, compile_step: bool | str, ceilings, kernel_us: float
) -> dict:
    ids = torch.randint(0, model.vocab_size, (batch, prompt), device="cuda")
    logits, states = model.prefill(ids, capacity=prompt + REPLAYS + PROFILED + 8)
    step = model._graphed_step(states, batch, compile_step)
    token = logits.argmax(-1)
    for _ in range(3):
        token = step(token).argmax(-1)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(REPLAYS):
        token = step(token).argmax(-1)
    end.record()
    end.synchronize()
    step_ms = start.elapsed_time(end) / REPLAYS
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(PROFILED):
            token = step(token).argmax(-1)
        torch.cuda.synchronize()
    # name -> [ms per step, launches per step]; the token copy-in and the argmax outside the step left out
    kernels = kernel_times(prof, per=PROFILED, skip=("Memcpy", "Memset", "argmax"))
    groups: dict[str, list[float]] = {g: [0.0, 0.0] for g, _ in GROUPS + (("other", None),)}
    for key, (t, n) in kernels.items():
        group = groups[group_of(key)]
        group[0] += t
        group[1] += n
    gpu_ms = sum(t for t, _ in kernels.values())
    nbytes, flops = bench.decode_cost(model, batch, prompt)
    floor_ms = ceilings.floor_ms(nbytes, flops)
    label = step_label(compile_step)
    n_kernels = sum(n for _, n in kernels.values())
    launch_ms = 1e-3 * kernel_us * n_kernels
    print(f"\n## {name} ({label}), batch {batch}, prompt {prompt}: step {step_ms:.3f} ms, kernels {gpu_ms:.3f} ms in "
          f"{n_kernels:.0f} launches, floor {floor_ms:.3f} ms ({step_ms / floor_ms:.2f}×), launch floor "
          f"{launch_ms:.3f} ms ({n_kernels:.0f} × {kernel_us:.2f} µs)\n")  # fmt: skip
    print("| group | ms per step | kernels per step | µs per kernel |\n|---|---:|---:|---:|")
    for g, (t, n) in groups.items():
        print(f"| {g} | {t:.3f} | {n:.0f} | {1e3 * t / n if n else 0:.1f} |")
    ranked = sorted(kernels.items(), key=lambda kv: -kv[1][0])[:top]
    print("\n| kernel | group | ms per step | per step |\n|---|---|---:|---:|")
    for key, (t, n) in ranked:
        print(f"| `{short_name(key)}` | {group_of(key)} | {t:.3f} | {n:.0f} |")
    return {"model": name, "step": label, "batch": batch, "prompt": prompt, "step_ms": step_ms, "gpu_ms": gpu_ms,
            "kernels_per_step": n_kernels, "floor_ms": floor_ms, "floor_bytes": nbytes, "floor_flops": flops,
            "graph_kernel_us": kernel_us, "launch_floor_ms": launch_ms,
            "groups": {g: {"ms": t, "kernels": n} for g, (t, n) in groups.items()},
            "top": [{"kernel": k, "short": short_name(k), "group": group_of(k), "ms": t, "per_step": n}
                    for k, (t, n) in ranked]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["based-360m", "transformer-360m"])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 128])
    ap.add_argument("--prompt", type=int, default=1024)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument(
        "--compile-step", nargs="?", const="default", default=None, metavar="MODE",
        help="also profile the torch.compile'd step (optional mode, e.g. max-autotune-no-cudagraphs)",
    )  # fmt: skip
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results"))
    args = ap.parse_args()
    out = pathlib.Path(args.out) / "decode_profile.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    env, rows = bench.environment(), []
    ceilings = bench.measure_ceilings()
    kernel_us = graph_kernel_us()
    print(f"a graphed one-element kernel: {kernel_us:.2f} µs")
    models = {name: bench._build(name, torch.bfloat16) for name in args.models}
    for b in args.batch:
        for name, model in models.items():
            for mode in bench.compile_steps(args.compile_step):
                rows.append(profile_decode(model, name, b, args.prompt, args.top, mode, ceilings, kernel_us))
                torch.cuda.empty_cache()
                out.write_text(json.dumps({"environment": env, "rows": rows}, indent=1))  # after each row


if __name__ == "__main__":
    main()
