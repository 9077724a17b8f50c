"""Hybrid ratios of gated convolution, Taylor linear attention and sliding window, at a fixed depth.

Each model is `mix(conv3:a,taylor<d′>:b,sw<W>:c)@N`: N layers shared a:b:c by largest remainder and spread
evenly (the BASED language models use about 60% conv, 20% linear attention, 20% window). Some mixes drop a
component, to show what each one buys. No MLP, one head, as the other MQAR models.

    python ablations/ratios.py --scale quick      # CPU, a few minutes
    python ablations/ratios.py --scale medium     # the paper grid for 8 epochs (GPU)
    python ablations/ratios.py --scale paper      # GPU

paper (the paper's MQAR data and recipe; the ratio grid is ours, its ratio table was not retrievable):
       N = 10, taylor16, sw64, d = 128, conv:la:sw ∈ {6:2:2, 4:3:3, 2:4:4, 8:1:1, 5:5:0, 5:0:5};
       lr ∈ logspace(−3, −1.5, 4); paper MQAR data.
medium: the paper grid above with the paper's data for 8 epochs (`mixerzoo.sweep.scale_settings`).
quick: N = 4, taylor4, sw8, d = 32, conv:la:sw ∈ {2:1:1, 1:2:1, 1:1:2, 1:1:0, 1:0:1}; lr = 1e-2;
       `mixerzoo.sweep.QUICK_TASK`: 5 runs.
"""

from __future__ import annotations

from mixerzoo.sweep import grid as runs
from mixerzoo.sweep import learning_rates, paper_grid, scale_settings, script_main


def mix(conv: int, linear: int, window: int, *, feature_dim: int, width: int, layers: int) -> str:
    shares = [("conv3", conv), (f"taylor{feature_dim}", linear), (f"sw{width}", window)]
    return "mix(" + ",".join(f"{token}:{n}" for token, n in shares if n) + f")@{layers}"


def grid(scale: str) -> list:
    paper = paper_grid(scale)
    if paper:
        shape = dict(feature_dim=16, width=64, layers=10)
        ratios, d, lrs = [(6, 2, 2), (4, 3, 3), (2, 4, 4), (8, 1, 1), (5, 5, 0), (5, 0, 5)], 128, learning_rates(scale)
    else:
        shape = dict(feature_dim=4, width=8, layers=4)
        ratios, d, lrs = [(2, 1, 1), (1, 2, 1), (1, 1, 2), (1, 1, 0), (1, 0, 1)], 32, [1e-2]
    settings = scale_settings(scale)
    return [
        config
        for ratio in ratios
        for config in runs([mix(*ratio, **shape)], [d], lrs, family="conv:la:sw = {}:{}:{}".format(*ratio), **settings)
    ]


if __name__ == "__main__":
    raise SystemExit(script_main(__file__))
