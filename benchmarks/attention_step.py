"""The `attn` layer's decode step: SDPA over the masked cache (`backend="torch"`) against the fused ring kernel
(`backend="auto"` on CUDA: the sliding window's decode kernel with the window as wide as the cache).

Run on the GPU:  python benchmarks/attention_step.py [--out DIR]
Shapes: the Transformer-360M layer (d_model 1024, 16 heads of 64), bf16, KV cache of 2,048 slots holding
1,536 tokens (the middle of the paper's 1,024 + 1,024 generation), B in {1, 16, 64, 128}. Each row is a CUDA
graph of one layer step (projections, RoPE, cache write, attention, output projection), µs per step; the
bytes are the weights plus the K/V of the tokens written so far (what a step must read).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _common import copy_bandwidth, environment, graph_time_us, rel  # noqa: E402

import mixerzoo  # noqa: E402

RESULTS = pathlib.Path(__file__).parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--capacity", type=int, default=2048)
    parser.add_argument("--position", type=int, default=1535)
    args = parser.parse_args()
    torch.manual_seed(0)
    copy = copy_bandwidth()
    d_model, heads, P, C = 1024, 16, args.position, args.capacity
    stacks = {
        backend: mixerzoo.build(f"attn[backend={backend}]", d_model=d_model, n_heads=heads, mlp="none", max_len=C)
        for backend in ("torch", "auto")
    }
    stacks["auto"].load_state_dict(stacks["torch"].state_dict())
    mixers = {b: s.blocks[0].mixer.to("cuda", torch.bfloat16).eval() for b, s in stacks.items()}
    weight_bytes = sum(p.numel() * p.element_size() for p in mixers["torch"].parameters())
    rows = []
    for B in (1, 16, 64, 128):
        x = torch.randn(B, d_model, device="cuda", dtype=torch.bfloat16)
        cache = mixers["torch"].init_state(B, device="cuda", dtype=torch.bfloat16, capacity=C)
        cache["k"].normal_()
        cache["v"].normal_()
        row = {"B": B, "capacity": C, "tokens": P + 1}
        outs = {}
        with torch.no_grad():
            for backend, mixer in mixers.items():
                state = {k: t.clone() for k, t in cache.items()}

                def step(_, mixer=mixer, state=state, x=x):
                    state["position"].fill_(P)  # every replay decodes the token at position P
                    return mixer.step(x, state)[0]

                fresh = {k: t.clone() for k, t in cache.items()}
                fresh["position"].fill_(P)
                outs[backend] = mixer.step(x, fresh)[0]
                row[f"{backend}_us"] = graph_time_us(step, 1)
        needed = weight_bytes + B * (P + 1) * 2 * heads * (d_model // heads) * 2
        row["MB_needed"] = needed / 1e6
        for backend in mixers:
            row[f"{backend}_frac_copy_bw"] = needed / (row[f"{backend}_us"] * 1e-6) / 1e9 / copy
        row["speedup"] = row["torch_us"] / row["auto_us"]
        row["rel_auto_vs_torch"] = rel(outs["auto"].float(), outs["torch"].float())
        rows.append(row)
        print(json.dumps(row), flush=True)
    header = "| B | tokens in cache | MB needed | SDPA-masked µs | / copy bw | ring kernel µs | / copy bw | speed-up | rel diff |"
    lines = [
        "# `attn` decode step: SDPA over the masked cache vs the fused ring kernel (H200)",
        "",
        f"Command: `python benchmarks/attention_step.py`; copy bandwidth {copy:.0f} GB/s measured in the run. "
        f"One Transformer-360M layer (d_model {d_model}, {heads} heads), bf16, cache of {C} slots, CUDA graph, µs per step.",
        "",
        header,
        "|" + " --- |" * 9,
    ]
    for r in rows:
        lines.append(
            f"| {r['B']} | {r['tokens']} | {r['MB_needed']:.1f} | {r['torch_us']:.1f} | {r['torch_frac_copy_bw']:.2f} | "
            f"{r['auto_us']:.1f} | {r['auto_frac_copy_bw']:.2f} | {r['speedup']:.2f}× | {r['rel_auto_vs_torch']:.1e} |"
        )
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "attention_step.md").write_text("\n".join(lines) + "\n")
    (out / "attention_step.json").write_text(json.dumps({"env": environment(copy), "rows": rows}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
