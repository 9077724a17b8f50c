"""Generation and prefill throughput, with each model's hardware floor beside it.

``mixerzoo bench generate based-1.3b transformer-1.3b --batch 128 --prompt 1024 --new 1024`` builds each model
with random bf16 weights on the GPU, prefills the prompt, then decodes through one CUDA-graph-captured step per
token, and reports tokens per second, latency per step, peak memory and the floor:

    floor per decode step = max(bytes per step / copy bandwidth, FLOPs per step / bf16 matmul rate)

bytes per step = every weight read once (the embedding table excepted: only B rows of it) + the recurrent state
read and written (linear attention's fp32 kv and z, the window's ring, the convolution's last K−1 inputs) or the
KV cache read (attention, at the mean length of the decode); FLOPs = 2·B·(weights used per token) + the mixers'
own products. Both ceilings are measured in the same run.

``mixerzoo bench prefill based-360m transformer-360m --batch 1 4 --prompt 4096 --compile`` times the eager prefill
and the ``torch.compile``'d one (compiled in an untimed warm-up) side by side, each beside its FLOP floor.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch

from mixerzoo.mixers import Attention, GatedConv, LinearAttention, Mixer, SlidingWindowAttention
from mixerzoo.models import lm

__all__ = [
    "Ceilings", "environment", "bench_generate", "bench_generate_largest", "bench_generate_rows",
    "bench_generate_prefill_rows", "bench_generate_isolated", "bench_generate_models",
    "bench_prefill", "bench_prefill_rows", "decode_cost", "measure_ceilings", "mixer_state_cost", "prefill_flops",
    "plot_throughput", "prefill_speedups",
]  # fmt: skip


@dataclass(frozen=True)
class Ceilings:
    """Measured on the device: copy bandwidth (bytes read + written per second) and the bf16 matmul rate."""

    copy_bytes_per_s: float
    matmul_flops_per_s: float

    def floor_ms(self, nbytes: float, flops: float) -> float:
        """The least milliseconds for ``nbytes`` at the copy bandwidth and ``flops`` at the matmul rate, overlapped."""
        return 1e3 * max(nbytes / self.copy_bytes_per_s, flops / self.matmul_flops_per_s)


def _time_ms(fn, reps: int = 20) -> float:
    """Median milliseconds of ``fn()`` over ``reps`` runs, with CUDA events, after a warm-up."""
    return _warm_up_and_time(fn, reps)[1]


def _warm_up_and_time(fn, reps: int, warm_ups: int = 2) -> tuple[float, float]:
    """``(seconds of the first, untimed call, median ms of reps calls after warm_ups more untimed ones)``: the first
    call is where a compiled function compiles, so its time is the one-time cost reported beside the timing; the
    further warm-ups let allocator pools, library handles and clocks settle before the timed calls."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    first_s = time.perf_counter() - t0
    for _ in range(warm_ups):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return first_s, sorted(times)[len(times) // 2]


def measure_ceilings() -> Ceilings:
    """A 2 GB device-to-device copy and an 8192³ bf16 matmul on random data."""
    x = torch.randn(2**30, device="cuda", dtype=torch.bfloat16)
    y = torch.empty_like(x)
    copy_ms = _time_ms(lambda: y.copy_(x))
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    mm_ms = _time_ms(lambda: a @ b)
    return Ceilings(2 * 2**30 * 2 / (copy_ms * 1e-3), 2 * 8192**3 / (mm_ms * 1e-3))


def decode_cost(model, batch: int, length: float) -> tuple[float, float]:
    """(bytes, FLOPs) of one decode step at ``batch`` sequences of ``length`` tokens so far."""
    elem = next(model.parameters()).element_size()
    weights = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("embed."))
    state_bytes, state_flops = mixer_state_cost(model, batch, length)
    return weights * elem + batch * model.stack.d_model * elem + state_bytes, 2.0 * batch * weights + state_flops


def mixer_state_cost(model, batch: int, length: float) -> tuple[float, float]:
    """The mixers' share of ``decode_cost``: (bytes, FLOPs) of their states or KV caches in one decode step."""
    elem = next(model.parameters()).element_size()
    nbytes = flops = 0.0
    for block in model.stack.blocks:
        m = block.mixer
        if isinstance(m, LinearAttention):
            D = m.feature_map.out_dim
            state = m.heads * D * (m.head_dim + 1)
            nbytes += batch * 2 * state * 4  # fp32 kv and z, read and written
            flops += batch * 4.0 * state
        elif isinstance(m, SlidingWindowAttention):
            span = min(length, m.window)
            nbytes += batch * 2 * span * m.kv_heads * m.head_dim * elem
            flops += batch * 4.0 * span * m.heads * m.head_dim
        elif isinstance(m, Attention):
            nbytes += batch * 2 * length * m.kv_heads * m.head_dim * elem
            flops += batch * 4.0 * length * m.heads * m.head_dim
        elif isinstance(m, GatedConv):
            nbytes += batch * 2 * (m.config.kernel_size - 1) * m.channels * elem
    return nbytes, flops


def _build(name: str, dtype: torch.dtype):
    from mixerzoo import build

    torch.manual_seed(0)
    return build(name, device="cuda", dtype=dtype).eval()


@torch.no_grad()
def bench_generate(
    name: str,
    batch: int,
    prompt_len: int,
    new_tokens: int,
    ceilings: Ceilings,
    dtype=torch.bfloat16,
    model=None,
    compile_step: bool | str = False,
) -> dict:
    """Prefill ``prompt_len`` tokens then decode ``new_tokens`` with the graphed step; one result row.

    ``compile_step`` (``True`` or a ``torch.compile`` mode) graphs the compiled step instead of the eager one;
    ``capture_s`` is the time to warm up (and compile) and capture it.
    """
    model = model if model is not None else _build(name, dtype)
    vocab = model.vocab_size
    prompt = torch.randint(0, vocab, (batch, prompt_len), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    logits, states = model.prefill(prompt, capacity=prompt_len + new_tokens, batch_chunk=128)
    torch.cuda.synchronize()
    prefill_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    step = model._graphed_step(states, batch, compile_step)
    torch.cuda.synchronize()
    capture_s = time.perf_counter() - t0
    token = logits.argmax(-1)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(new_tokens - 1):
        token = step(token).argmax(-1)
    end.record()
    end.synchronize()
    decode_ms = start.elapsed_time(end)
    steps = new_tokens - 1
    nbytes, flops = decode_cost(model, batch, prompt_len + new_tokens / 2)
    floor_ms = ceilings.floor_ms(nbytes, flops)
    step_ms = decode_ms / steps
    return {
        "model": name, "batch": batch, "step": step_label(compile_step), "prompt": prompt_len,
        "new_tokens": new_tokens, "tokens_per_s": batch * steps / (decode_ms * 1e-3), "step_ms": step_ms,
        "floor_ms": floor_ms, "step_over_floor": step_ms / floor_ms, "prefill_s": prefill_s, "capture_s": capture_s,
        "peak_gb": torch.cuda.max_memory_allocated() / 1e9,
        "bound": "memory" if nbytes / ceilings.copy_bytes_per_s >= flops / ceilings.matmul_flops_per_s else "compute",
    }  # fmt: skip


def step_label(compile_step: bool | str) -> str:
    """``eager``, ``compiled`` (the default mode) or ``compiled:MODE``: the ``step`` column of a result row."""
    if not compile_step:
        return "eager"
    return "compiled" if compile_step is True or compile_step == "default" else f"compiled:{compile_step}"


def prefill_label(compile: bool | str, cuda_graph: bool) -> str:
    """The ``prefill`` column of a result row: `step_label`, plus ``+graph`` when replayed from a CUDA graph."""
    return step_label(compile) + ("+graph" if cuda_graph else "")


def compile_steps(compile_step: str | None) -> list[bool | str]:
    """The steps (or prefills) to time side by side: eager alone, or eager then compiled when ``--compile-step``
    (``--compile``) is given."""
    return [False] if compile_step is None else [False, True if compile_step == "default" else compile_step]


def speedups(rows: list[dict], label: str = "step", ms: str = "step_ms", cost: str = "capture_s") -> list[dict]:
    """Eager time over compiled time, per (model, batch) that has both rows: ``label`` names the rows' ``eager`` /
    ``compiled`` column, ``ms`` their time and ``cost`` the one-time cost (capture or compile) reported beside. A
    row replayed from a CUDA graph (``compiled+graph``) is compared with the eager one replayed the same way."""

    def split(r: dict) -> tuple[str, str]:  # ("compiled", "+graph") from "compiled+graph"
        mode, plus, graph = r.get(label, "eager").partition("+")
        return mode, plus + graph

    eager = {(r["model"], r["batch"], split(r)[1]): r for r in rows if label in r and split(r)[0] == "eager"}
    return [
        {"model": r["model"], "batch": r["batch"], label: r[label], "eager_ms": eager[key][ms],
         "compiled_ms": r[ms], "speedup": eager[key][ms] / r[ms], cost: r[cost]}
        for r in rows
        if split(r)[0] != "eager" and (key := (r["model"], r["batch"], split(r)[1])) in eager
    ]  # fmt: skip


def largest_batch(
    model, prompt_len: int, new_tokens: int, headroom: float = 0.85, total_memory: int | None = None
) -> int:
    """The most sequences whose weights, states and a prefill slice fit in ``total_memory`` bytes (default: the
    current CUDA device's), analytic. Capturing the decode step (``LanguageModel._graphed_step``) keeps a copy of each
    state while its warm-up runs, so states count twice; with ``lm.CAPTURE_IN_PLACE`` a state counts once when its
    mixer's ``snapshot`` saves only part of it (the key/value rings and caches of ``sw`` and ``attn``: a few slots)."""
    elem = next(model.parameters()).element_size()
    if total_memory is None:
        total_memory = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    weights = sum(p.numel() for p in model.parameters()) * elem
    state = sum(
        b.mixer.state_size(prompt_len + new_tokens)
        * (4 if isinstance(b.mixer, LinearAttention) else elem)
        * (1 if lm.CAPTURE_IN_PLACE and type(b.mixer).snapshot is not Mixer.snapshot else 2)
        for b in model.stack.blocks
    )
    workspace = 128 * prompt_len * model.stack.d_model * elem * 24 + 2 * model.vocab_size * 128 * 4  # prefill slices
    return max(1, int((total_memory * headroom - weights - workspace) // state))


def bench_generate_largest(
    name: str, model, prompt_len: int, capacity_new: int, new_tokens: int, ceilings: Ceilings, tries: int = 5,
    compile_step: bool | str = False, batch: int | None = None,
) -> dict:  # fmt: skip
    """Decode at the largest batch that fits: start from ``batch`` (default: the analytic estimate,
    `largest_batch`), shrink by 30% on each OOM. ``compile_step`` as in `bench_generate`."""
    batch = batch if batch is not None else largest_batch(model, prompt_len, capacity_new)
    for _ in range(tries):
        try:
            return bench_generate(name, batch, prompt_len, new_tokens, ceilings, model=model, compile_step=compile_step)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            batch = max(1, int(batch * 0.7))
    return {
        "model": name, "batch": batch, "step": step_label(compile_step), "error": f"out of memory after {tries} tries"
    }  # fmt: skip


def bench_generate_rows(
    models: dict[str, torch.nn.Module], batches: list[tuple[int, int]], prompt_len: int, ceilings: Ceilings,
    compile_step: str | None = None, largest: tuple[int, int] | None = None,
) -> Iterator[dict]:  # fmt: skip
    """The decode rows of ``models`` (name → model), yielded as they come: for each step of
    `compile_steps(compile_step)`, compiled first, each model's ``(batch, new_tokens)`` of ``batches`` (an error row
    where it does not fit), then, with ``largest = (capacity_new, new_tokens)``, each model's
    `bench_generate_largest` (a model's eager step starts from the batch its compiled one reached).

    The order keeps each compiled row at the time it takes in a process of its own. On the H200 (sessions 13–14,
    ``benchmarks/notes/generation.md``; not understood) a compiled step's CUDA graph replays slower after an eager
    step's graph was captured in the process, even one never replayed (Based-360M at batch 1: 0.579 → 0.665 ms),
    and after another model's run at its largest batch (Transformer-360M at batch 1: 0.747 → 0.851 ms); neither a
    trivial graph nor other compiled steps at batch 1 or 128 do it."""
    start: dict[str, int] = {}
    for step in reversed(compile_steps(compile_step)):  # the compiled step first
        for name, model in models.items():
            for b, new in batches:
                try:
                    yield bench_generate(name, b, prompt_len, new, ceilings, model=model, compile_step=step)
                except torch.cuda.OutOfMemoryError:
                    yield {"model": name, "batch": b, "step": step_label(step), "error": "out of memory"}
                torch.cuda.empty_cache()
        if largest is None:
            continue
        for name, model in models.items():
            row = bench_generate_largest(
                name, model, prompt_len, *largest, ceilings, compile_step=step, batch=start.get(name)
            )
            start[name] = row["batch"]
            torch.cuda.empty_cache()
            yield row


_CHILD_DONE = "__mixerzoo_child_done__"


def _child_main(fn, args: tuple, conn) -> None:
    """`run_in_child`'s process: send each row of ``fn(*args)``, an error row if it raises, then the end marker.
    A pipe's ``send`` returns once the row is written, so a crash later loses none of the rows before it."""
    try:
        for row in fn(*args):
            conn.send(row)
    except BaseException as e:  # noqa: BLE001 (reported to the parent as a row, never lost)
        conn.send({"error": f"{type(e).__name__}: {e}"})
    finally:
        conn.send(_CHILD_DONE)
        conn.close()


def run_in_child(fn, *args) -> Iterator[dict]:
    """Iterate ``fn(*args)`` (a module-level generator of dict rows, so a spawned process can import it) in a new
    process and yield its rows as they arrive. An exception in the child ends its rows with an ``{"error": ...}``
    row; so does its exit before the end (a crash, a kill), with its exit code. The rows sent before are kept."""
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no CUDA state shared with this process
    rows, conn = ctx.Pipe(duplex=False)
    # not a daemon: torch.compile may start worker processes of its own
    proc = ctx.Process(target=_child_main, args=(fn, args, conn))
    proc.start()
    conn.close()  # the child holds the only writing end: its exit ends the pipe
    try:
        while True:
            try:
                row = rows.recv()
            except EOFError:
                proc.join()
                yield {"error": f"the child process running {fn.__name__} exited with code {proc.exitcode}"}
                return
            if row == _CHILD_DONE:
                return
            yield row
    finally:
        rows.close()
        proc.join(timeout=60)
        if proc.is_alive():
            proc.kill()
            proc.join()


def bench_generate_prefill_rows(
    models: dict[str, torch.nn.Module], batches: list[tuple[int, int]], prompt_len: int, ceilings: Ceilings,
    compile_step: str | None = None, largest: tuple[int, int] | None = None,
    prefill: tuple[int, str | None, bool] | None = None,
) -> Iterator[dict]:  # fmt: skip
    """`bench_generate_rows` of ``models``, then with ``prefill = (seq_len, compile, cuda_graph)`` each one's
    prefill at batch 1 (eager, and compiled with a ``compile`` mode; each replayed from a CUDA graph if
    ``cuda_graph``; rows with a ``prefill`` key)."""
    yield from bench_generate_rows(models, batches, prompt_len, ceilings, compile_step, largest)
    if prefill is not None:
        seq_len, compile, graph = prefill
        for name, model in models.items():
            yield from bench_prefill_rows(name, model, [1], seq_len, ceilings, compile, (graph,))


def _model_rows(name: str, *args) -> Iterator[dict]:
    """One model's rows for `bench_generate_isolated`, built in the child: `bench_generate_prefill_rows`."""
    yield from bench_generate_prefill_rows({name: _build(name, torch.bfloat16)}, *args)


def bench_generate_isolated(
    names: list[str], batches: list[tuple[int, int]], prompt_len: int, ceilings: Ceilings,
    compile_step: str | None = None, largest: tuple[int, int] | None = None,
    prefill: tuple[int, str | None, bool] | None = None,
) -> Iterator[dict]:  # fmt: skip
    """`bench_generate_rows` of each model of ``names`` in a process of its own (`run_in_child`), one after
    another, then its prefill rows (``prefill = (seq_len, compile, cuda_graph)``; rows with a ``prefill`` key).
    Each model is timed as a user running that one model would see it: on the H200 (sessions 13–15, not understood)
    a compiled step replays slower after other CUDA graphs were captured in the process (the Transformer-360M's
    batch-1 step 0.665 ms alone, 0.749 ms after Based's compiled rows). An error row names its model."""
    for name in names:
        for row in run_in_child(_model_rows, name, batches, prompt_len, ceilings, compile_step, largest, prefill):
            row.setdefault("model", name)
            yield row


def bench_generate_models(
    names: list[str], batches: list[tuple[int, int]], prompt_len: int, ceilings: Ceilings,
    compile_step: str | None = None, largest: tuple[int, int] | None = None,
    prefill: tuple[int, str | None, bool] | None = None, one_process: bool = False,
) -> Iterator[dict]:  # fmt: skip
    """The rows of ``benchmarks/generation.py`` and ``mixerzoo bench generate``: `bench_generate_isolated`, or with
    ``one_process`` every model built here first and `bench_generate_prefill_rows` (every compiled row before any
    eager one)."""
    if not one_process:
        return bench_generate_isolated(names, batches, prompt_len, ceilings, compile_step, largest, prefill)
    models = {name: _build(name, torch.bfloat16) for name in names}
    return bench_generate_prefill_rows(models, batches, prompt_len, ceilings, compile_step, largest, prefill)


def prefill_flops(model, batch: int, seq_len: int) -> float:
    """FLOPs of a prefill of ``[batch, seq_len]`` tokens: 2 per weight per token (the embedding and the head, which
    runs at the last position only, excepted) plus the mixers' own products (causal attention: half of 4·L²·d)."""
    weights = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(("embed.", "head.")))
    flops = 2.0 * batch * seq_len * weights
    for block in model.stack.blocks:
        m = block.mixer
        if isinstance(m, Attention):
            flops += 2.0 * batch * seq_len * seq_len * m.heads * m.head_dim
        elif isinstance(m, SlidingWindowAttention):
            flops += 4.0 * batch * seq_len * min(seq_len, m.window) * m.heads * m.head_dim
        elif isinstance(m, LinearAttention):
            flops += 4.0 * batch * seq_len * m.heads * m.feature_map.out_dim * (m.head_dim + 1)
    return flops


@torch.no_grad()
def bench_prefill(
    name: str, batch: int, seq_len: int, ceilings: Ceilings, dtype=torch.bfloat16, model=None,
    compile: bool | str = False, cuda_graph: bool = False,
) -> dict:  # fmt: skip
    """Time ``model.prefill`` over ``[batch, seq_len]`` tokens; floor = FLOPs / matmul rate.

    ``compile`` (``True`` or a ``torch.compile`` mode) times the compiled prefill (``prefill(compile=...)``);
    ``cuda_graph`` the prefill replayed from a CUDA graph (``prefill(cuda_graph=True)``, label ``+graph``);
    ``warmup_s`` is the first, untimed call: the compile and the capture, if any.
    """
    model = model if model is not None else _build(name, dtype)
    ids = torch.randint(0, model.vocab_size, (batch, seq_len), device="cuda")
    warmup_s, ms = _warm_up_and_time(lambda: model.prefill(ids, compile=compile, cuda_graph=cuda_graph), reps=5)
    floor_ms = ceilings.floor_ms(0, prefill_flops(model, batch, seq_len))
    return {"model": name, "batch": batch, "prefill": prefill_label(compile, cuda_graph), "seq_len": seq_len, "ms": ms,
            "floor_ms": floor_ms, "over_floor": ms / floor_ms, "tokens_per_s": batch * seq_len / (ms * 1e-3),
            "warmup_s": warmup_s}  # fmt: skip


def bench_prefill_rows(
    name: str, model, batches: list[int], seq_len: int, ceilings: Ceilings, compile: str | None,
    graphs: tuple[bool, ...] = (False,),
) -> Iterator[dict]:  # fmt: skip
    """`bench_prefill` of ``model`` at each batch, eager and (with a ``compile`` mode) compiled, each with and
    without a CUDA graph as ``graphs`` says."""
    for b in batches:
        for mode in compile_steps(compile):
            for graph in graphs:
                yield bench_prefill(name, b, seq_len, ceilings, model=model, compile=mode, cuda_graph=graph)


PREFILL_KEYS = ["model", "batch", "prefill", "seq_len", "ms", "floor_ms", "over_floor", "tokens_per_s", "warmup_s"]
PREFILL_SPEEDUP_KEYS = ["model", "batch", "prefill", "eager_ms", "compiled_ms", "speedup", "warmup_s"]


def prefill_speedups(rows: list[dict]) -> list[dict]:
    """Eager prefill time over compiled prefill time, per (model, batch) that has both rows (graphed rows against
    graphed rows)."""
    return speedups(rows, label="prefill", ms="ms", cost="warmup_s")


def plot_throughput(panels: dict[str, list[dict]], path) -> None:
    """Decode tokens per second against batch size (both axes log), one panel per title in ``panels`` (e.g. one per
    model pair), one line per (model, step): solid eager, dashed compiled; a hollow marker where a step is more than
    1.3× above its floor. Rows are ``bench_generate`` results; rows with an ``error`` are skipped."""
    from mixerzoo.report import _figure

    figure = _figure(5.2 * len(panels), 4.4)
    for i, (title, rows) in enumerate(panels.items()):
        ax = figure.add_subplot(1, len(panels), i + 1)
        ok = [r for r in rows if "error" not in r and "tokens_per_s" in r]
        for j, model in enumerate(dict.fromkeys(r["model"] for r in ok)):
            for step in dict.fromkeys(r["step"] for r in ok if r["model"] == model):
                mine = sorted((r for r in ok if r["model"] == model and r["step"] == step), key=lambda r: r["batch"])
                ax.plot([r["batch"] for r in mine], [r["tokens_per_s"] for r in mine], color=f"C{j}",
                        linestyle="-" if step == "eager" else "--", label=f"{model} ({step})")  # fmt: skip
                for r in mine:
                    near = r.get("step_over_floor", 99) <= 1.3
                    ax.plot(r["batch"], r["tokens_per_s"], marker="o", color=f"C{j}",
                            markerfacecolor=f"C{j}" if near else "white")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("decode tokens / s")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    figure.savefig(path)


def environment() -> dict:
    """What a results file records about the run: command, GPU, versions and the date."""
    import triton

    props = torch.cuda.get_device_properties(0)
    return {
        "command": "python " + " ".join(sys.argv), "gpu": f"{props.name}, {props.multi_processor_count} SMs",
        "torch": torch.__version__, "triton": triton.__version__, "cuda": torch.version.cuda,
        "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }  # fmt: skip


def _table(rows: list[dict], keys: list[str]) -> str:
    def fmt(v):
        return f"{v:,.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def bench_main(argv: list[str] | None = None) -> int:
    """``mixerzoo bench generate|prefill MODEL... [options]``: prints a table, writes JSON/markdown if asked."""
    parser = argparse.ArgumentParser(prog="mixerzoo bench")
    parser.add_argument("what", choices=("generate", "prefill"))
    parser.add_argument("models", nargs="+", help="presets or specs, e.g. based-1.3b transformer-1.3b")
    parser.add_argument("--batch", type=int, nargs="+", default=[128])
    parser.add_argument(
        "--prompt", type=int, default=1024, help="prompt length (generate) or sequence length (prefill)"
    )
    parser.add_argument("--new", type=int, default=1024, help="tokens to generate")
    parser.add_argument("--largest-batch", action="store_true", help="also decode at each model's largest batch")
    parser.add_argument("--largest-new", type=int, default=128, help="tokens decoded at the largest batch")
    parser.add_argument(
        "--compile-step", nargs="?", const="default", default=None, metavar="MODE",
        help="also time the torch.compile'd step (graphed the same way) beside the eager one; optional mode, "
        "e.g. max-autotune-no-cudagraphs",
    )  # fmt: skip
    parser.add_argument(
        "--compile", nargs="?", const="default", default=None, metavar="MODE",
        help="prefill: also time the torch.compile'd prefill beside the eager one (compiled in an untimed warm-up); "
        "optional mode, e.g. max-autotune-no-cudagraphs",
    )  # fmt: skip
    parser.add_argument(
        "--cuda-graph", action="store_true",
        help="prefill: also time each prefill replayed from a CUDA graph (prefill(cuda_graph=True))",
    )  # fmt: skip
    parser.add_argument(
        "--one-process", action="store_true",
        help="generate: time every model in this process (compiled rows first) instead of each in a process of its "
        "own (bench_generate_isolated)",
    )  # fmt: skip
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if (args.compile is not None or args.cuda_graph) and args.what != "prefill":
        parser.error("--compile and --cuda-graph are the prefill's; the decode step is always graphed, --compile-step")
    if not torch.cuda.is_available():
        print("mixerzoo bench needs a CUDA GPU", file=sys.stderr)
        return 2
    ceilings = measure_ceilings()
    torch.cuda.empty_cache()
    print(
        f"ceilings: copy {ceilings.copy_bytes_per_s / 1e12:.2f} TB/s, bf16 matmul {ceilings.matmul_flops_per_s / 1e12:.0f} TFLOP/s"
    )
    rows = []
    if args.what == "prefill":
        for name in args.models:
            model = _build(name, torch.bfloat16)
            graphs = (False, True) if args.cuda_graph else (False,)
            for row in bench_prefill_rows(name, model, args.batch, args.prompt, ceilings, args.compile, graphs):
                rows.append(row)
                print(row, flush=True)
            del model
            torch.cuda.empty_cache()
    else:
        largest = (args.new, args.largest_new) if args.largest_batch else None
        batches = [(b, args.new) for b in args.batch]
        gen = bench_generate_models(
            args.models, batches, args.prompt, ceilings, args.compile_step, largest, one_process=args.one_process
        )
        for row in gen:
            rows.append(row)
            print(row, flush=True)
    ok = [r for r in rows if "error" not in r]
    keys = (
        PREFILL_KEYS
        if args.what == "prefill"
        else ["model", "batch", "step", "new_tokens", "tokens_per_s", "step_ms", "floor_ms", "step_over_floor"]
        + ["peak_gb"]
    )
    print(_table(ok, keys))
    if speedups(ok):
        print(_table(speedups(ok), ["model", "batch", "step", "eager_ms", "compiled_ms", "speedup", "capture_s"]))
    if prefill_speedups(ok):
        print(_table(prefill_speedups(ok), PREFILL_SPEEDUP_KEYS))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": environment(), "ceilings": asdict(ceilings), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(bench_main())
