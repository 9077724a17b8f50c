"""Renders call 3's training table (``call3/train.log``) with the benchmark's own ``write_markdown``: that run reached
its 330 s limit inside FLA's D=16 child process (autotuning before the fault), before the benchmark wrote its files,
so the rows here are the ones it printed. Run on any machine from the repository root:
``python3 benchmarks/results/session9/render_call3.py`` → ``benchmarks/results/linear_attention.{md,json}``."""

import ast
import json
import re
import sys

sys.path.insert(0, "benchmarks")
import linear_attention as LA  # noqa: E402

from mixerzoo.feature_maps import feature_map  # noqa: E402

HERE = "benchmarks/results/session9/call3"
D = {name: feature_map(name, LA.DK, **opts).out_dim for name, opts in LA.MAPS.items()}  # the benchmark's maps
ROW = re.compile(r"^(\S+)\s+(\S+)\s+L=\s*(\d+) fwd\s+([\d.]+) ms\s+fwd\+bwd\s+([\d.]+) ms$")

gpu, versions = open(f"{HERE}/gpu.txt").read().splitlines()[:2]
LA.RESULTS["meta"] = dict(
    command="python3 benchmarks/linear_attention.py --out $OUT/train --sections train --quick --fla-chunk "
    "(benchmarks/results/session9/call3.sh; table rendered from its log by session9/render_call3.py)",
    gpu=gpu.split(",")[0] + ", 132 SMs", torch=versions.split()[1], triton=versions.split()[3], fla="0.6.0",
    date="2026-11-29 (session 9, call 3)", algorithm="auto",
    note="the run reached its 330 s limit in FLA's D=16 child process (autotuning before the illegal memory access "
    "that D=16 and D=32 met in call 2), before the benchmark wrote its files: rows from its log.",
)  # fmt: skip
for line in open(f"{HERE}/train.log"):
    line = line.strip()
    if line.startswith("ceilings "):
        LA.RESULTS["ceilings"] = ast.literal_eval(line[len("ceilings ") :])
    elif m := ROW.match(line):
        kind, impl, L, t_f, t_fb = m[1], m[2], int(m[3]), float(m[4]), float(m[5])
        extra = {}
        if impl == "mixerzoo":
            extra = dict(D=D[kind], mode="auto", **LA.floors(kind, D[kind], L))
        elif impl.startswith("fla.chunk_linear_attn"):
            extra = dict(D=int(impl.split("D=")[1].rstrip(")")))
        LA.record(kind, impl, L, t_f, t_fb, **extra)
LA.RESULTS["errors"] = [
    "fla chunk_linear_attn D=16 L=8192: not finished here (330 s limit); call 2: CUDA error: an illegal memory access",
    "fla chunk_linear_attn D=32 L=8192: not run here (330 s limit); call 2: CUDA error: an illegal memory access",
]
with open("benchmarks/results/linear_attention.json", "w") as f:
    json.dump(LA.RESULTS, f, indent=1)
LA.write_markdown("benchmarks/results/linear_attention.md")
