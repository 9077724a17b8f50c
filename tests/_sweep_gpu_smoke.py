"""GPU smoke for train/sweep (not a test): paper-scale epoch timings, determinism, the worker pool on CUDA."""

from __future__ import annotations

import sys
import time

from mixerzoo.sweep import run_sweep, scale_settings, script_grid
from mixerzoo.tasks.mqar import MQARTask
from mixerzoo.train import RunConfig, train

if __name__ == "__main__":
    t = time.time()
    MQARTask().build()
    print(f"paper data built in {time.time() - t:.1f} s", flush=True)
    for spec in sys.argv[1:] or ["conv3-taylor16", "conv3-attn", "conv3-sw64"]:
        config = RunConfig(spec, 128, 1e-3, **(scale_settings("paper") | {"epochs": 1}))
        r = train(config, progress=False)
        print(spec, f"1 paper epoch + eval: {r.wall_time:.1f} s", r.metrics["accuracy"], r.metrics["slices"], r.device,
              r.state_size, r.num_params, flush=True)  # fmt: skip
    quick = RunConfig("conv3-taylor8", 32, 1e-2, **scale_settings("quick"))
    a, b = train(quick, progress=False), train(quick, progress=False)
    print("deterministic on GPU:", a.metrics == b.metrics, a.metrics["accuracy"], f"{a.wall_time:.1f} s", flush=True)
    name, configs = script_grid("ablations/state_size_frontier.py", "quick")
    t = time.time()
    summary = run_sweep(configs, "/tmp/r.sqlite", name=name, workers=2, progress=False)
    print(summary.finished, summary.failed, f"quick frontier on 2 GPU workers: {time.time() - t:.1f} s", flush=True)
    from mixerzoo.report import report

    report("/tmp/r.sqlite", "/tmp/rep", sweep=name)
