"""The GEMMs of one decode step or one prefill, replayed alone from a CUDA graph: a lower bound beside the floor.

Run on the GPU:  python benchmarks/gemm_chain.py [--models based-360m transformer-360m] [--batch 1 128]
                 [--prompt 1024] [--new 1024] [--prefill-len 4096] [--out DIR]

What a step or a prefill built from separate kernels, with its projections on cuBLAS, can reach at best. The script
records every projection (each ``nn.Linear``: mixers, MLPs, head) of one eager decode step at each ``--batch`` and of
one eager prefill of ``--prefill-len`` tokens at batch 1, with the input shapes the model gave it, in the order it ran
them. It captures the same calls (the model's own modules and weights, fresh inputs of the recorded shapes) in one
CUDA graph and times its replays: the projections alone, nothing between them. The prefill's full attention (SDPA)
is recorded the same way and replayed alone with each of torch's backends (cuDNN, FlashAttention-2,
memory-efficient).

``bound`` adds to the measured GEMMs the least time of the rest, as bytes at the copy bandwidth:
- decode: the mixers' states or KV caches (``mixerzoo.bench.mixer_state_cost``), which the step kernels read (and
  write) in kernels of their own;
- prefill: the fastest attention backend, plus every projection's input written and output read once by the work
  between the GEMMs (``activation_bytes``).
Both sit beside the floor of ``mixerzoo.bench`` (decode: bytes over the copy bandwidth or FLOPs over the matmul rate,
at the table's mean length ``prompt + new / 2``; prefill: FLOPs over the matmul rate). Where ``bound / floor`` is
above 1.3, no implementation that runs these projections as separate cuBLAS GEMMs meets a 1.3× target; only fusing
across them (a GEMM epilogue, a persistent kernel) could. Per GEMM, decode rows give the time beyond its weight bytes
at copy bandwidth (its latency) and prefill rows the TFLOP/s reached.

Prints a table and writes ``gemm_chain.{md,json}`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from _common import graph_time_us  # the script's folder, benchmarks/, is on sys.path
from torch import nn
from torch.nn.attention import sdpa_kernel

from mixerzoo import bench
from mixerzoo.kernels.attention import SDPA_KERNELS

BACKENDS = {name: SDPA_KERNELS[name] for name in ("cudnn", "flash", "efficient")}  # not math: L² scores in memory
LEGEND = (
    "`memory-bound part`: decode, the mixers' states at copy bandwidth; prefill, every projection's input written and "
    "output read once at copy bandwidth. `bound` = GEMMs alone + the fastest attention + the memory-bound part."
)


@contextmanager
def recording(model: nn.Module):
    """Yield two lists that fill while the body runs: ``(module, input shape, input written by SDPA)`` of every
    ``nn.Linear`` call, and ``(q, k, v shapes as [B, L, H, d], kwargs)`` of every ``F.scaled_dot_product_attention``
    call."""
    linears: list[tuple[nn.Linear, torch.Size, bool]] = []
    attentions: list[tuple[tuple, dict]] = []
    sdpa_outputs: dict[int, torch.Tensor] = {}  # storages SDPA wrote (held, so no later tensor reuses one)

    def pre_hook(module, args):
        linears.append((module, args[0].shape, args[0].untyped_storage().data_ptr() in sdpa_outputs))

    hooks = [m.register_forward_pre_hook(pre_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    sdpa = F.scaled_dot_product_attention

    def recorded(q, k, v, **kwargs):
        attentions.append((tuple(t.transpose(1, 2).shape for t in (q, k, v)), kwargs))
        out = sdpa(q, k, v, **kwargs)
        sdpa_outputs[out.untyped_storage().data_ptr()] = out
        return out

    F.scaled_dot_product_attention = recorded
    try:
        yield linears, attentions
    finally:
        F.scaled_dot_product_attention = sdpa
        for h in hooks:
            h.remove()


def graph_ms(calls) -> float:
    """Milliseconds of one CUDA-graph replay that runs every ``call()`` in order (`_common.graph_time_us`)."""
    return graph_time_us(lambda i: calls[i](), len(calls)) * len(calls) / 1e3


def linear_calls(linears) -> list:
    """One call per recorded projection: the module itself on a fresh input of the recorded shape (so the library's
    path is the one timed: the GEMV at one row, ``F.linear`` otherwise)."""
    calls = []
    for module, shape, _ in linears:
        x = torch.randn(shape, device="cuda", dtype=module.weight.dtype)
        calls.append(lambda m=module, x=x: m(x))
    return calls


def attention_calls(attentions, dtype) -> list:
    """One SDPA call per recorded attention, on fresh ``[B, L, H, d]`` inputs transposed as the library passes them."""
    calls = []
    for shapes, kwargs in attentions:
        q, k, v = (torch.randn(s, device="cuda", dtype=dtype).transpose(1, 2) for s in shapes)
        calls.append(lambda q=q, k=k, v=v, kw=kwargs: F.scaled_dot_product_attention(q, k, v, **kw))
    return calls


def weight_bytes(linears) -> int:
    return sum(m.weight.numel() * m.weight.element_size() for m, _, _ in linears)


def activation_bytes(linears) -> int:
    """Bytes that the work between the GEMMs (norms, residual adds, SiLU·mul, RoPE, the mixers' own kernels) moves
    at the least: it writes every projection's input (but the ones SDPA wrote, timed with the attention) and reads
    every projection's output once, since cuBLAS fuses none of that work into its prologue or epilogue."""
    return sum(
        m.weight.element_size() * shape.numel() // shape[-1] * (m.out_features + (0 if by_sdpa else shape[-1]))
        for m, shape, by_sdpa in linears
    )


def linear_flops(linears) -> float:
    return sum(2.0 * shape.numel() // shape[-1] * m.weight.numel() for m, shape, _ in linears)


@torch.no_grad()
def decode_row(name: str, model, batch: int, prompt: int, new: int, ceilings: bench.Ceilings) -> dict:
    ids = torch.randint(0, model.vocab_size, (batch, prompt), device="cuda")
    logits, states = model.prefill(ids, capacity=prompt + new, batch_chunk=128)
    with recording(model) as (linears, _):
        model.step(logits.argmax(-1), states)
    ms = graph_ms(linear_calls(linears))
    length = prompt + new / 2  # the table's mean length
    floor_ms = ceilings.floor_ms(*bench.decode_cost(model, batch, length))
    state_ms = 1e3 * bench.mixer_state_cost(model, batch, length)[0] / ceilings.copy_bytes_per_s
    at_copy_ms = 1e3 * weight_bytes(linears) / ceilings.copy_bytes_per_s
    return {"model": name, "phase": "decode", "batch": batch, "gemms": len(linears), "gemm_ms": ms,
            "attention_ms": {}, "between_ms": state_ms, "between": "mixer states at copy bandwidth",
            "floor_ms": floor_ms, "gemm_over_floor": ms / floor_ms, "bound_over_floor": (ms + state_ms) / floor_ms,
            "weights_at_copy_ms": at_copy_ms, "latency_us_per_gemm": 1e3 * (ms - at_copy_ms) / len(linears)}  # fmt: skip


@torch.no_grad()
def prefill_row(name: str, model, length: int, ceilings: bench.Ceilings) -> dict:
    ids = torch.randint(0, model.vocab_size, (1, length), device="cuda")
    with recording(model) as (linears, attentions):
        model.prefill(ids)
    ms = graph_ms(linear_calls(linears))
    dtype = next(model.parameters()).dtype
    attention_ms = {}
    for label, backend in BACKENDS.items():
        if not attentions:
            break
        try:
            with sdpa_kernel([backend]):
                attention_ms[label] = graph_ms(attention_calls(attentions, dtype))
        except RuntimeError as e:  # a backend that does not take these shapes on this GPU
            print(f"{name}: attention backend {label} unavailable: {str(e).splitlines()[0]}")
    floor_ms = ceilings.floor_ms(0, bench.prefill_flops(model, 1, length))
    between_ms = 1e3 * activation_bytes(linears) / ceilings.copy_bytes_per_s
    bound_ms = ms + min(attention_ms.values(), default=0.0) + between_ms
    return {"model": name, "phase": "prefill", "batch": 1, "seq_len": length, "gemms": len(linears), "gemm_ms": ms,
            "attention_ms": attention_ms, "attentions": len(attentions), "between_ms": between_ms,
            "between": "projection inputs and outputs at copy bandwidth", "floor_ms": floor_ms,
            "gemm_over_floor": ms / floor_ms, "bound_over_floor": bound_ms / floor_ms,
            "gemm_tflops": linear_flops(linears) / (ms * 1e-3) / 1e12}  # fmt: skip


def table(rows: list[dict]) -> str:
    lines = ["| model | phase | batch | GEMMs | GEMMs alone, ms | attention alone, ms | memory-bound part, ms | "
             "floor, ms | GEMMs / floor | bound / floor | per GEMM |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in rows:
        attn = ", ".join(f"{k} {v:.3f}" for k, v in r["attention_ms"].items()) or "–"
        extra = (f"{r['latency_us_per_gemm']:.2f} µs over its bytes" if r["phase"] == "decode"
                 else f"{r['gemm_tflops']:.0f} TFLOP/s")  # fmt: skip
        phase = r["phase"] + (f" {r['seq_len']}" if r["phase"] == "prefill" else "")
        lines.append(
            f"| {r['model']} | {phase} | {r['batch']} | {r['gemms']} | {r['gemm_ms']:.3f} | {attn} | "
            f"{r['between_ms']:.3f} | {r['floor_ms']:.3f} | {r['gemm_over_floor']:.2f}× | {r['bound_over_floor']:.2f}× "
            f"| {extra} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["based-360m", "transformer-360m"])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 128])
    p.add_argument("--prompt", type=int, default=1024)
    p.add_argument("--new", type=int, default=1024)
    p.add_argument("--prefill-len", type=int, default=4096)
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("benchmarks/results"))
    args = p.parse_args()
    ceilings = bench.measure_ceilings()
    print(f"copy {ceilings.copy_bytes_per_s / 1e12:.2f} TB/s, matmul {ceilings.matmul_flops_per_s / 1e12:.0f} TFLOP/s")
    rows = []
    for name in args.models:
        model = bench._build(name, torch.bfloat16)
        rows.append(prefill_row(name, model, args.prefill_len, ceilings))
        for batch in args.batch:
            rows.append(decode_row(name, model, batch, args.prompt, args.new, ceilings))
        print(table(rows[-1 - len(args.batch) :]), flush=True)
        del model
        torch.cuda.empty_cache()
    print("\n" + table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    env = bench.environment()
    (args.out / "gemm_chain.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=1))
    (args.out / "gemm_chain.md").write_text(
        f"# {__doc__.splitlines()[0]}\n\n`{env['command']}` — {env['gpu']}, torch "
        f"{env['torch']}, {env['date']}\n\n{LEGEND}\n\n{table(rows)}\n"
    )


if __name__ == "__main__":
    main()
