"""End-to-end generation and prefill throughput of Based against a Transformer (the paper's 24× and 1.56×).

Run on the GPU:  python benchmarks/generation.py [--batch 16 64 128] [--compile-step [MODE]] [--compile-prefill [MODE]]
                 [--graph-prefill]
Re-plot saved results (no GPU):  python benchmarks/generation.py --plot results/generation.json ... [--out DIR]
Writes benchmarks/results/generation.{md,json,png}: the paper's setting (batch 128, prompt 1,024, 1,024 new tokens),
each model at its largest batch, and prefill of 4,096 tokens, each beside its floor. With ``--compile-step`` every
decode row (the largest batch's too) is timed twice in the same run, the eager step and the ``torch.compile``'d
step, both CUDA-graphed; with ``--compile-prefill`` the prefill rows too, the eager prefill and the compiled one
(compiled in an untimed warm-up); with ``--graph-prefill`` each prefill is replayed from a CUDA graph, so its rows
hold no host time (the prefill of record is compiled and graphed: ``--compile-prefill --graph-prefill``). Each
model runs in a process of its own, one after the other (`mixerzoo.bench.bench_generate_isolated`: a compiled step
replays slower after other CUDA graphs were captured in its process); ``--one-process`` runs both in this one, every
compiled row first (`mixerzoo.bench.bench_generate_models`).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from dataclasses import asdict

import torch

from mixerzoo.bench import (
    PREFILL_KEYS,
    PREFILL_SPEEDUP_KEYS,
    _table,
    bench_generate_models,
    environment,
    measure_ceilings,
    plot_throughput,
    prefill_label,
    prefill_speedups,
    speedups,
)

RESULTS = pathlib.Path(__file__).parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pair", nargs=2, default=["based-1.3b", "transformer-1.3b"])
    parser.add_argument("--batch", type=int, nargs="+", default=[128], help="decode batch sizes besides 1")
    parser.add_argument("--prompt", type=int, default=1024)
    parser.add_argument("--new", type=int, default=1024)
    parser.add_argument("--largest-new", type=int, default=64)
    parser.add_argument("--prefill-len", type=int, default=4096)
    parser.add_argument("--skip-largest", action="store_true", help="skip the largest-batch search (minutes)")
    parser.add_argument(
        "--compile-step", nargs="?", const="default", default=None, metavar="MODE",
        help="time the torch.compile'd step beside the eager one (optional mode, e.g. max-autotune-no-cudagraphs)",
    )  # fmt: skip
    parser.add_argument(
        "--compile-prefill", nargs="?", const="default", default=None, metavar="MODE",
        help="time the torch.compile'd prefill beside the eager one (optional mode)",
    )  # fmt: skip
    parser.add_argument(
        "--graph-prefill", action="store_true",
        help="replay each prefill from a CUDA graph (prefill(cuda_graph=True)): no host time in the prefill rows",
    )  # fmt: skip
    parser.add_argument(
        "--one-process", action="store_true",
        help="time both models in this process (compiled rows first) instead of each in a process of its own",
    )  # fmt: skip
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--plot", nargs="+", metavar="JSON", help="only plot these saved generation.json files")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    if args.plot:
        saved = [json.loads(pathlib.Path(f).read_text())["generate"] for f in args.plot]
        panels = {_pair_title(rows): rows for rows in saved}
        out.mkdir(parents=True, exist_ok=True)
        plot_throughput(panels, out / "generation.png")
        print(f"wrote {out / 'generation.png'}")
        return 0
    ratio_batch = 128 if 128 in args.batch else max(args.batch)
    ceilings = measure_ceilings()
    torch.cuda.empty_cache()
    print(f"copy {ceilings.copy_bytes_per_s / 1e12:.2f} TB/s, matmul {ceilings.matmul_flops_per_s / 1e12:.0f} TFLOP/s")
    gen, pre = [], []
    batches = [(1, 128)] + [(b, args.new) for b in args.batch if b != 1]
    largest = None if args.skip_largest else (args.new, args.largest_new)
    prefill = (args.prefill_len, args.compile_prefill, args.graph_prefill)
    out.mkdir(parents=True, exist_ok=True)
    env = environment()
    rows = bench_generate_models(
        args.pair, batches, args.prompt, ceilings, args.compile_step, largest, prefill, one_process=args.one_process
    )
    for row in rows:
        (pre if "prefill" in row else gen).append(row)
        print(row, flush=True)
        # every row on disk as it comes: a later failure loses none
        raw = {"environment": env, "ceilings": asdict(ceilings), "generate": gen, "prefill": pre}
        (out / "generation.json").write_text(json.dumps(raw, indent=2, default=str))
    ok = [r for r in gen if "error" not in r]
    pre_ok = [r for r in pre if "error" not in r]
    eager = [r for r in ok if r["step"] == "eager"]
    by = {(r["model"], r["batch"]): r for r in eager}
    lin, att = args.pair
    ratio = by[(lin, ratio_batch)]["tokens_per_s"] / by[(att, ratio_batch)]["tokens_per_s"]
    best = _best(eager, args.pair)
    fast = {(r["model"], r["batch"]): r for r in ok if r["step"] != "eager"}
    compiled = []
    if fast:
        best_fast = _best(fast.values(), args.pair)
        compiled = [
            "## Compiled vs eager step (both CUDA-graphed, same run)", "",
            _table(speedups(ok), ["model", "batch", "step", "eager_ms", "compiled_ms", "speedup", "capture_s"]), "",
            f"Throughput ratio {lin}/{att} at batch {ratio_batch} with the compiled step: "
            f"**{fast[(lin, ratio_batch)]['tokens_per_s'] / fast[(att, ratio_batch)]['tokens_per_s']:.2f}×**; "
            f"each at its best batch: **{best_fast[lin] / best_fast[att]:.2f}×**.", "",
        ]  # fmt: skip
    pre_ms = {(r["model"], r["prefill"]): r["ms"] for r in pre_ok}
    eager_prefill = prefill_label(False, args.graph_prefill)
    prefill_ratio = pre_ms[(att, eager_prefill)] / pre_ms[(lin, eager_prefill)]
    compiled_prefill = []
    if prefill_speedups(pre_ok):
        label = next(r["prefill"] for r in pre_ok if r["prefill"] != eager_prefill)
        compiled_prefill = [
            "", "Compiled vs eager prefill (same run):", "", _table(prefill_speedups(pre_ok), PREFILL_SPEEDUP_KEYS), "",
            f"Prefill speed ratio {lin}/{att}, both {label}: "
            f"**{pre_ms[(att, label)] / pre_ms[(lin, label)]:.2f}×** (paper: 1.56×).",
        ]  # fmt: skip
    md = [
        "# Generation and prefill throughput", "",
        f"`{' '.join(sys.argv)}` — {env['gpu']}, torch {torch.__version__}; random bf16 weights; "
        f"ceilings measured in the run: copy {ceilings.copy_bytes_per_s / 1e12:.2f} TB/s, bf16 matmul "
        f"{ceilings.matmul_flops_per_s / 1e12:.0f} TFLOP/s. "
        + ("Both models in this process, every compiled row first." if args.one_process else
           "Each model in a process of its own, one after the other."), "",
        "## Decode (CUDA-graph step per token)", "",
        _table(ok, ["model", "batch", "step", "prompt", "new_tokens", "tokens_per_s", "step_ms", "floor_ms", "step_over_floor", "peak_gb", "bound"]),
        "", f"Throughput ratio {lin}/{att} at batch {ratio_batch} (eager step): **{ratio:.2f}×** (paper: 24×); "
        f"each at its best batch: **{best[lin] / best[att]:.2f}×**.", "",
        *compiled,
        "## Prefill", "", _table(pre_ok, PREFILL_KEYS),
        "", f"Prefill speed ratio {lin}/{att} at {args.prefill_len} tokens, both {eager_prefill}: "
        f"**{prefill_ratio:.2f}×** (paper: 1.56×).",
        *compiled_prefill,
    ]  # fmt: skip
    (out / "generation.md").write_text("\n".join(md) + "\n")
    payload = {"environment": env, "ceilings": asdict(ceilings),
               "generate": gen, "prefill": pre, "ratio_at_batch": ratio, "ratio_best": best[lin] / best[att],
               "prefill_ratio": prefill_ratio}  # fmt: skip
    (out / "generation.json").write_text(json.dumps(payload, indent=2, default=str))
    plot_throughput({_pair_title(gen): gen}, out / "generation.png")
    print("\n".join(md))
    return 0


def _best(rows, models) -> dict[str, float]:
    """Each model's highest tokens per second among ``rows`` (its best batch)."""
    return {m: max(r["tokens_per_s"] for r in rows if r["model"] == m) for m in models}


def _pair_title(rows: list[dict]) -> str:
    return " vs ".join(dict.fromkeys(r["model"] for r in rows))


if __name__ == "__main__":
    sys.exit(main())
