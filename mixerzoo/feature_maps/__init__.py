"""Feature maps for linear attention; importing this package registers them (in this order)."""

from __future__ import annotations

from mixerzoo.feature_maps.base import FeatureMap
from mixerzoo.feature_maps.cosformer import CosFormer
from mixerzoo.feature_maps.identity import Identity
from mixerzoo.feature_maps.performer import Performer
from mixerzoo.feature_maps.poselu import PosELU
from mixerzoo.feature_maps.relu import ReLU
from mixerzoo.feature_maps.square import Square
from mixerzoo.feature_maps.taylor import Taylor

__all__ = ["CosFormer", "FeatureMap", "Identity", "Performer", "PosELU", "ReLU", "Square", "Taylor", "feature_map"]


def feature_map(name: str, d_prime: int, **options) -> FeatureMap:
    """Create a registered feature map by name.

    Args:
        name: a registered feature-map name (``mixerzoo.list(kind="feature_map")``).
        d_prime: d′, the per-head width of the queries and keys it maps.
        **options: the map's options (e.g. ``m=64`` for performer, ``max_len=2048`` for cosformer).

    Example:
        >>> phi = feature_map("taylor", 16)
        >>> phi.out_dim
        153
    """
    import dataclasses

    from mixerzoo import registry

    entry = registry.get(name, "feature_map")
    fields = sorted(f.name for f in dataclasses.fields(entry.config))
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ValueError(
            f"feature map {name!r} has no option(s) {unknown}; its options are: {', '.join(fields) or 'none'}"
        )
    return entry.cls(d_prime, entry.config(**options))
