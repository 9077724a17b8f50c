"""The registry: strict registration, natural-order listing, entry-point plugins and their failures."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass

import pytest
import torch

import mixerzoo
from mixerzoo import registry
from mixerzoo.mixers.gated_conv import GatedConv, GatedConvConfig


@dataclass(frozen=True)
class _Cfg:
    width: int = 3


@pytest.fixture
def clean_registry():
    before = dict(registry._ENTRIES), dict(registry._PLUGIN_ERRORS)
    yield
    registry._ENTRIES.clear()
    registry._ENTRIES.update(before[0])
    registry._PLUGIN_ERRORS.clear()
    registry._PLUGIN_ERRORS.update(before[1])


def test_duplicates_are_refused_unless_overridden(clean_registry):
    with pytest.raises(registry.RegistryError, match="duplicate name 'sw'.*override=True"):
        registry.register_mixer("sw", config=_Cfg)(type("X", (), {}))
    registry.register_mixer("sw", config=GatedConvConfig, number="kernel_size", override=True)(GatedConv)
    assert registry.get("sw").cls is GatedConv


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("taylor2", "'taylor' followed by digits"),
        ("Taylor", "lowercase letters and underscores"),
        ("mix", "reserved by the spec grammar"),
        ("a-b", "lowercase letters"),
    ],
)
def test_bad_names_are_refused(clean_registry, name, match):
    with pytest.raises(registry.RegistryError, match=match):
        registry.register_mixer(name, config=_Cfg)


def test_config_must_be_a_frozen_dataclass_with_the_number_field(clean_registry):
    @dataclass
    class Mutable:
        width: int = 1

    with pytest.raises(registry.RegistryError, match="frozen dataclass"):
        registry.register_mixer("thing", config=Mutable)
    with pytest.raises(registry.RegistryError, match="'size' is not a field"):
        registry.register_mixer("thing", config=_Cfg, number="size")

    @dataclass(frozen=True)
    class Clash:
        mlp: str = "x"

    with pytest.raises(registry.RegistryError, match="reserved block options"):
        registry.register_mixer("thing", config=Clash)


def test_a_registered_mixer_is_a_layer_token_at_once(clean_registry):
    registry.register_mixer("widget", config=GatedConvConfig, number="kernel_size")(GatedConv)
    model = mixerzoo.build("widget5-taylor4", d_model=16, n_heads=2)
    assert model.spec == "widget5-taylor4"
    assert model(torch.randn(1, 6, 16)).shape == (1, 6, 16)
    with pytest.raises(mixerzoo.SpecError, match="did you mean 'expand'"):
        mixerzoo.build("widget5[expnd=2]", d_model=16)


def test_list_uses_natural_order_and_wildcards(clean_registry):
    for n in ("zz_b", "zz_a"):
        registry.register_mixer(n, config=_Cfg)(type(n, (), {}))
    assert registry.list_names("zz_*") == ["zz_a", "zz_b"]
    assert registry._natural_key("taylor8") < registry._natural_key("taylor16") < registry._natural_key("taylor32")
    assert mixerzoo.list("*former") == ["cosformer", "performer"]


def _write_distribution(root, name: str, group: str, entries: dict[str, str], module: str, source: str) -> None:
    dist = root / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = [f"[{group}]"] + [f"{k} = {v}" for k, v in entries.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


def test_entry_point_plugins_load_and_failures_are_reported(tmp_path, monkeypatch, clean_registry):
    _write_distribution(
        tmp_path, "zoo_plugin_ok", "mixerzoo.mixers", {"gizmo": "zoo_plugin_ok_mod"}, "zoo_plugin_ok_mod",
        """
        from mixerzoo.registry import register_mixer
        from mixerzoo.mixers.gated_conv import GatedConv, GatedConvConfig

        @register_mixer("gizmo", config=GatedConvConfig, number="kernel_size")
        class Gizmo(GatedConv):
            '''A plugin mixer.'''
        """,
    )  # fmt: skip
    _write_distribution(
        tmp_path, "zoo_plugin_bad", "mixerzoo.feature_maps", {"broken": "zoo_plugin_bad_mod"}, "zoo_plugin_bad_mod",
        "import a_module_that_does_not_exist\n",
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.load_plugins(force=True)
    assert "gizmo" in mixerzoo.list("giz*")
    assert mixerzoo.build("gizmo2", d_model=8, n_heads=1).spec == "gizmo2"
    errors = registry.plugin_errors()
    assert "mixerzoo.feature_maps:broken" in errors and "ModuleNotFoundError" in errors["mixerzoo.feature_maps:broken"]
    with pytest.raises(registry.RegistryError, match="Plugins that failed to import: mixerzoo.feature_maps:broken"):
        registry.get("brokn")
    with pytest.raises(mixerzoo.SpecError, match="broken"):
        mixerzoo.build("brokn16")
    sys.modules.pop("zoo_plugin_ok_mod", None)


def test_vocabulary_exposes_every_option_of_feature_map_tokens():
    vocab = registry.vocabulary()
    performer = vocab.layers["performer"]
    assert performer.number_field == "d_prime" and performer.number_default == 16
    assert {"m", "redraw", "heads", "eps", "normalize", "backend", "mlp"} <= set(performer.options)
    assert vocab.layers["attn"].number_field is None
    assert vocab.layers["sw"].number_default == 64 and vocab.layers["conv"].number_default == 3
