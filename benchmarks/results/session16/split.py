"""Session 16: can two halves of a batch, each decoded on its own CUDA stream inside one graph, hide the decode step's
GEMM latency? At batch 128 Based-360M's compiled step is 2.7x its floor, most of it ~140 cuBLAS GEMMs at M = 128 that
cost ~5 us each whatever their bytes (session 10); a GEMM at M = 64 costs about the same, so two half-batch chains
whose kernels overlap might finish sooner than one full-batch chain, at the price of reading the weights twice
(partly from L2).

PARTS independent groups of BATCH / PARTS sequences (each prefilled on its own, its own states), the compiled step of
one group's shape run for every group; with STREAMS = PARTS each group on its own stream (forked from the capture
stream and joined back), with STREAMS = 1 one after another on one stream (the control). The linear-attention and
window step kernels elect a finisher by arrival counters shared per kernel (`_launch.arrival_counters`), which
concurrent launches must not share: here they are keyed by the current stream too.

    PYTHONPATH=$PWD python3 benchmarks/results/session16/split.py MODEL BATCH PARTS STREAMS [NEW]
"""

import json
import sys

import torch

from mixerzoo import bench
from mixerzoo.kernels import _launch

name, batch, parts, streams = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
new = int(sys.argv[5]) if len(sys.argv) > 5 else 512
prompt = 1024
assert batch % parts == 0 and streams in (1, parts)

counters = _launch.arrival_counters


def per_stream_counters(owner, device, n):
    return counters(f"{owner}@{torch.cuda.current_stream().stream_id}", device, n)


_launch.arrival_counters = per_stream_counters
torch.set_grad_enabled(False)  # as bench_generate: no autograd graph kept from the prefill

model = bench._build(name, torch.bfloat16)
group = batch // parts
groups = []
for _ in range(parts):
    ids = torch.randint(0, model.vocab_size, (group, prompt), device="cuda")
    logits, states = model.prefill(ids, capacity=prompt + new + 8, batch_chunk=128)
    groups.append({"states": states, "token": logits.argmax(-1)})
decode = model.decode_step(groups[0]["states"], True)  # one compile: every group has the same shapes
capture = torch.cuda.Stream()
lanes = [capture] + [torch.cuda.Stream() for _ in range(streams - 1)]


def lane(i):
    return lanes[i % streams]


def run_groups():  # every group's step, each on its lane, forked from and joined back to the current stream
    here = torch.cuda.current_stream()
    for i, g in enumerate(groups):
        lane(i).wait_stream(here)
        with torch.cuda.stream(lane(i)):
            g["logits"] = decode(g["token"], g["states"])
    for s in lanes:
        here.wait_stream(s)


torch.cuda.synchronize()
with torch.cuda.stream(capture):
    for _ in range(3):  # compile, Triton kernels, counters on every lane, cuBLAS handles
        run_groups()
torch.cuda.synchronize()
graph = torch.cuda.CUDAGraph()
with torch.cuda.graph(graph, stream=capture):
    run_groups()
torch.cuda.synchronize()
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
steps = new - 8
for timed in (False, True):
    if timed:
        start.record()
    for _ in range(steps if timed else 4):
        graph.replay()
        for g in groups:
            g["token"].copy_(g["logits"].argmax(-1))
end.record()
end.synchronize()
ms = start.elapsed_time(end) / steps
print(json.dumps({"model": name, "batch": batch, "parts": parts, "streams": streams, "new": new,
                  "step_ms": round(ms, 4), "tokens_per_s": round(batch / (ms * 1e-3), 1)}), flush=True)  # fmt: skip
