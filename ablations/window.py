"""The sliding-window size W on MQAR, alone and beside Taylor linear attention (BASED paper, §3.2 / Fig. 2).

Two families: sliding window alone, `conv3-sw<W>`, and the Based hybrid, `conv3-taylor<d′>-sw<W>`, whose
linear attention carries the long-range recall while the window sharpens local lookups. W counts the keys
each query sees, itself included; the window's state is its ring buffer, 2·W·d_model.

    python ablations/window.py --scale quick      # CPU, a few minutes
    python ablations/window.py --scale medium     # the paper grid for 8 epochs (GPU)
    python ablations/window.py --scale paper      # GPU

paper: W ∈ {16, 32, 64, 128, 256, 512}, d = 128, hybrid d′ = 16 (Zoology's 02-01_sliding.py tried W ∈ {128, 256, 512}); lr ∈ logspace(−3, −1.5, 4); paper MQAR data.
medium: the paper grid above with the paper's data for 8 epochs (`mixerzoo.sweep.scale_settings`).
quick: W ∈ {4, 8, 16, 32}, d = 32, hybrid d′ = 4; lr = 1e-2; `mixerzoo.sweep.QUICK_TASK`: 8 runs.
"""

from __future__ import annotations

from mixerzoo.sweep import grid as runs
from mixerzoo.sweep import learning_rates, paper_grid, scale_settings, script_main


def grid(scale: str) -> list:
    settings = scale_settings(scale)
    paper = paper_grid(scale)
    windows, d, feature_dim = ([16, 32, 64, 128, 256, 512], 128, 16) if paper else ([4, 8, 16, 32], 32, 4)
    lrs = learning_rates(scale) if paper else [1e-2]
    return runs([f"conv3-sw{w}" for w in windows], [d], lrs, family="Sliding window", **settings) + runs(
        [f"conv3-taylor{feature_dim}-sw{w}" for w in windows], [d], lrs, family=f"Based (taylor{feature_dim} + sw)",
        **settings,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(script_main(__file__))
