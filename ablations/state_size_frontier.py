"""The recall / state-size frontier (BASED paper, Figure 2): attention, Based and sliding window on MQAR.

Each point is a 2-layer MQAR model, a gated short conv then the mixer (`conv3-<mixer>`, no MLP, one head),
trained at every learning rate; the report keeps the best per point and marks each family's Pareto frontier.

    python ablations/state_size_frontier.py --scale quick      # CPU, a few minutes
    python ablations/state_size_frontier.py --scale medium     # the paper's grid for 8 epochs (one GPU)
    python ablations/state_size_frontier.py --scale paper      # the paper's grid and recipe (GPU)

paper: attention d ∈ {64, 128}; Based `conv3-taylor{d′}` d ∈ {48, 64, 128} × d′ ∈ {8, 16, 24};
       sliding window `conv3-sw{W}` d = 128 × W ∈ {8, …, 1024}; lr ∈ logspace(−3, −1.5, 4); paper MQAR data.
medium: the paper's grid, learning rates and data, 8 epochs instead of 32 (76 runs).
quick: attention d = 32; Based d = 32 × d′ ∈ {4, 8, 16}; sliding window d = 32 × W ∈ {8, 16, 32};
       lr ∈ {3.2e-3, 1e-2}; `mixerzoo.sweep.QUICK_TASK` (L = 64, 4–16 pairs, vocab 128, 8 epochs): 14 runs.
"""

from __future__ import annotations

from mixerzoo.sweep import grid as runs
from mixerzoo.sweep import learning_rates, paper_grid, scale_settings, script_main


def grid(scale: str) -> list:
    settings, lrs = scale_settings(scale), learning_rates(scale)
    paper = paper_grid(scale)
    d_attention, d_based, d_window = ([64, 128], [48, 64, 128], [128]) if paper else ([32], [32], [32])
    feature_dims = [8, 16, 24] if paper else [4, 8, 16]
    windows = [8, 16, 32, 64, 128, 256, 512, 1024] if paper else [8, 16, 32]
    return (
        runs(["conv3-attn"], d_attention, lrs, family="Attention", **settings)
        + runs([f"conv3-taylor{d}" for d in feature_dims], d_based, lrs, family="Based", **settings)
        + runs([f"conv3-sw{w}" for w in windows], d_window, lrs, family="Sliding window", **settings)
    )


if __name__ == "__main__":
    raise SystemExit(script_main(__file__))
