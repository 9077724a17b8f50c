"""Feature maps for linear attention on MQAR (BASED paper, Figure 3): each map across d_model.

Every model is `conv3-<map><d′>` (a gated short conv, then linear attention with that feature map; no MLP,
one head). As in the paper, Taylor keeps a small fixed d′ while the other maps use d′ = d_model, so the
comparison is at their natural state sizes; the report plots accuracy against state size per map.

    python ablations/feature_maps.py --scale quick      # CPU, a few minutes
    python ablations/feature_maps.py --scale medium     # the paper grid for 8 epochs (GPU)
    python ablations/feature_maps.py --scale paper      # the paper's grid (GPU)

paper: d ∈ {64, 128, 256, 512}; Taylor d′ = 16; PosELU, ReLU, Performer, CosFormer, Identity, Square d′ = d;
       lr ∈ logspace(−3, −1.5, 4); paper MQAR data.
medium: the paper grid above with the paper's data for 8 epochs (`mixerzoo.sweep.scale_settings`).
quick: d ∈ {16, 32}; Taylor d′ = 4; the others d′ = d; lr = 1e-2; `mixerzoo.sweep.QUICK_TASK`: 14 runs.
"""

from __future__ import annotations

from mixerzoo.sweep import grid as runs
from mixerzoo.sweep import learning_rates, paper_grid, scale_settings, script_main

MAPS = ("taylor", "poselu", "relu", "performer", "cosformer", "identity", "square")


def grid(scale: str) -> list:
    settings = scale_settings(scale)
    paper = paper_grid(scale)
    d_models, taylor_dim = ([64, 128, 256, 512], 16) if paper else ([16, 32], 4)
    lrs = learning_rates(scale) if paper else [1e-2]
    return [
        config
        for name in MAPS
        for d in d_models
        for config in runs([f"conv3-{name}{taylor_dim if name == 'taylor' else d}"], [d], lrs, family=name, **settings)
    ]


if __name__ == "__main__":
    raise SystemExit(script_main(__file__))
