"""The registries: sequence mixers and feature maps, one namespace of short lowercase names.

A feature-map name is also a layer token: ``taylor16`` is causal linear attention with the Taylor
feature map at d′ = 16. Registration is strict (timm's decorators, xformers' refusal of duplicates):

- names match ``[a-z][a-z_]*``; digits after a name are its inline number, so a name can never
  be another name plus digits (``taylor2`` would make ``taylor216`` ambiguous);
- a name is registered once, across both kinds, unless ``override=True``;
- option keys are the fields of the entry's frozen config dataclass; anything else is an error.

Third-party packages register through the entry-point groups ``mixerzoo.mixers`` and
``mixerzoo.feature_maps`` (the value names a module or object whose import registers it). Plugins
load on the first lookup; an import failure is remembered and shown when a name is not found.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

from mixerzoo.spec import LayerSchema, OptionSpec, Vocabulary

__all__ = [
    "BLOCK_OPTIONS",
    "Entry",
    "RegistryError",
    "get",
    "list_names",
    "plugin_errors",
    "register_feature_map",
    "register_mixer",
    "vocabulary",
]

Kind = Literal["mixer", "feature_map"]
ENTRY_POINT_GROUPS: dict[str, Kind] = {"mixerzoo.mixers": "mixer", "mixerzoo.feature_maps": "feature_map"}
_NAME = re.compile(r"[a-z][a-z_]*\Z")
RESERVED_NAMES = frozenset({"mix"})  # grammar keywords

# Options every layer token accepts: they configure the block around the mixer, not the mixer.
BLOCK_OPTIONS: dict[str, OptionSpec] = {"mlp": OptionSpec(str, None, ("swiglu", "gelu", "none"))}


class RegistryError(ValueError):
    """A registration or lookup that the registry refuses; the message says why and what to do."""


@dataclass(frozen=True)
class Entry:
    """One registered mixer or feature map."""

    name: str
    kind: Kind
    cls: type
    config: type  # frozen dataclass of the options
    number_field: str | None  # which config field the inline number fills
    doc: str

    def option_specs(self) -> dict[str, OptionSpec]:
        """The declared options of this entry (its config fields, minus the inline-number field)."""
        return {f.name: spec for f, spec in _field_specs(self.config) if f.name != self.number_field}


_ENTRIES: dict[str, Entry] = {}
_PLUGIN_ERRORS: dict[str, str] = {}
_plugins_loaded = False


def _unwrap_optional(tp: Any) -> type:
    """``int | None`` -> ``int``; ``Literal["a", "b"]`` -> ``str``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _unwrap_optional(args[0])
    if typing.get_origin(tp) is Literal:
        return type(typing.get_args(tp)[0])
    return tp if isinstance(tp, type) else str


def _field_specs(config: type) -> list[tuple[dataclasses.Field, OptionSpec]]:
    hints = typing.get_type_hints(config)
    out = []
    for f in dataclasses.fields(config):
        if not f.init:
            continue
        tp = hints[f.name]
        choices = tuple(typing.get_args(tp)) if typing.get_origin(tp) is Literal else None
        if choices is None and typing.get_origin(tp) in (typing.Union, types.UnionType):
            for arg in typing.get_args(tp):
                if typing.get_origin(arg) is Literal:
                    choices = tuple(typing.get_args(arg))
        default = f.default if f.default is not dataclasses.MISSING else None
        out.append((f, OptionSpec(_unwrap_optional(tp), default, choices)))
    return out


def _register(kind: Kind, name: str, config: type, number: str | None, override: bool) -> Callable[[type], type]:
    if not _NAME.match(name):
        stem = re.match(r"[a-z_]*", name).group(0)
        hint = (
            f"it is '{stem}' followed by digits, and digits after a name are read as its inline number"
            if stem and name[len(stem) :].isdigit()
            else "names are lowercase letters and underscores"
        )
        raise RegistryError(f"invalid {kind} name {name!r}: {hint}; choose a name matching [a-z][a-z_]*")
    if name in RESERVED_NAMES:
        raise RegistryError(f"{kind} name {name!r} is reserved by the spec grammar ({name}(...)); choose another name")
    if not dataclasses.is_dataclass(config) or not config.__dataclass_params__.frozen:
        raise RegistryError(f"{kind} {name!r}: config must be a frozen dataclass, got {config!r}")
    fields = {f.name for f in dataclasses.fields(config)}
    if number is not None and number not in fields:
        raise RegistryError(f"{kind} {name!r}: inline-number field {number!r} is not a field of {config.__name__}")
    clash = fields & set(BLOCK_OPTIONS)
    if clash:
        raise RegistryError(f"{kind} {name!r}: config field(s) {sorted(clash)} are reserved block options")

    def decorator(cls: type) -> type:
        if name in _ENTRIES and not override:
            prior = _ENTRIES[name]
            raise RegistryError(
                f"duplicate name {name!r}: already registered as a {prior.kind} by "
                f"{prior.cls.__module__}.{prior.cls.__qualname__}; choose another name or pass override=True"
            )
        doc = (cls.__doc__ or "").strip().splitlines()
        _ENTRIES[name] = Entry(name, kind, cls, config, number, doc[0] if doc else "")
        cls.registry_name = name
        return cls

    return decorator


def register_mixer(name: str, *, config: type, number: str | None = None, override: bool = False):
    """Class decorator that registers a sequence mixer under ``name``.

    Args:
        name: the layer token, e.g. ``"sw"``.
        config: the mixer's frozen config dataclass; its fields are the token's options.
        number: the config field that the inline number fills (``"window"`` for ``sw64``), or None.
        override: replace an existing registration instead of refusing it.

    Example (``tests/test_registry.py`` registers mixers this way)::

        @register_mixer("mymix", config=MyMixConfig, number="width")
        class MyMix(Mixer): ...
    """
    return _register("mixer", name, config, number, override)


def register_feature_map(name: str, *, config: type, override: bool = False):
    """Class decorator that registers a feature map; ``name`` also becomes a linear-attention layer token."""
    return _register("feature_map", name, config, None, override)


def load_plugins(force: bool = False) -> None:
    """Import every entry point of the ``mixerzoo.mixers`` and ``mixerzoo.feature_maps`` groups once."""
    global _plugins_loaded
    if _plugins_loaded and not force:
        return
    _plugins_loaded = True
    for group in ENTRY_POINT_GROUPS:
        for ep in metadata.entry_points(group=group):
            try:
                ep.load()
            except Exception as err:  # noqa: BLE001 - any failure of third-party code is reported, not raised
                _PLUGIN_ERRORS[f"{group}:{ep.name}"] = f"{type(err).__name__}: {err}"


def plugin_errors() -> dict[str, str]:
    """Entry points that failed to import, ``"group:name" -> "ErrorType: message"``."""
    load_plugins()
    return dict(_PLUGIN_ERRORS)


def get(name: str, kind: Kind | None = None) -> Entry:
    """The entry registered under ``name``; a clear error with the nearest names when there is none."""
    load_plugins()
    entry = _ENTRIES.get(name)
    if entry is None or (kind is not None and entry.kind != kind):
        import difflib

        pool = sorted(n for n, e in _ENTRIES.items() if kind is None or e.kind == kind)
        near = difflib.get_close_matches(name, pool, n=1)
        msg = f"unknown {kind.replace('_', ' ') if kind else 'name'} {name!r}"
        msg += f"; did you mean {near[0]!r}?" if near else ""
        msg += f" Registered: {', '.join(pool)}."
        if _PLUGIN_ERRORS:
            msg += " Plugins that failed to import: " + "; ".join(f"{k} ({v})" for k, v in _PLUGIN_ERRORS.items())
        raise RegistryError(msg)
    return entry


def _natural_key(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def list_names(pattern: str = "*", kind: Kind | None = None) -> list[str]:
    """Registered names matching a shell-style wildcard, in natural order.

    >>> list_names("perf*")
    ['performer']
    """
    load_plugins()
    names = [n for n, e in _ENTRIES.items() if (kind is None or e.kind == kind) and fnmatch.fnmatchcase(n, pattern)]
    return sorted(names, key=_natural_key)


def vocabulary() -> Vocabulary:
    """The layer vocabulary the spec parser checks names and options against."""
    load_plugins()
    from mixerzoo.mixers.linear_attention import LinearAttentionConfig

    layers: dict[str, LayerSchema] = {}
    la_options = {f.name: spec for f, spec in _field_specs(LinearAttentionConfig) if f.name != "d_prime"}
    la_options.pop("feature_map", None)
    for name, entry in _ENTRIES.items():
        if entry.kind == "mixer":
            options = {**entry.option_specs(), **BLOCK_OPTIONS}
            default = None
            if entry.number_field is not None:
                default = next(s.default for f, s in _field_specs(entry.config) if f.name == entry.number_field)
            layers[name] = LayerSchema(name, entry.number_field, default, options)
        else:
            own = entry.option_specs()
            clash = set(own) & set(la_options)
            if clash:
                raise RegistryError(
                    f"feature map {name!r}: option(s) {sorted(clash)} collide with linear-attention options; rename them"
                )
            options = {**la_options, **own, **BLOCK_OPTIONS}
            layers[name] = LayerSchema(name, "d_prime", LinearAttentionConfig.d_prime, options)
    return Vocabulary(layers=layers, plugin_errors=dict(_PLUGIN_ERRORS))
