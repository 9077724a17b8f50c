"""The Taylor feature dimension d′ on MQAR: recall against state size as d′ grows (BASED paper, §3.2).

Every model is `conv3-taylor<d′>` (a gated short conv, then Taylor linear attention; no MLP, one head). The
state of the linear-attention layer grows as (1 + d′ + d′(d′+1)/2)·(d_model + 1), so d′ trades recall for
memory without changing the parameter count much.

    python ablations/feature_dim.py --scale quick      # CPU, a few minutes
    python ablations/feature_dim.py --scale medium     # the paper grid for 8 epochs (GPU)
    python ablations/feature_dim.py --scale paper      # GPU

paper: d′ ∈ {4, 8, 16, 24, 32} × d ∈ {64, 128} (Figure 2 used d′ ∈ {8, 16, 24}); lr ∈ logspace(−3, −1.5, 4); paper MQAR data.
medium: the paper grid above with the paper's data for 8 epochs (`mixerzoo.sweep.scale_settings`).
quick: d′ ∈ {2, 4, 8, 16} × d ∈ {32}; lr ∈ {3.2e-3, 1e-2}; `mixerzoo.sweep.QUICK_TASK`: 8 runs.
"""

from __future__ import annotations

from mixerzoo.sweep import grid as runs
from mixerzoo.sweep import learning_rates, paper_grid, scale_settings, script_main


def grid(scale: str) -> list:
    paper = paper_grid(scale)
    feature_dims, d_models = ([4, 8, 16, 24, 32], [64, 128]) if paper else ([2, 4, 8, 16], [32])
    return [
        config
        for d in d_models
        for config in runs(
            [f"conv3-taylor{f}" for f in feature_dims], [d], learning_rates(scale), family=f"Based d={d}",
            **scale_settings(scale),
        )
    ]  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(script_main(__file__))
