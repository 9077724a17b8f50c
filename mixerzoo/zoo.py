"""The builder: a spec string and a width in, a model out; ``describe`` tells what it holds.

>>> model = build("taylor16-sw64-conv3", d_model=64, vocab_size=100)
>>> model.spec
'taylor16-sw64-conv3'
>>> [layer["token"] for layer in model.layer_configs]
['taylor16', 'sw64', 'conv3']
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import sys
from dataclasses import dataclass
from typing import TextIO

import torch

from mixerzoo import registry
from mixerzoo.mixers import LayerContext, LinearAttention, LinearAttentionConfig, Mixer
from mixerzoo.models import Block, LanguageModel, Stack
from mixerzoo.spec import Layer, SpecError, Vocabulary, canon, check_depth, parse

__all__ = ["PRESETS", "Description", "Preset", "build", "describe", "list_names", "make_mixer"]

MLP_KINDS = ("swiglu", "gelu", "none")


@dataclass(frozen=True)
class Preset:
    """A named model: a spec plus the widths that go with it (``build("based-1.3b")``)."""

    spec: str
    d_model: int
    n_heads: int
    vocab_size: int = 50277  # the GPT-NeoX tokenizer of the BASED checkpoints
    max_len: int = 2048
    doc: str = ""


# BASED (arXiv 2402.18668; HazyResearch/based train/configs/experiment/reference): linear attention (Taylor, d′=16,
# 16 heads) at layers 1, 6, 11, 16, 21(, 27, 33), sliding window at the next index, gated convolutions elsewhere.
# The configs say window_size 256 and pass window_size//2 to flash-attn: 128 keys of lookback, i.e. sw128 here.
_BASED_360M = "(conv3-taylor16-sw128-conv3-conv3)*5-conv3*2"
_BASED_1B = "(conv3-taylor16-sw128-conv3-conv3)*5-conv3*2-taylor16-sw128-conv3*4-taylor16-sw128-conv3"
PRESETS: dict[str, Preset] = {
    "based-360m": Preset(_BASED_360M, 1024, 16, doc="Based 360M: 27 layers, d_model 1024"),
    "based-1.3b": Preset(_BASED_1B, 1792, 16, doc="Based 1.3B: 36 layers, d_model 1792"),
    "transformer-360m": Preset("attn*27", 1024, 16, doc="Transformer baseline, Based-360M's width and depth"),
    "transformer-1.3b": Preset("attn*36", 1792, 16, doc="Transformer baseline, Based-1.3B's width and depth"),
    # the paper's baseline: SDPA pinned to its FlashAttention-2 kernel in the prefill (torch's own pick is cuDNN's on
    # an H200, which is faster); the decode step is the same as the presets' above
    "transformer-360m-fa2": Preset("attn[sdpa=flash]*27", 1024, 16, doc="transformer-360m on FlashAttention-2"),
    "transformer-1.3b-fa2": Preset("attn[sdpa=flash]*36", 1792, 16, doc="transformer-1.3b on FlashAttention-2"),
}


def _default_heads(d_model: int) -> int:
    """Head count when the build does not say: head width 64 where it divides, else one head."""
    return d_model // 64 if d_model % 64 == 0 and d_model >= 64 else 1


def _split(config_cls: type, values: dict) -> tuple[dict, dict]:
    names = {f.name for f in dataclasses.fields(config_cls)}
    return {k: v for k, v in values.items() if k in names}, {k: v for k, v in values.items() if k not in names}


def _from_context(config_cls: type, values: dict, ctx: LayerContext) -> dict:
    """Fill options left at None from the same-named build-context field (e.g. cosformer's max_len)."""
    out = dict(values)
    for f in dataclasses.fields(config_cls):
        if out.get(f.name) is None and hasattr(ctx, f.name):
            out[f.name] = getattr(ctx, f.name)
    return out


def make_mixer(layer: Layer, ctx: LayerContext, vocab: Vocabulary) -> tuple[Mixer, dict]:
    """Instantiate one parsed layer; returns the mixer and its resolved settings (block options removed)."""
    settings = layer.resolved(vocab)
    settings.pop("mlp", None)
    entry = registry.get(layer.name)
    if entry.kind == "mixer":
        mixer = entry.cls(entry.config(**settings), ctx)
        resolved = dataclasses.asdict(mixer.config)
    else:  # a feature-map token: linear attention with that map
        la_values, fm_values = _split(LinearAttentionConfig, settings)
        fm = entry.cls(la_values["d_prime"], entry.config(**_from_context(entry.config, fm_values, ctx)))
        mixer = LinearAttention(LinearAttentionConfig(**la_values), ctx, fm)
        resolved = {**dataclasses.asdict(mixer.config), "feature_map": layer.name, "feature_dim": fm.out_dim}
    mixer.token = layer.token
    return mixer, resolved


def build(
    spec: str,
    d_model: int | None = None,
    vocab_size: int | None = None,
    *,
    n_heads: int | None = None,
    mlp: str = "swiglu",
    max_len: int = 2048,
    n_layers: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> LanguageModel | Stack:
    """Build a model from a spec string.

    Args:
        spec: the layer layout, e.g. ``"(conv3-taylor16-sw128-conv3-conv3)*5-conv3*2"`` (see ``mixerzoo.spec``),
            or a preset name (``based-360m``, ``based-1.3b``, ``transformer-360m``, ``transformer-1.3b``, and the
            last two with ``-fa2``: SDPA's FlashAttention-2 kernel), which also sets d_model, n_heads and vocab_size
            unless they are given.
        d_model: model width (default 256, or the preset's).
        vocab_size: with a vocabulary, a ``LanguageModel`` (embedding → blocks → norm → head);
            without, the block ``Stack`` (``[B, L, D] -> [B, L, D]``).
        n_heads: heads of every attention-like layer unless its ``[heads=N]`` says otherwise
            (default: d_model // 64, or 1 when 64 does not divide d_model).
        mlp: the MLP after each mixer: ``"swiglu"``, ``"gelu"`` or ``"none"`` (per layer: ``[mlp=none]``).
        max_len: longest sequence the model is meant for (KV-cache default, cosformer's horizon).
        n_layers: if given, the depth the spec must expand to (a check, never a tile or truncation).
        device, dtype: where and in what precision to create the parameters.

    Returns:
        The model; ``model.spec`` is the canonical spec and ``model.layer_configs`` the resolved
        settings of every layer.

    Raises:
        SpecError: the spec does not parse, names an unknown layer or option, or has the wrong depth.
        ValueError: a layer cannot be built at this width (the message names the layer and the fix).
    """
    preset = PRESETS.get(spec) if isinstance(spec, str) else None
    if preset is not None:
        spec, max_len = preset.spec, max(max_len, preset.max_len)
        d_model, n_heads = d_model or preset.d_model, n_heads or preset.n_heads
        vocab_size = vocab_size or preset.vocab_size
    d_model = 256 if d_model is None else d_model
    if mlp not in MLP_KINDS:
        raise ValueError(f"build: mlp must be one of {', '.join(MLP_KINDS)}, got {mlp!r}")
    if not isinstance(d_model, int) or d_model < 1:
        raise ValueError(f"build: d_model must be a positive int, got {d_model!r}")
    if vocab_size is not None and (not isinstance(vocab_size, int) or vocab_size < 1):
        raise ValueError(f"build: vocab_size must be a positive int or None, got {vocab_size!r}")
    vocab = registry.vocabulary()
    try:
        layers = parse(spec, vocab) if n_layers is None else check_depth(spec, n_layers, vocab)
    except SpecError as err:
        raise _with_preset_hint(err) from None
    heads = n_heads or _default_heads(d_model)
    blocks, configs = [], []
    with torch.device(device) if device is not None else contextlib.nullcontext():
        for i, layer in enumerate(layers):
            ctx = LayerContext(d_model=d_model, n_heads=heads, max_len=max_len, layer_idx=i, n_layers=len(layers))
            try:
                mixer, resolved = make_mixer(layer, ctx, vocab)
            except (ValueError, TypeError) as err:
                raise ValueError(f"layer {i} {layer.token!r}: {err}") from None
            block_mlp = dict(layer.options).get("mlp") or mlp
            blocks.append(Block(mixer, d_model, block_mlp))
            configs.append({"index": i, "token": layer.token, "name": layer.name, "mlp": block_mlp, **resolved})
        stack = Stack(blocks, canon(spec, vocab), d_model, configs)
        model = stack if vocab_size is None else LanguageModel(stack, vocab_size, max_len)
    if dtype is not None:
        model = model.to(dtype)
    return model


def _with_preset_hint(err: SpecError) -> SpecError:
    """``err`` with the presets listed in its hint when its spec looks like a preset's name (``based-3b``,
    ``transformer-360``, ``Based-1.3B``): close to one, or starting with a preset family's name and a dash."""
    if err.spec is None:
        return err
    name = err.spec.strip().lower()
    near = difflib.get_close_matches(name, list(PRESETS), n=1, cutoff=0.6)
    if not near and name.split("-")[0] not in {p.split("-")[0] for p in PRESETS}:
        return err
    lines = [f"did you mean the preset '{near[0]}'?"] if near else []
    lines.append("presets: " + ", ".join(PRESETS))
    return SpecError(err.message, err.spec, err.start, err.end, "\n".join([*lines, err.hint] if err.hint else lines))


@dataclass
class Description:
    """What ``describe`` returns: one row per layer and the totals; ``str()`` is the table."""

    spec: str
    d_model: int
    seq_len: int
    rows: list[dict]
    total_params: int
    total_state: int

    def __str__(self) -> str:
        head = f"{self.spec}  (d_model={self.d_model}, {len(self.rows)} layers, state at L={self.seq_len})"
        lines = [head, f"{'idx':>4}  {'layer':<28} {'mlp':<7} {'params':>14} {'state':>14}"]
        for r in self.rows:
            lines.append(f"{r['index']:>4}  {r['token']:<28} {r['mlp']:<7} {r['params']:>14,} {r['state']:>14,}")
        lines.append(f"{'':>4}  {'total (blocks + embeddings)':<36} {self.total_params:>14,} {self.total_state:>14,}")
        return "\n".join(lines)


def describe(
    spec: str,
    d_model: int | None = None,
    vocab_size: int | None = None,
    *,
    seq_len: int = 2048,
    file: TextIO | None | str = "stdout",
    **build_kwargs,
) -> Description:
    """Print and return a per-layer table: index, token, parameters, state elements after ``seq_len`` tokens.

    The model is built on the ``meta`` device, so describing a billion-parameter layout costs nothing.
    ``file`` is where to print (standard output by default, None for nowhere).

    Example:
        >>> d = describe("conv3-taylor16", d_model=64, seq_len=1024, file=None)
        >>> [r["token"] for r in d.rows], d.rows[1]["state"]
        (['conv3', 'taylor16'], 9945)
    """
    model = build(spec, d_model, vocab_size, device="meta", **build_kwargs)
    stack = model if isinstance(model, Stack) else model.stack
    rows = []
    for cfg, block in zip(stack.layer_configs, stack.blocks):
        rows.append({
            "index": cfg["index"], "token": cfg["token"], "mlp": cfg["mlp"],
            "params": sum(p.numel() for p in block.parameters()), "state": block.mixer.state_size(seq_len),
        })  # fmt: skip
    total_params = sum(p.numel() for p in model.parameters())
    desc = Description(stack.spec, stack.d_model, seq_len, rows, total_params, sum(r["state"] for r in rows))
    if file is not None:
        print(desc, file=sys.stdout if file == "stdout" else file)
    return desc


def list_names(pattern: str = "*", kind: str | None = None) -> list[str]:
    """Registered layer names (mixers and feature maps) matching a wildcard, in natural order.

    >>> list_names("perf*")
    ['performer']
    """
    return registry.list_names(pattern, kind)
