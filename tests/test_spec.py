"""Tests of the spec grammar: expansion tables, error tables, round trips, mix allocation, fuzzing."""

from __future__ import annotations

import doctest
import pickle
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixerzoo.spec
from mixerzoo.spec import (
    MAX_LAYERS,
    Layer,
    LayerSchema,
    OptionSpec,
    SpecError,
    Vocabulary,
    allocate_counts,
    canon,
    check_depth,
    parse,
    place_shares,
)

# --------------------------------------------------------------------------------------------------
# A vocabulary that mirrors the real library (the registry builds the same shape from the configs)
# --------------------------------------------------------------------------------------------------

_BACKEND = OptionSpec(str, "auto", ("auto", "torch", "triton"))
_MLP = OptionSpec(str, None, ("swiglu", "none"))
_FM_OPTIONS = {
    "heads": OptionSpec(int, None),
    "eps": OptionSpec(float, 1e-6),
    "normalize": OptionSpec(bool, True),
    "backend": _BACKEND,
    "mlp": _MLP,
}
_EXTRA = {"performer": {"m": OptionSpec(int, None)}, "cosformer": {"max_len": OptionSpec(int, None)}}
_LAYERS = {
    name: LayerSchema(name, "d_prime", 16, {**_FM_OPTIONS, **_EXTRA.get(name, {})})
    for name in ("taylor", "poselu", "relu", "performer", "cosformer", "identity", "square")
}
_LAYERS["lin"] = LayerSchema("lin", "d_prime", 16, {**_FM_OPTIONS, "fm": OptionSpec(str, "taylor")})
_LAYERS["sw"] = LayerSchema(
    "sw",
    "window",
    64,
    {
        "heads": OptionSpec(int, None),
        "rope": OptionSpec(bool, True),
        "backend": OptionSpec(str, "auto", ("auto", "torch", "triton", "xformers")),
        "mlp": _MLP,
    },
)
_LAYERS["conv"] = LayerSchema(
    "conv", "kernel_size", 3, {"expand": OptionSpec(int, 2), "backend": _BACKEND, "mlp": _MLP}
)
_LAYERS["attn"] = LayerSchema(
    "attn",
    None,
    None,
    {"heads": OptionSpec(int, None), "rope": OptionSpec(bool, True), "backend": _BACKEND, "mlp": _MLP},
)
VOCAB = Vocabulary(layers=_LAYERS, plugin_errors={})
BROKEN_PLUGINS = Vocabulary(
    layers=_LAYERS, plugin_errors={"mixerzoo.mixers:hyena": "ModuleNotFoundError: No module named 'hyena_kernels'"}
)


def tokens(spec: str, vocab: Vocabulary = VOCAB) -> list[str]:
    return [layer.token for layer in parse(spec, vocab)]


def from_pattern(pattern: str, legend: dict[str, str]) -> list[str]:
    """'TTS' with {'T': 'taylor16', 'S': 'sw64'} -> ['taylor16', 'taylor16', 'sw64']."""
    return [legend[c] for c in pattern]


T, S, C = "taylor16", "sw64", "conv3"
TSC = {"T": T, "S": S, "C": C}
BASED = ["conv3", "taylor16", "sw128", "conv3", "conv3"] * 5 + ["conv3"] * 2

# --------------------------------------------------------------------------------------------------
# Valid specs and their expansions
# --------------------------------------------------------------------------------------------------

# Hand-computed mix patterns (place_shares docstring rule; background = largest share):
#   3:1@24 -> 18/6: sw after 3, 5, 8, 10, 13, 15 taylors (b_i = floor(i*18/7 + 1/2) = 3,5,8,10,13,15)
#   3:1@26 -> 20/6: b_i = floor(i*20/7 + 1/2) = 3,6,9,11,14,17
#   3:1:1@20 -> 12/4/4: taylor first (tie -> earlier), b_i = floor(i*16/5 + 1/2) = 3,6,10,13 -> slots 3,7,12,16;
#            then sw in the 16 free slots, b_i = floor(i*12/5 + 1/2) = 2,5,7,10 -> free idx 2,6,9,13 -> 2,8,11,17
#   17:5:5@27 -> 17/5/5: taylor b_i = floor(i*22/6 + 1/2) = 4,7,11,15,18 -> 4,8,13,18,22;
#            sw in the 22 free slots: b_i = floor(i*17/6 + 1/2) = 3,6,9,11,14 -> 3,9,14,17,23
#   1:1@6 -> 3/3: B == c, so r = c: alternate, background first
#   2:1@9 -> 6/3: b_i = floor(i*6/4 + 1/2) = 2,3,5 -> slots 2,4,7
#   1:1:1@6 -> 2/2/2: sw b_i = floor(i*4/3 + 1/2) = 1,3 -> 1,4; conv in free 0,2,3,5: B == c -> 1,2 -> 2,5
VALID: list[tuple[str, list[str]]] = [
    # DESIGN.md examples
    ("taylor16-sw64-conv3", [T, S, C]),
    ("(conv3-taylor16-sw128-conv3-conv3)*5-conv3*2", BASED),
    ("(taylor8-sw64-conv3)*4", ["taylor8", S, C] * 4),
    ("(taylor32-sw64-conv3)*4", ["taylor32", S, C] * 4),
    ("(cosformer16-sw64-conv3)*4", ["cosformer16", S, C] * 4),
    ("(taylor16-sw256-conv3)*4", [T, "sw256", C] * 4),
    ("mix(conv3:3,taylor16:1,sw64:1)@20", from_pattern("CCSTCCCTSCCSTCCCTSCC", TSC)),
    (
        "(performer16[m=64]-sw64[heads=4]-conv3[mlp=none])*4",
        ["performer16[m=64]", "sw64[heads=4]", "conv3[mlp=none]"] * 4,
    ),
    # bare tokens take the default number; attn has none
    ("taylor-sw-conv", [T, S, C]),
    ("attn", ["attn"]),
    ("identity-square-relu8-poselu32-lin", ["identity16", "square16", "relu8", "poselu32", "lin16"]),
    # precedence, repetition, tiling, nesting
    ("taylor16-sw64*3", [T, S, S, S]),
    ("taylor*1", [T]),
    ("taylor@3", [T, T, T]),
    ("(taylor-sw)@6", [T, S] * 3),
    ("(taylor-sw)@2", [T, S]),
    ("((taylor-sw)*2-conv)*2", [T, S, T, S, C] * 2),
    ("((taylor-sw)@4-attn)@10", [T, S, T, S, "attn"] * 2),
    ("((((taylor))))*2", [T, T]),
    ("(taylor)", [T]),
    # mix(...)@N
    ("mix(taylor16:3,sw64:1)@24", from_pattern("TTTSTTSTTTSTTSTTTSTTSTTT", TSC)),
    ("mix(taylor16:3,sw64:1)@26", from_pattern("TTTSTTTSTTTSTTSTTTSTTTSTTT", TSC)),
    ("mix(conv3:17,taylor16:5,sw128:5)@27", from_pattern("CCCSTCCCTSCCCTSCCSTCCCTSCCC", {**TSC, "S": "sw128"})),
    ("mix(taylor:1,sw:1)@6", from_pattern("TSTSTS", TSC)),
    ("mix(taylor:2,sw:1)@9", from_pattern("TTSTSTTST", TSC)),
    ("mix(taylor:1,sw:1,conv:1)@6", from_pattern("TSCTSC", TSC)),
    ("mix(taylor:3,sw:1)@4", from_pattern("TTST", TSC)),
    ("(mix(taylor:1,sw:1)@2-conv)*2", [T, S, C] * 2),
    ("mix((taylor[heads=2]):1, attn:1)@4", ["taylor16[heads=2]", "attn"] * 2),
    # options: coerced, sorted, defaults dropped
    ("taylor[eps=1e-6,normalize=true,backend=auto]", [T]),
    ("taylor[normalize=false,eps=0.001,heads=4]", ["taylor16[eps=0.001,heads=4,normalize=false]"]),
    ("taylor[eps=1]", ["taylor16[eps=1.0]"]),
    ("taylor[eps=-2.5e-3]", ["taylor16[eps=-0.0025]"]),
    ("lin[fm=taylor]-lin32[fm=relu]", ["lin16", "lin32[fm=relu]"]),
    ("cosformer32[max_len=2048]", ["cosformer32[max_len=2048]"]),
    ("conv5[expand=4]-conv[expand=2]", ["conv5[expand=4]", C]),
    ("sw[backend=xformers]-attn[heads=8,rope=false]", ["sw64[backend=xformers]", "attn[heads=8,rope=false]"]),
    # whitespace around operators is ignored
    (" ( taylor16 - sw64 ) * 2 - conv3 ", [T, S, T, S, C]),
    ("\ttaylor16\n-\nsw64 [ heads = 4 , rope = false ] ", [T, "sw64[heads=4,rope=false]"]),
    ("mix ( taylor : 1 , sw : 1 ) @ 4", [T, S, T, S]),
]


@pytest.mark.parametrize(("spec", "expected"), VALID, ids=[s for s, _ in VALID])
def test_valid_specs_expand(spec: str, expected: list[str]) -> None:
    assert tokens(spec) == expected
    again = canon(spec, VOCAB)
    assert tokens(again) == expected  # parse(canon(s)) == parse(s)
    assert canon(again, VOCAB) == again  # idempotent
    assert not any(c.isspace() for c in again)


def test_based_360m_layout() -> None:
    layers = parse("(conv3-taylor16-sw128-conv3-conv3)*5-conv3*2", VOCAB)
    assert len(layers) == 27
    assert [i for i, layer in enumerate(layers) if layer.token == "taylor16"] == [1, 6, 11, 16, 21]
    assert [i for i, layer in enumerate(layers) if layer.token == "sw128"] == [2, 7, 12, 17, 22]
    assert all(layer.token == "conv3" for i, layer in enumerate(layers) if i % 5 not in (1, 2) or i >= 25)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("(taylor - sw - conv) * 4", "(taylor16-sw64-conv3)*4"),
        ("(conv3-taylor16-sw128-conv3-conv3)*5-conv3*2", "(conv3-taylor16-sw128-conv3-conv3)*5-conv3*2"),
        ("(taylor-sw)@8", "(taylor16-sw64)*4"),
        ("(taylor)*3-(attn)", "taylor16*3-attn"),
        ("((taylor)*2)@8", "(taylor16*2)*4"),
        ("(taylor*2)*3", "(taylor16*2)*3"),
        ("(taylor-sw)*1-conv*1", "taylor16-sw64-conv3"),
        ("attn-(taylor16-conv3)*5-attn", "attn-(taylor16-conv3)*5-attn"),
        ("mix(taylor16:3,sw64:1)@8", "taylor16*2-sw64-taylor16*2-sw64-taylor16*2"),
        ("(mix(taylor:1,sw:1)@2)*3", "(taylor16-sw64)*3"),
        ("mix(taylor:1,taylor:1)@4", "taylor16*4"),
        ("sw[rope=false,heads=4,backend=auto]", "sw64[heads=4,rope=false]"),
        ("taylor[eps=0.000001]", "taylor16"),
    ],
)
def test_canon(spec: str, expected: str) -> None:
    assert canon(spec, VOCAB) == expected
    assert canon(expected, VOCAB) == expected


def test_layer_token_and_resolved() -> None:
    (layer,) = parse("performer32[m=64,eps=0.01]", VOCAB)
    assert layer == Layer("performer", 32, (("eps", 0.01), ("m", 64)))
    assert layer.token == "performer32[eps=0.01,m=64]"
    assert layer.resolved(VOCAB) == {
        "d_prime": 32,
        "heads": None,
        "eps": 0.01,
        "normalize": True,
        "backend": "auto",
        "mlp": None,
        "m": 64,
    }
    (attn,) = parse("attn[rope=false]", VOCAB)
    assert attn.number is None and attn.resolved(VOCAB) == {
        "heads": None,
        "rope": False,
        "backend": "auto",
        "mlp": None,
    }
    (bare,) = parse("taylor[normalize=false]", VOCAB)
    assert type(dict(bare.options)["normalize"]) is bool
    (eps,) = parse("taylor[eps=3]", VOCAB)
    assert type(dict(eps.options)["eps"]) is float


def test_aliases_resolve_to_the_canonical_name() -> None:
    vocab = Vocabulary(layers=_LAYERS, aliases={"swa": "sw", "elu": "poselu"})
    assert canon("swa128-elu", vocab) == "sw128-poselu16"
    with pytest.raises(SpecError, match="did you mean 'sw128'"):
        parse("swx128", Vocabulary(layers={"sw": _LAYERS["sw"]}, aliases={"swa": "sw"}))


# --------------------------------------------------------------------------------------------------
# Invalid specs: message fragment and 0-based position of the caret
# --------------------------------------------------------------------------------------------------

INVALID: list[tuple[str, str, int]] = [
    ("", "empty spec", 0),
    ("   ", "empty spec", 0),
    ("talyor16-sw64-conv", "unknown layer 'talyor16'", 0),
    ("taylor16-sw64-cnov", "did you mean 'conv'?", 14),
    ("attn16-sw64", "'attn' takes no inline number", 0),
    ("taylor16[head=4]-conv", "unknown option 'head' for 'taylor'", 9),
    ("taylor16[head=4]-conv", "did you mean 'heads'? valid options for taylor: backend, eps, heads, mlp, normalize", 9),
    ("sw64[rope=maybe]", "option 'rope' of 'sw' expects a bool (true/false), got 'maybe'", 10),
    ("taylor[heads=4.5]", "expects an int, got '4.5'", 13),
    ("taylor[eps=tiny]", "expects a float, got 'tiny'", 11),
    ("taylor[backend=cuda]", "expects one of auto, torch, triton, got 'cuda'", 15),
    ("sw[backend=xformer]", "did you mean 'xformers'?", 11),
    ("lin[fm=3]", "option 'fm' of 'lin' expects a name", 7),
    ("taylor[heads=4,heads=8]", "duplicate option 'heads'", 15),
    ("taylor[]", "empty option list '[]'", 6),
    ("taylor[heads=4", "unclosed '['", 6),
    ("taylor[heads]", "expected '=' after option key 'heads'", 12),
    ("taylor[heads=]", "missing value for option 'heads'", 13),
    ("taylor[heads=4;eps=1]", "expected ',' or ']' after the value of 'heads'", 14),
    ("taylor[=4]", "expected an option key", 7),
    ("(taylor16*3-sw64)@26", "cannot tile a 4-layer group to 26 layers (26 % 4 = 2)", 0),
    (
        "(taylor16*3-sw64)@26",
        "nearest valid depths for (taylor16*3-sw64): 24, 28 — or allocate by ratio: mix(taylor16:3,sw64:1)@26",
        0,
    ),
    ("sw-(taylor-sw-conv)@7", "cannot tile a 3-layer group to 7 layers", 3),
    ("(taylor16-sw64*3", "unclosed '('", 0),
    ("conv-((taylor-sw)*2", "unclosed '('", 5),
    ("taylor)", "unexpected ')'", 6),
    ("taylor16--conv", "empty layer between '-' separators", 9),
    ("-taylor", "empty layer before '-'", 0),
    ("taylor-", "empty layer after a trailing '-'", 6),
    ("(taylor-)", "empty layer between '-' and ')'", 7),
    ("()", "empty group '()'", 0),
    ("taylor sw", "missing '-' before 'sw'", 7),
    ("taylor 16", "unexpected '16'", 7),
    ("taylor16x", "unexpected 'x'", 8),
    ("Taylor16", "layer names are lowercase", 0),
    ("16taylor", "a number must follow a layer name", 0),
    ("*3", "'*' must follow a layer or a group", 0),
    ("sw64*0", "repeat count must be >= 1, got 0", 4),
    ("(taylor-sw)@0", "layer count must be >= 1, got 0", 11),
    ("sw64*", "expected a repeat count after '*'", 4),
    ("sw64@x", "expected a layer count after '@'", 4),
    ("taylor*2*3", "only one '*k' or '@N' per item", 8),
    ("mix(taylor16:3,sw64:1)", "mix(...) needs a layer count", 0),
    ("mix(taylor16:3,sw64:1)", "write mix(taylor16:3,sw64:1)@N", 0),
    ("conv-mix(taylor16:3,sw64:1)*2", "mix(...) takes '@N' (a layer count), not '*k'", 5),
    ("mix(taylor16:1)@8", "mix(...) needs at least two shares", 0),
    ("mix(taylor16:1,sw64:0)@8", "mix weight must be >= 1, got 0", 20),
    ("mix(taylor16,sw64:1)@8", "missing ':weight' after a mix share", 4),
    ("mix(taylor16:0.75,sw64:0.25)@8", "mix weights are integers, got '0.75'", 13),
    ("mix(taylor16:3,sw64:1", "unclosed 'mix('", 0),
    ("mix()@4", "empty mix()", 0),
    ("mix(taylor16-sw64:1,conv:1)@4", "a mix share is a single layer, not a '-' sequence", 12),
    ("mix((taylor16-sw64):1,conv:1)@4", "a mix share must be a single layer, got a 2-layer group", 4),
    ("mix(taylor*2:1,conv:1)@4", "a mix share cannot take '*'", 10),
    ("mix(taylor:100,sw:1)@4", "gives 'sw64' no layers", 15),
    ("sw0", "inline number of 'sw' (window) must be >= 1, got 0", 2),
    ("taylor*100001", f"more than the limit of {MAX_LAYERS}", 0),
    ("conv-(taylor*1000)*1000", f"more than the limit of {MAX_LAYERS}", 5),
    ("taylor*" + "9" * 40, "repeat count 999999999999... is too large", 7),
    ("(" * 60 + "taylor" + ")" * 60, "nesting deeper than 50 levels", 50),
    ("(taylor-sw)[heads=4]", "options go on a single layer", 11),
    ("taylor:3", "unexpected ':'", 6),
    ("taylor$", "unexpected '$'", 6),
]


@pytest.mark.parametrize(("spec", "fragment", "position"), INVALID, ids=[f"{s[:40]!r}" for s, _, _ in INVALID])
def test_invalid_specs_raise_with_position(spec: str, fragment: str, position: int) -> None:
    with pytest.raises(SpecError) as info:
        parse(spec, VOCAB)
    err = info.value
    assert fragment in str(err)
    assert err.start == position
    assert err.spec == spec
    lines = str(err).split("\n")
    assert lines[0].endswith(f"(position {position})")
    assert lines[1] == "  " + "".join(" " if c.isspace() else c for c in spec)
    assert lines[2] == "  " + " " * err.start + "^" * (err.end - err.start)
    assert err.end <= max(len(spec), err.start + 1)


def test_unknown_name_lists_layers_and_plugins() -> None:
    with pytest.raises(SpecError) as info:
        parse("taylor16-hyena8", BROKEN_PLUGINS)
    text = str(info.value)
    assert "unknown layer 'hyena8' (position 9)" in text
    assert "valid layers: attn, conv, cosformer, identity, lin, performer, poselu, relu, square, sw, taylor" in text
    assert "mixerzoo.mixers:hyena (ModuleNotFoundError: No module named 'hyena_kernels')" in text
    assert "'mixerzoo.mixers' / 'mixerzoo.feature_maps'" in text
    with pytest.raises(SpecError) as plain:
        parse("hyena8", VOCAB)
    assert "failed to import" not in str(plain.value)
    assert "did you mean" not in str(plain.value)


def test_spec_error_format_and_pickle() -> None:
    err = SpecError("unknown layer 'talyor16'", "talyor16-sw64-conv", 0, 8, "did you mean 'taylor16'?")
    assert isinstance(err, ValueError)
    assert str(err) == (
        "unknown layer 'talyor16' (position 0)\n  talyor16-sw64-conv\n  ^^^^^^^^\n  did you mean 'taylor16'?"
    )
    again = pickle.loads(pickle.dumps(err))
    assert (again.spec, again.start, again.end, again.hint, str(again)) == (err.spec, 0, 8, err.hint, str(err))
    assert str(SpecError("plain")) == "plain"


def test_tab_and_newline_keep_carets_aligned() -> None:
    with pytest.raises(SpecError) as info:
        parse("taylor\t-\nnope", VOCAB)
    assert str(info.value).split("\n")[1:3] == ["  taylor - nope", "           ^^^^"]


def test_non_string_spec_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse(None, VOCAB)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# check_depth
# --------------------------------------------------------------------------------------------------


def test_check_depth_accepts_and_suggests() -> None:
    assert len(check_depth("(taylor-sw-conv)*4", 12, VOCAB)) == 12
    with pytest.raises(SpecError) as info:
        check_depth("(taylor-sw-conv)*4", 24, VOCAB)
    assert "spec expands to 12 layers but n_layers=24 was requested" in str(info.value)
    assert info.value.hint == "use (taylor16-sw64-conv3)*8 or (taylor16-sw64-conv3)@24"
    with pytest.raises(SpecError) as info:
        check_depth("(taylor16*3-sw64)*6", 26, VOCAB)
    assert info.value.hint == (
        "nearest valid depths for (taylor16*3-sw64): 24, 28 — or allocate by ratio: mix(taylor16:3,sw64:1)@26"
    )
    with pytest.raises(SpecError) as info:
        check_depth("taylor-sw", 6, VOCAB)
    assert info.value.hint == "use (taylor16-sw64)*3 or (taylor16-sw64)@6"
    with pytest.raises(SpecError) as info:
        check_depth("taylor*4", 7, VOCAB)
    assert info.value.hint == "use taylor16*7 or taylor16@7"
    with pytest.raises(SpecError, match="n_layers must be a positive int"):
        check_depth("taylor", 0, VOCAB)
    with pytest.raises(SpecError, match="unknown layer"):
        check_depth("nope", 1, VOCAB)


# --------------------------------------------------------------------------------------------------
# mix allocation: an independent model (Fractions, Megatron's loop) against the closed forms
# --------------------------------------------------------------------------------------------------


def reference_counts(weights: list[int], n: int) -> list[int]:
    quotas = [Fraction(n * w, sum(weights)) for w in weights]
    counts = [q.numerator // q.denominator for q in quotas]
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def reference_place(counts: list[int]) -> list[int]:
    """Megatron's accumulator loop, literally, in Fractions (with the r = c rule when B == c)."""
    order = sorted(range(len(counts)), key=lambda i: (-counts[i], i))
    slots = [order[0]] * sum(counts)
    for share in order[1:]:
        c = counts[share]
        if c == 0:
            continue
        free = [j for j, owner in enumerate(slots) if owner == order[0]]
        stay = len(free) - c
        step = Fraction(stay, c + 1 if stay > c else c)
        x = step
        for j in free:
            if x < Fraction(1, 2):
                slots[j] = share
                x += step
            else:
                x -= 1
    return slots


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=2, max_size=6), st.integers(1, 300))
def test_mix_counts_and_pattern(weights: list[int], n: int) -> None:
    counts = allocate_counts(weights, n)
    assert counts == reference_counts(weights, n)
    assert sum(counts) == n
    for w, count in zip(weights, counts):
        assert abs(count - Fraction(n * w, sum(weights))) < 1
    pattern = place_shares(counts)
    assert pattern == reference_place(counts)
    assert [pattern.count(i) for i in range(len(counts))] == counts


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40))
def test_two_share_pattern_is_evenly_spaced(a: int, b: int) -> None:
    big, small = max(a, b), min(a, b)
    pattern = place_shares([big, small])
    where = [j for j, owner in enumerate(pattern) if owner == 1]
    assert len(where) == small
    gaps = [q - p for p, q in zip(where, where[1:])]
    assert not gaps or max(gaps) - min(gaps) <= 1
    if big > small:  # background at both ends, as in Megatron
        assert pattern[0] == 0 and pattern[-1] == 0
    else:
        assert pattern == [0, 1] * big


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=4), st.data())
def test_mix_spec_matches_allocation(weights: list[int], data: st.DataObject) -> None:
    names = ["taylor16", "sw64", "conv3", "attn"][: len(weights)]
    n = data.draw(st.integers(sum(weights), 3 * sum(weights)))
    spec = "mix(" + ",".join(f"{name}:{w}" for name, w in zip(names, weights)) + f")@{n}"
    got = tokens(spec)
    counts = allocate_counts(weights, n)
    assert [got.count(name) for name in names] == counts
    assert got == [names[i] for i in reference_place(counts)]


# --------------------------------------------------------------------------------------------------
# Round trips over specs generated from the grammar (with an independent expected expansion)
# --------------------------------------------------------------------------------------------------

WS = st.sampled_from(["", "", "", " ", "  ", "\t", "\n "])
_FLOATS = [("1e-6", 1e-6), ("0.000001", 1e-6), ("1e-3", 0.001), ("0.5", 0.5), ("2", 2.0), ("-0.25", -0.25), ("3.", 3.0)]
_INTS = [("1", 1), ("2", 2), ("4", 4), ("64", 64), ("007", 7)]


def _render(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def _values(opt: OptionSpec) -> st.SearchStrategy[tuple[str, object]]:
    if opt.choices is not None:
        return st.sampled_from([(c, c) for c in opt.choices])
    if opt.type is bool:
        return st.sampled_from([("true", True), ("false", False)])
    if opt.type is int:
        return st.sampled_from(_INTS)
    if opt.type is float:
        return st.sampled_from(_FLOATS)
    return st.sampled_from([("taylor", "taylor"), ("relu", "relu"), ("poselu", "poselu")])


@st.composite
def layer_specs(draw: st.DrawFn) -> tuple[str, list[str]]:
    name = draw(st.sampled_from(sorted(_LAYERS)))
    schema = _LAYERS[name]
    text, number = name, schema.number_default
    if schema.number_field is not None and draw(st.booleans()):
        number = draw(st.sampled_from([1, 2, 8, 16, 64, 128]))
        text += str(number)
    keys = draw(st.lists(st.sampled_from(sorted(schema.options)), unique=True, max_size=3))
    kept = {}
    if keys:
        parts = []
        for key in keys:
            raw, value = draw(_values(schema.options[key]))
            parts.append(f"{draw(WS)}{key}{draw(WS)}={draw(WS)}{raw}{draw(WS)}")
            if value != schema.options[key].default:
                kept[key] = value
        text += draw(WS) + "[" + ",".join(parts) + "]"
    token = name if number is None else f"{name}{number}"
    if kept:
        token += "[" + ",".join(f"{k}={_render(kept[k])}" for k in sorted(kept)) + "]"
    return text, [token]


@st.composite
def mix_specs(draw: st.DrawFn) -> tuple[str, list[str]]:
    shares = draw(st.lists(st.tuples(layer_specs(), st.integers(1, 5), st.booleans()), min_size=2, max_size=3))
    total = sum(w for _, w, _ in shares)
    n = draw(st.integers(total, 2 * total + 2))
    parts = []
    for (text, _), w, wrap in shares:
        atom = f"({draw(WS)}{text}{draw(WS)})" if wrap else text
        parts.append(f"{draw(WS)}{atom}{draw(WS)}:{draw(WS)}{w}{draw(WS)}")
    text = f"mix({','.join(parts)}){draw(WS)}@{draw(WS)}{n}"
    counts = reference_counts([w for _, w, _ in shares], n)
    return text, [shares[i][0][1][0] for i in reference_place(counts)]


@st.composite
def item_specs(draw: st.DrawFn, depth: int) -> tuple[str, list[str]]:
    kind = draw(st.sampled_from(["layer", "layer", "group", "mix"] if depth > 0 else ["layer", "layer", "mix"]))
    if kind == "mix":
        return draw(mix_specs())
    if kind == "layer":
        text, expanded = draw(layer_specs())
    else:
        inner, expanded = draw(stack_specs(depth - 1))
        text = f"({draw(WS)}{inner}{draw(WS)})"
    postfix = draw(st.sampled_from(["", "*", "@"]))
    if postfix == "*":
        k = draw(st.integers(1, 3))
        return f"{text}{draw(WS)}*{draw(WS)}{k}", expanded * k
    if postfix == "@":
        k = draw(st.integers(1, 3))
        return f"{text}{draw(WS)}@{draw(WS)}{k * len(expanded)}", expanded * k
    return text, expanded


@st.composite
def stack_specs(draw: st.DrawFn, depth: int = 2) -> tuple[str, list[str]]:
    items = draw(st.lists(item_specs(depth), min_size=1, max_size=3))
    text = "-".join(f"{draw(WS)}{t}{draw(WS)}" for t, _ in items)
    return text, [token for _, expanded in items for token in expanded]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stack_specs())
def test_generated_specs_round_trip(case: tuple[str, list[str]]) -> None:
    spec, expected = case
    layers = parse(spec, VOCAB)
    assert [layer.token for layer in layers] == expected
    text = canon(spec, VOCAB)
    assert parse(text, VOCAB) == layers
    assert canon(text, VOCAB) == text
    assert not any(c.isspace() for c in text)
    assert [layer.resolved(VOCAB) for layer in parse(text, VOCAB)] == [layer.resolved(VOCAB) for layer in layers]


# --------------------------------------------------------------------------------------------------
# Fuzz: any text gives layers or a SpecError, never another exception
# --------------------------------------------------------------------------------------------------

_FRAGMENTS = [
    "taylor", "sw", "conv", "attn", "lin", "performer", "mix", "mix(", "(", ")", "-", "*", "@", ":", ",",
    "[", "]", "=", "16", "0", "1", "3", " ", "\t", "heads", "eps", "m", "fm", "true", "1e-6", ".", "-1", "x",
    "T", "é", "²", "9" * 45,
]  # fmt: skip


def _parse_or_spec_error(text: str) -> None:
    try:
        layers = parse(text, BROKEN_PLUGINS)
    except SpecError as err:
        assert 0 <= err.start < err.end
        assert err.start <= len(text)
        str(err)
        return
    assert 1 <= len(layers) <= MAX_LAYERS
    assert parse(canon(text, BROKEN_PLUGINS), BROKEN_PLUGINS) == layers


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_fuzz_arbitrary_text(text: str) -> None:
    _parse_or_spec_error(text)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=25).map("".join))
def test_fuzz_grammar_fragments(text: str) -> None:
    _parse_or_spec_error(text)


@settings(max_examples=200, deadline=None)
@given(stack_specs(depth=1), st.integers(0, 10_000), st.sampled_from(["delete", "insert", "swap"]), st.data())
def test_fuzz_mutated_valid_specs(case: tuple[str, list[str]], where: int, how: str, data: st.DataObject) -> None:
    text = case[0]
    i = where % (len(text) + 1)
    if how == "delete":
        text = text[:i] + text[i + 1 :]
    elif how == "insert":
        text = text[:i] + data.draw(st.sampled_from(_FRAGMENTS)) + text[i:]
    else:
        text = text[:i] + text[i + 1 : i + 2] + text[i : i + 1] + text[i + 2 :]
    _parse_or_spec_error(text)


# --------------------------------------------------------------------------------------------------
# The module stays torch-free and its doctests run
# --------------------------------------------------------------------------------------------------


def test_doctests_pass() -> None:
    result = doctest.testmod(mixerzoo.spec)
    assert result.attempted >= 8
    assert result.failed == 0


def test_spec_module_does_not_import_torch() -> None:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(mixerzoo.spec))
    top_imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [alias.name for n in top_imports for alias in n.names] + [
        n.module for n in top_imports if isinstance(n, ast.ImportFrom) and n.module
    ]
    assert not any(name.split(".")[0] in ("torch", "mixerzoo") for name in names)
