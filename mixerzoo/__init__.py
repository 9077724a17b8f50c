"""mixerzoo: interchangeable sequence mixers with fused kernels and one-line hybrid specs.

>>> import mixerzoo
>>> model = mixerzoo.build("taylor16-sw64-conv3", d_model=64, vocab_size=100)
>>> model.spec
'taylor16-sw64-conv3'
"""

from __future__ import annotations

from mixerzoo import feature_maps as _feature_maps  # noqa: F401  (registers the feature maps)
from mixerzoo import mixers as _mixers  # noqa: F401  (registers the mixers)
from mixerzoo.feature_maps import FeatureMap, feature_map
from mixerzoo.mixers import Mixer
from mixerzoo.models import LanguageModel, Stack
from mixerzoo.registry import RegistryError, register_feature_map, register_mixer
from mixerzoo.spec import SpecError, canon, parse
from mixerzoo.zoo import Description, build, describe, list_names

list = list_names  # noqa: A001 - ``mixerzoo.list("perf*")`` is the documented spelling

__version__ = "0.1.0"

__all__ = [
    "Description",
    "FeatureMap",
    "LanguageModel",
    "Mixer",
    "RegistryError",
    "SpecError",
    "Stack",
    "build",
    "canon",
    "describe",
    "feature_map",
    "list",
    "list_names",
    "parse",
    "register_feature_map",
    "register_mixer",
]
