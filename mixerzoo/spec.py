"""Spec strings: one line that lays out a model, e.g. ``(conv3-taylor16-sw128-conv3-conv3)*5-conv3*2``.

Grammar (whitespace around operators is ignored)::

    spec   ::= item ( "-" item )*
    item   ::= atom ( "*" INT | "@" INT )?        "*k" repeats k times; "@N" tiles a group to N layers
    atom   ::= layer | "(" spec ")" | "mix(" share ( "," share )+ ")"    mix must be followed by @N
    share  ::= atom ":" INT                        integer weights: mix(taylor16:3,sw64:1)@24 -> 18 + 6 layers
    layer  ::= NAME INT? ( "[" KEY "=" VALUE ( "," KEY "=" VALUE )* "]" )?

``NAME`` is ``[a-z][a-z_]*`` (digits after a name are its inline number; the registry refuses a name
that is another name plus digits, so ``taylor16`` is always ``taylor`` with d′ = 16). ``KEY`` and
identifier values are ``[a-z][a-z0-9_]*``; a ``VALUE`` is an int, a float, ``true``/``false`` or an
identifier. ``*`` and ``@`` bind tighter than ``-``: ``taylor16-sw64*3`` is four layers.

One layer token is one residual block. The expanded layer list *is* the depth. ``canon`` prints the
canonical text (every inline number, only non-default options, sorted; ``@N`` and ``mix`` expanded);
``parse`` returns the flat list of :class:`Layer`. Every malformed input raises :class:`SpecError`
with the position, a caret line under the span and a one-line fix.

This module does not import torch: the vocabulary (names, inline-number fields, option schemas) is
passed in, or taken lazily from :func:`mixerzoo.registry.vocabulary`.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "MAX_LAYERS",
    "Layer",
    "LayerSchema",
    "OptionSpec",
    "SpecError",
    "Vocabulary",
    "allocate_counts",
    "canon",
    "check_depth",
    "default_vocabulary",
    "parse",
    "place_shares",
]

MAX_LAYERS = 100_000  # sanity cap on the expanded depth: a larger spec is a typo (an extra digit), not a model
_MAX_NESTING = 50  # parentheses / mix( deep; keeps the recursive-descent parser far from Python's recursion limit
_MAX_DIGITS = 30  # an integer literal longer than this is refused before int() sees it
_PLUGIN_GROUPS = "'mixerzoo.mixers' / 'mixerzoo.feature_maps'"

_NAME_RE = re.compile(r"[a-z][a-z_]*")
_DIGITS_RE = re.compile(r"[0-9]+")
_KEY_RE = re.compile(r"[a-z][a-z0-9_]*")
_IDENT_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_RUN_RE = re.compile(r"[A-Za-z0-9_.]+")  # the word an "unexpected ..." error quotes
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGIT = frozenset("0123456789")


# --------------------------------------------------------------------------------------------------
# Vocabulary: what the registry tells the parser (names, inline-number fields, option schemas)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptionSpec:
    """One declared option of a layer token, e.g. ``heads`` in ``sw64[heads=4]``.

    Attributes:
        type: ``int``, ``float``, ``bool`` or ``str``; a spec value is coerced to it (an int literal
            is accepted for a float option, nothing else is converted).
        default: the value used when the option is absent; ``None`` means "from the build context"
            (e.g. ``heads`` follows ``build(..., heads=...)``).
        choices: the allowed values (for ``str`` options such as ``backend``), or ``None`` for any.
    """

    type: type
    default: object
    choices: tuple | None = None


@dataclass(frozen=True)
class LayerSchema:
    """What a layer token accepts: its inline number and its options.

    Attributes:
        name: canonical token name, e.g. ``"taylor"``, ``"sw"``, ``"conv"``, ``"attn"``.
        number_field: the config field the inline number fills (``"d_prime"``, ``"window"``,
            ``"kernel_size"``), or ``None`` when the token takes no number (``attn``).
        number_default: the number of a bare token (``taylor`` = ``taylor16``); ``None`` when
            ``number_field`` is ``None`` (or when a number must always be written).
        options: every declared option key, including block-level keys such as ``mlp``.
        number_min: the smallest valid inline number.
    """

    name: str
    number_field: str | None
    number_default: int | None
    options: Mapping[str, OptionSpec]
    number_min: int = 1


@dataclass(frozen=True)
class Vocabulary:
    """The layer names a spec may use.

    Attributes:
        layers: canonical name -> :class:`LayerSchema`.
        plugin_errors: entry-point name -> import error text; shown when a name is unknown.
        aliases: optional alternative spellings, alias -> canonical name (``swa`` -> ``sw``);
            ``canon`` prints the canonical name.
    """

    layers: Mapping[str, LayerSchema]
    plugin_errors: Mapping[str, str] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)


def default_vocabulary() -> Vocabulary:
    """The vocabulary of the registered mixers and feature maps (imports the registry, hence torch)."""
    from mixerzoo.registry import vocabulary

    return vocabulary()


def _opt(type_: type, default: object, choices: tuple | None = None) -> OptionSpec:
    return OptionSpec(type_, default, choices)


_BACKEND = _opt(str, "auto", ("auto", "torch", "triton"))
_MLP = _opt(str, None, ("swiglu", "none"))
#: A small torch-free vocabulary for the doctests of this module (the real one comes from the registry).
_EXAMPLE_VOCAB = Vocabulary(
    layers={
        "taylor": LayerSchema(
            "taylor",
            "d_prime",
            16,
            {"heads": _opt(int, None), "eps": _opt(float, 1e-6), "backend": _BACKEND, "mlp": _MLP},
        ),
        "sw": LayerSchema(
            "sw", "window", 64, {"heads": _opt(int, None), "rope": _opt(bool, True), "backend": _BACKEND, "mlp": _MLP}
        ),
        "conv": LayerSchema("conv", "kernel_size", 3, {"expand": _opt(int, 2), "backend": _BACKEND, "mlp": _MLP}),
        "attn": LayerSchema("attn", None, None, {"heads": _opt(int, None), "backend": _BACKEND, "mlp": _MLP}),
    }
)


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class SpecError(ValueError):
    """A malformed spec: the message, the spec with a caret line under the offending span, and a fix.

    Attributes:
        message: what is wrong, without the position.
        spec: the spec text (``None`` when the error is not about a place in a string).
        start: 0-based index of the first offending character.
        end: index one past the last offending character (``end > start``).
        hint: how to fix it (may be empty; may span several lines).

    ``str(err)`` is ``message (position N)``, then the spec, the caret line and the hint, each on its
    own line indented by two spaces:

    >>> print(SpecError("unknown layer 'talyor16'", "talyor16-sw64", 0, 8, "did you mean 'taylor16'?"))
    unknown layer 'talyor16' (position 0)
      talyor16-sw64
      ^^^^^^^^
      did you mean 'taylor16'?
    """

    def __init__(self, message: str, spec: str | None = None, start: int = 0, end: int | None = None, hint: str = ""):
        self.message = message
        self.spec = spec
        self.start = start
        end = start + 1 if end is None else end
        self.end = max(start + 1, end if spec is None else min(end, len(spec)))  # a caret past the end is one wide
        self.hint = hint
        super().__init__(message)

    def __reduce__(self):  # keep the span and hint through pickling (multiprocessing, Ray)
        return (type(self), (self.message, self.spec, self.start, self.end, self.hint))

    def __str__(self) -> str:
        lines = [self.message if self.spec is None else f"{self.message} (position {self.start})"]
        if self.spec is not None:
            shown = "".join(" " if c.isspace() else c for c in self.spec)  # keep the carets aligned
            lines += [shown, " " * self.start + "^" * (self.end - self.start)]
        if self.hint:
            lines += self.hint.splitlines()
        return "\n  ".join(lines)


# --------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------


def _render_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float
    return str(value)


@dataclass(frozen=True)
class Layer:
    """One expanded layer (one residual block) of a spec.

    Attributes:
        name: canonical layer name (``"taylor"``).
        number: the inline number (``16`` for ``taylor16``), or ``None`` for a token without one.
        options: the non-default options, sorted by key, values of their declared type.
    """

    name: str
    number: int | None
    options: tuple[tuple[str, object], ...] = ()

    @property
    def token(self) -> str:
        """The canonical text of this layer, e.g. ``"taylor16"``, ``"sw64[heads=4]"``, ``"attn"``."""
        text = self.name if self.number is None else f"{self.name}{self.number}"
        if self.options:
            text += "[" + ",".join(f"{k}={_render_value(v)}" for k, v in self.options) + "]"
        return text

    def resolved(self, vocab: Vocabulary | None = None) -> dict[str, object]:
        """Every setting of this layer: ``{number_field: number, **option defaults, **options}``."""
        schema = (vocab or default_vocabulary()).layers[self.name]
        out: dict[str, object] = {}
        if schema.number_field is not None:
            out[schema.number_field] = self.number
        out.update({key: opt.default for key, opt in schema.options.items()})
        out.update(self.options)
        return out


# --------------------------------------------------------------------------------------------------
# mix(...)@N: allocation and placement
# --------------------------------------------------------------------------------------------------


def allocate_counts(weights: list[int] | tuple[int, ...], n: int) -> list[int]:
    """Split ``n`` layers by integer ``weights`` with the largest-remainder method, in exact arithmetic.

    Share ``i`` gets ``floor(n * w_i / W)`` layers (``W = sum(weights)``); the layers left over go one
    each to the shares with the largest remainders ``n * w_i mod W``, ties to the earlier share. So
    every count is within 1 of its exact quota ``n * w_i / W`` and the counts sum to ``n``.

    >>> allocate_counts([3, 1], 26), allocate_counts([17, 5, 5], 27), allocate_counts([1, 1, 1], 4)
    ([20, 6], [17, 5, 5], [2, 1, 1])
    """
    total = sum(weights)
    counts = [n * w // total for w in weights]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(n * weights[i] % total), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def place_shares(counts: list[int] | tuple[int, ...]) -> list[int]:
    """Lay out ``counts[i]`` slots of each share ``i`` in one sequence; returns the share of every slot.

    The rule (Megatron-LM's hybrid-allocation accumulator, generalized to several shares and done in
    exact integer arithmetic; `megatron/core/ssm/mamba_hybrid_layer_allocation.py`):

    1. The largest share (ties: the earlier one) is the background and first fills every slot.
    2. The other shares, largest first (ties: the earlier one), are placed one at a time into the
       slots that still hold the background. With ``F`` such free slots and ``c`` layers to place, the
       ``B = F - c`` free slots that stay are cut into ``r = c + 1`` runs of ideal length ``s = B / r``
       (background at both ends and between), and the ``i``-th placed layer (``i = 1..c``) goes after
       ``b_i = floor(i * s + 1/2)`` of them, i.e. to free slot ``b_i + i - 1``. This is where Megatron's
       loop ``x = s; for each slot: if x < 1/2: place, x += s; else: x -= 1`` puts them; all ``c`` are
       always placed, and the gaps between them differ by at most one.
    3. One exception: when ``B == c`` (as many stay as are placed, e.g. ``mix(a:1,b:1)``) there is no
       room for background at both ends, so ``r = c``: the two alternate, background first
       (``abab``, where Megatron's ``r = c + 1`` would give ``abba``).

    >>> "".join("TS"[i] for i in place_shares([18, 6]))
    'TTTSTTSTTTSTTSTTTSTTSTTT'
    >>> "".join("CTS"[i] for i in place_shares([17, 5, 5]))
    'CCCSTCCCTSCCCTSCCSTCCCTSCCC'
    >>> "".join("abc"[i] for i in place_shares([2, 2, 2]))
    'abcabc'
    """
    order = sorted(range(len(counts)), key=lambda i: (-counts[i], i))
    slots = [order[0]] * sum(counts)
    free = list(range(len(slots)))
    for share in order[1:]:
        c = counts[share]
        if c <= 0:
            continue
        stay = len(free) - c  # B
        runs = c + 1 if stay > c else c  # r
        taken = {(2 * stay * i + runs) // (2 * runs) + i - 1 for i in range(1, c + 1)}  # b_i + i - 1
        for j in taken:
            slots[free[j]] = share
        free = [slot for j, slot in enumerate(free) if j not in taken]
    return slots


# --------------------------------------------------------------------------------------------------
# The syntax tree (private): spans point into the source for error carets
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _LayerNode:
    layer: Layer
    start: int
    end: int


@dataclass(eq=False)
class _GroupNode:
    items: list[_Item]
    start: int
    end: int


@dataclass(eq=False)
class _Share:
    atom: _LayerNode | _GroupNode | _MixNode
    weight: int
    start: int
    end: int


@dataclass(eq=False)
class _MixNode:
    shares: list[_Share]
    start: int
    end: int


@dataclass(eq=False)
class _Item:
    atom: _LayerNode | _GroupNode | _MixNode
    op: str | None  # "*", "@" or None
    count: int  # k of "*k", N of "@N", 1 when op is None
    start: int
    end: int


def _near(word: str, pool: list[str] | tuple[str, ...]) -> str | None:
    match = difflib.get_close_matches(word, list(pool), n=1, cutoff=0.6)
    return match[0] if match else None


def _type_name(opt: OptionSpec) -> str:
    if opt.choices is not None:
        return "one of " + ", ".join(_render_value(c) for c in opt.choices)
    return {int: "an int", float: "a float", bool: "a bool (true/false)", str: "a name ([a-z][a-z0-9_]*)"}.get(
        opt.type, f"a {getattr(opt.type, '__name__', opt.type)}"
    )


def _strip_ws(text: str) -> str:
    return "".join(c for c in text if not c.isspace())


class _Parser:
    """Recursive descent over the spec text; builds the tree, checks names and options as it goes."""

    def __init__(self, text: str, vocab: Vocabulary):
        self.s = text
        self.n = len(text)
        self.i = 0
        self.vocab = vocab
        self.layers = vocab.layers
        self.aliases = getattr(vocab, "aliases", None) or {}
        self.depth = 0

    # ---- helpers -------------------------------------------------------------------------------

    def err(self, message: str, start: int, end: int | None = None, hint: str = "") -> SpecError:
        return SpecError(message, self.s, start, end, hint)

    def peek(self) -> str:
        """Skip whitespace; the next character, or "" at the end."""
        while self.i < self.n and self.s[self.i].isspace():
            self.i += 1
        return self.s[self.i] if self.i < self.n else ""

    def int_literal(self, what: str) -> tuple[int, int, int] | None:
        """An unsigned integer at the cursor: (value, start, end), or None when there is no digit."""
        m = _DIGITS_RE.match(self.s, self.i)
        if m is None:
            return None
        if len(m.group()) > _MAX_DIGITS:
            raise self.err(f"{what} {m.group()[:12]}... is too large", m.start(), m.end())
        self.i = m.end()
        return int(m.group()), m.start(), m.end()

    def unexpected(self, where: str) -> SpecError:
        """The error for a character that cannot follow a complete item."""
        p, c = self.i, self.s[self.i]
        word = _RUN_RE.match(self.s, p)
        end = word.end() if word else p + 1
        glued = p > 0 and not self.s[p - 1].isspace() and self.s[p - 1] not in ")]"
        if c in _LOWER and glued:
            return self.err(
                f"unexpected '{self.s[p:end]}' {where}",
                p,
                end,
                hint="a layer token is name, number, [options]: sw64[heads=4]",
            )
        if c in _LOWER or c == "(":
            text = self.s[p:end] if c != "(" else "("
            return self.err(f"missing '-' before '{text}'", p, end, hint="separate layers with '-', e.g. taylor16-sw64")
        if c in _DIGIT or c in _UPPER:
            return self.err(
                f"unexpected '{self.s[p:end]}' {where}",
                p,
                end,
                hint="no spaces inside a token, and names are lowercase: taylor16",
            )
        if c == "[":
            return self.err(
                "options go on a single layer, not on a group or mix", p, hint="write (taylor16[heads=4]-sw64[heads=4])"
            )
        if c == ")":
            return self.err("unexpected ')'", p, hint="remove it, or add the matching '(' before the group")
        if c in "*@":
            return self.err(f"only one '*k' or '@N' per item, found another {c!r}", p, hint="group it: (taylor16*2)*3")
        return self.err(f"unexpected {c!r} {where}", p, hint="layers are separated by '-'")

    # ---- grammar -------------------------------------------------------------------------------

    def spec(self) -> _GroupNode:
        if self.peek() == "":
            raise self.err("empty spec", 0, hint="write layers separated by '-', e.g. taylor16-sw64-conv3")
        items = self.stack(opener=None)
        if self.peek() != "":
            raise self.unexpected("after the spec")
        return _GroupNode(items, 0, self.n)

    def stack(self, opener: int | None) -> list[_Item]:
        items = [self.item(sep=None, opener=opener)]
        while self.peek() == "-":
            sep = self.i
            self.i += 1
            items.append(self.item(sep=sep, opener=opener))
        return items

    def item(self, sep: int | None, opener: int | None) -> _Item:
        atom = self.atom(sep, opener)
        start, op, count = atom.start, None, 1
        c = self.peek()
        if c in ("*", "@"):
            op_pos = self.i
            self.i += 1
            self.peek()
            what = "repeat count" if c == "*" else "layer count"
            lit = self.int_literal(what)
            if lit is None:
                example = "taylor16*3" if c == "*" else "(taylor16-sw64)@24"
                raise self.err(f"expected a {what} after {c!r}", op_pos, self.i + 1, hint=f"e.g. {example}")
            count = lit[0]
            if count < 1:
                raise self.err(f"{what} must be >= 1, got {count}", op_pos, lit[2])
            op = c
        end = self.i if op is not None else atom.end
        if isinstance(atom, _MixNode) and op != "@":
            text = _strip_ws(self.s[atom.start : atom.end])
            weight_sum = sum(share.weight for share in atom.shares)
            if op == "*":
                raise self.err(
                    "mix(...) takes '@N' (a layer count), not '*k'",
                    atom.start,
                    end,
                    hint=f"write {text}@{count} to allocate {count} layers, or ({text}@N)*{count} to repeat an allocation",
                )
            raise self.err(
                "mix(...) needs a layer count", atom.start, end, hint=f"write {text}@N, e.g. {text}@{weight_sum}"
            )
        return _Item(atom, op, count, start, end)

    def atom(self, sep: int | None, opener: int | None) -> _LayerNode | _GroupNode | _MixNode:
        c = self.peek()
        p = self.i
        if c == "(":
            return self.group()
        if c in _LOWER:
            m = _NAME_RE.match(self.s, p)
            if m.group() == "mix":
                self.i = m.end()
                if self.peek() == "(":
                    return self.mix(p)
                self.i = p
            return self.layer()
        # No atom here: say which kind of hole it is.
        if c == "":
            if opener is not None:
                raise self.err("unclosed '('", opener, hint="close the group with ')'")
            raise self.err(
                "empty layer after a trailing '-'", sep if sep is not None else p, hint="remove the '-' or add a layer"
            )
        if c == "-":
            if sep is not None:
                raise self.err("empty layer between '-' separators", p, hint="remove one '-' or put a layer between")
            raise self.err("empty layer before '-'", p, hint="remove the leading '-'")
        if c == ")":
            if sep is not None:
                raise self.err("empty layer between '-' and ')'", sep, p + 1, hint="remove the '-' before ')'")
            if opener is not None and self.s[opener] == "(":
                raise self.err(
                    "empty group '()'", opener, p + 1, hint="put layers inside the parentheses or remove them"
                )
            raise self.err("unexpected ')'", p, hint="remove it, or add the matching '(' before the group")
        if c in (",", ":"):
            raise self.err(
                f"empty share before {c!r}", p, hint="each share is layer:weight, e.g. mix(taylor16:3,sw64:1)@24"
            )
        if c in _UPPER:
            m = _WORD_RE.match(self.s, p)
            near = _near(m.group().lower(), sorted(self.layers))
            hint = f"did you mean {near!r}?" if near else "layer names are lowercase"
            raise self.err(f"layer names are lowercase, got {m.group()!r}", p, m.end(), hint=hint)
        if c in _DIGIT:
            raise self.err(
                "a number must follow a layer name", p, hint="write the name first, e.g. taylor16 or (taylor16-sw64)*4"
            )
        if c in ("*", "@"):
            raise self.err(f"{c!r} must follow a layer or a group", p, hint="e.g. taylor16*3 or (taylor16-sw64)@24")
        raise self.err(f"unexpected {c!r}", p, hint="expected a layer name, '(' or 'mix('")

    def enter(self, start: int) -> None:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise self.err(f"nesting deeper than {_MAX_NESTING} levels", start, hint="flatten the spec")

    def group(self) -> _GroupNode:
        p = self.i
        self.enter(p)
        self.i += 1
        if self.peek() == ")":
            raise self.err("empty group '()'", p, self.i + 1, hint="put layers inside the parentheses or remove them")
        items = self.stack(opener=p)
        c = self.peek()
        if c == "":
            raise self.err("unclosed '('", p, hint="close the group with ')'")
        if c != ")":
            raise self.unexpected("inside '(...)'")
        self.i += 1
        self.depth -= 1
        return _GroupNode(items, p, self.i)

    def mix(self, p: int) -> _MixNode:
        self.enter(p)
        self.i += 1  # the "(" (peek() left the cursor on it)
        shares: list[_Share] = []
        example = "mix(taylor16:3,sw64:1)@24"
        while True:
            c = self.peek()
            if c == ")" and not shares:
                raise self.err(
                    "empty mix()", p, self.i + 1, hint=f"give it at least two layer:weight shares: {example}"
                )
            if c == "":
                raise self.err("unclosed 'mix('", p, p + 4, hint="close it with ')'")
            start = self.i
            atom = self.atom(sep=None, opener=None)
            c = self.peek()
            if c != ":":
                if c == "":
                    raise self.err("unclosed 'mix('", p, p + 4, hint="close it with ')'")
                if c in (",", ")"):
                    raise self.err(
                        "missing ':weight' after a mix share",
                        start,
                        self.i,
                        hint=f"give every share a weight: {example}",
                    )
                if c in ("*", "@"):
                    raise self.err(
                        f"a mix share cannot take {c!r}", self.i, hint=f"the weights set the proportions: {example}"
                    )
                if c == "-":
                    raise self.err(
                        "a mix share is a single layer, not a '-' sequence",
                        self.i,
                        hint="to tile a group use (taylor16-sw64)@N; to mix layers give each its own share",
                    )
                raise self.unexpected("inside 'mix(...)'")
            self.i += 1
            self.peek()
            weight_pos = self.i
            lit = self.int_literal("mix weight")
            if lit is None:
                raise self.err("expected an integer weight after ':'", weight_pos, hint=f"e.g. {example}")
            if self.i < self.n and self.s[self.i] == ".":
                number = re.match(r"[0-9.]*", self.s[lit[1] :]).group()
                raise self.err(
                    f"mix weights are integers, got '{number}'",
                    lit[1],
                    lit[1] + len(number),
                    hint="use whole-number ratios, e.g. mix(taylor16:3,sw64:1) for 75% / 25%",
                )
            if lit[0] < 1:
                raise self.err(f"mix weight must be >= 1, got {lit[0]}", lit[1], lit[2], hint="drop the share instead")
            shares.append(_Share(atom, lit[0], start, lit[2]))
            c = self.peek()
            if c == ",":
                self.i += 1
                continue
            if c == ")":
                self.i += 1
                break
            if c == "":
                raise self.err("unclosed 'mix('", p, p + 4, hint="close it with ')'")
            raise self.unexpected("inside 'mix(...)'")
        self.depth -= 1
        if len(shares) < 2:
            atom = shares[0].atom
            one = atom.layer.token if isinstance(atom, _LayerNode) else _strip_ws(self.s[atom.start : atom.end])
            raise self.err(
                "mix(...) needs at least two shares",
                p,
                self.i,
                hint=f"for a single layer type write {one}*N or {one}@N",
            )
        return _MixNode(shares, p, self.i)

    def layer(self) -> _LayerNode:
        p = self.i
        m = _NAME_RE.match(self.s, p)
        raw = m.group()
        d = _DIGITS_RE.match(self.s, m.end())
        token_end = d.end() if d else m.end()
        name = self.aliases.get(raw, raw)
        schema = self.layers.get(name)
        if schema is None:
            raise self.unknown_name(raw, d.group() if d else "", p, token_end)
        self.i = token_end
        if d is None:
            number = schema.number_default
            if schema.number_field is not None and number is None:
                raise self.err(f"'{name}' needs an inline number", p, token_end, hint=f"e.g. {name}16")
        else:
            if schema.number_field is None:
                hint = f"write '{name}' without a number"
                if schema.options:
                    key = "heads" if "heads" in schema.options else sorted(schema.options)[0]
                    hint += f"; set options in brackets, e.g. {name}[{key}=...]"
                raise self.err(f"'{name}' takes no inline number", p, token_end, hint=hint)
            if len(d.group()) > _MAX_DIGITS:
                raise self.err(f"inline number of '{name}' is too large", d.start(), d.end())
            number = int(d.group())
            if number < schema.number_min:
                raise self.err(
                    f"inline number of '{name}' ({schema.number_field}) must be >= {schema.number_min}, got {number}",
                    d.start(),
                    d.end(),
                    hint=f"e.g. {name}{schema.number_default or schema.number_min}",
                )
        options: tuple[tuple[str, object], ...] = ()
        if self.peek() == "[":
            options = self.options(name, schema)
        else:
            self.i = token_end  # leave trailing whitespace for the caller
        return _LayerNode(Layer(name, number, options), p, self.i)

    def unknown_name(self, raw: str, digits: str, start: int, end: int) -> SpecError:
        names = sorted(self.layers)
        near = _near(raw, names + sorted(self.aliases))
        lines = [f"did you mean '{self.aliases.get(near, near)}{digits}'?"] if near else []
        lines.append("valid layers: " + ", ".join(names))
        errors = getattr(self.vocab, "plugin_errors", None) or {}
        if errors:
            lines.append("plugins that failed to import: " + "; ".join(f"{k} ({v})" for k, v in sorted(errors.items())))
        lines.append(
            f"plugins load from the entry-point groups {_PLUGIN_GROUPS}; "
            "a mixer defined in your own module must be imported before the spec is parsed"
        )
        return self.err(f"unknown layer '{raw}{digits}'", start, end, hint="\n".join(lines))

    def options(self, name: str, schema: LayerSchema) -> tuple[tuple[str, object], ...]:
        open_pos = self.i
        self.i += 1
        values: dict[str, object] = {}
        seen: set[str] = set()
        example = f"{name}[key=value,key=value]"
        while True:
            c = self.peek()
            if c == "":
                raise self.err("unclosed '['", open_pos, hint="close the options with ']'")
            if c == "]" and not seen:
                raise self.err("empty option list '[]'", open_pos, self.i + 1, hint=f"remove '[]' or write {example}")
            key_match = _KEY_RE.match(self.s, self.i)
            if key_match is None:
                raise self.err(f"expected an option key, found {c!r}", self.i, hint=f"write {example}")
            key, key_start, key_end = key_match.group(), key_match.start(), key_match.end()
            valid = sorted(schema.options)
            if key not in schema.options:
                near = _near(key, valid)
                hint = (f"did you mean '{near}'? " if near else "") + f"valid options for {name}: " + ", ".join(valid)
                raise self.err(f"unknown option '{key}' for '{name}'", key_start, key_end, hint=hint)
            if key in seen:
                raise self.err(
                    f"duplicate option '{key}' for '{name}'", key_start, key_end, hint="give each option once"
                )
            seen.add(key)
            self.i = key_end
            c = self.peek()
            if c != "=":
                if c == "":
                    raise self.err("unclosed '['", open_pos, hint="close the options with ']'")
                raise self.err(f"expected '=' after option key '{key}'", self.i, hint=f"write {example}")
            self.i += 1
            self.peek()
            opt = schema.options[key]
            value = self.value(name, key, opt)
            if value != opt.default:  # an option equal to its default is dropped (canon never prints it)
                values[key] = value
            c = self.peek()
            if c == ",":
                self.i += 1
                continue
            if c == "]":
                self.i += 1
                return tuple(sorted(values.items()))
            if c == "":
                raise self.err("unclosed '['", open_pos, hint="close the options with ']'")
            raise self.err(
                f"expected ',' or ']' after the value of '{key}', found {c!r}", self.i, hint=f"write {example}"
            )

    def value(self, name: str, key: str, opt: OptionSpec) -> object:
        p = self.i
        m = _NUMBER_RE.match(self.s, p) or _WORD_RE.match(self.s, p)
        if m is None:
            c = self.s[p] if p < self.n else ""
            if c in (",", "]", ""):
                raise self.err(
                    f"missing value for option '{key}'", p, hint=f"e.g. {name}[{key}=...], expected {_type_name(opt)}"
                )
            raise self.err(
                f"bad value for option '{key}' of '{name}'",
                p,
                hint="a value is an int, a float, true/false or a lowercase name",
            )
        text = m.group()
        self.i = m.end()
        bad = self.err(f"option '{key}' of '{name}' expects {_type_name(opt)}, got '{text}'", p, self.i)
        is_number = m.re is _NUMBER_RE
        is_int = is_number and not any(ch in text for ch in ".eE")
        if is_number and len(text) > _MAX_DIGITS:
            raise self.err(f"value of option '{key}' is too long", p, self.i)
        value: object
        if opt.type is bool:
            if text not in ("true", "false"):
                raise bad
            value = text == "true"
        elif opt.type is int:
            if not is_int:
                raise bad
            value = int(text)
        elif opt.type is float:
            if not is_number:
                raise bad
            value = float(text)
            if not math.isfinite(value):
                raise self.err(f"value of option '{key}' is out of range", p, self.i)
        elif opt.type is str:
            if is_number or not _IDENT_RE.match(text):
                if not is_number and _IDENT_RE.match(text.lower()):
                    bad.hint = f"values are lowercase: {text.lower()}"
                raise bad
            value = text
        else:
            raise self.err(f"option '{key}' of '{name}' ({opt.type!r}) cannot be set from a spec", p, self.i)
        if opt.choices is not None and value not in opt.choices:
            near = _near(text.lower(), [_render_value(c) for c in opt.choices])
            if near:
                bad.hint = f"did you mean '{near}'?"
            raise bad
        return value


# --------------------------------------------------------------------------------------------------
# Measuring (validates tiling and mixes, caps the depth), expanding and rendering the tree
# --------------------------------------------------------------------------------------------------


def _depth_hint(base_text: str, layers: list[Layer], n: int) -> str:
    """``nearest valid depths: 24, 28 — or allocate by ratio: mix(taylor16:3,sw64:1)@26``."""
    g = len(layers)
    depths = [d for d in ((n // g) * g, (n // g + 1) * g) if d >= g]
    counts: dict[str, int] = {}
    for layer in layers:
        counts[layer.token] = counts.get(layer.token, 0) + 1
    if len(counts) == 1:
        alternative = f"{next(iter(counts))}*{n}"
    else:
        common = math.gcd(*counts.values())
        alternative = "allocate by ratio: mix(" + ",".join(f"{t}:{c // common}" for t, c in counts.items()) + f")@{n}"
    valid = ", ".join(str(d) for d in depths)
    return f"nearest valid depth{'s' if len(depths) > 1 else ''} for {base_text}: {valid} — or {alternative}"


class _Tree:
    """A parsed spec: the tree, the length of every node (validated), the expanded layers."""

    def __init__(self, text: str, vocab: Vocabulary):
        self.text = text
        self.root = _Parser(text, vocab).spec()
        self.lengths: dict[int, int] = {}
        self.measure(self.root)

    def err(self, message: str, start: int, end: int, hint: str = "") -> SpecError:
        return SpecError(message, self.text, start, end, hint)

    def cap(self, total: int, start: int, end: int) -> int:
        if total > MAX_LAYERS:
            raise self.err(
                f"spec expands to {total} layers, more than the limit of {MAX_LAYERS}",
                start,
                end,
                hint="check the repeat counts for an extra digit",
            )
        return total

    def measure(self, node: _LayerNode | _GroupNode | _Item | _MixNode) -> int:
        if isinstance(node, _LayerNode):
            total = 1
        elif isinstance(node, _GroupNode):
            total = 0
            for item in node.items:
                total = self.cap(total + self.measure(item), node.start, node.end)
        elif isinstance(node.atom, _MixNode):
            total = self.cap(node.count, node.start, node.end)
            self.check_mix(node.atom, node.count)
        else:
            inner = self.measure(node.atom)
            if node.op == "@":
                if node.count % inner:
                    base = self.render_atom(node.atom)
                    raise self.err(
                        f"cannot tile a {inner}-layer group to {node.count} layers "
                        f"({node.count} % {inner} = {node.count % inner})",
                        node.start,
                        node.end,
                        hint=_depth_hint(base, self.expand(node.atom), node.count),
                    )
                total = node.count
            else:
                total = self.cap(inner * node.count, node.start, node.end)
        self.lengths[id(node)] = total
        return total

    def check_mix(self, mix: _MixNode, n: int) -> None:
        for share in mix.shares:
            size = self.measure(share.atom)
            if size != 1:
                text = _strip_ws(self.text[share.atom.start : share.atom.end])
                raise self.err(
                    f"a mix share must be a single layer, got a {size}-layer group",
                    share.atom.start,
                    share.atom.end,
                    hint=f"mix allocates single layers by weight; to repeat a group write {text}@N or {text}*k",
                )
        weights = [share.weight for share in mix.shares]
        counts = allocate_counts(weights, n)
        for share, count in zip(mix.shares, counts):
            if count == 0:
                enough = -(-sum(weights) // min(weights))
                raise self.err(
                    f"mix(...)@{n} gives '{self.expand(share.atom)[0].token}' no layers "
                    f"(weight {share.weight} of {sum(weights)})",
                    share.start,
                    share.end,
                    hint=f"use @{enough} or more (every share then gets a layer), or drop the share",
                )

    def expand(self, node: _LayerNode | _GroupNode | _Item | _MixNode) -> list[Layer]:
        if isinstance(node, _LayerNode):
            return [node.layer]
        if isinstance(node, _GroupNode):
            return [layer for item in node.items for layer in self.expand(item)]
        if isinstance(node.atom, _MixNode):
            choices, pattern = self.mix_pattern(node.atom, node.count)
            return [choices[i] for i in pattern]
        inner = self.expand(node.atom)
        return inner * (node.count // len(inner) if node.op == "@" else node.count)

    def mix_pattern(self, mix: _MixNode, n: int) -> tuple[list[Layer], list[int]]:
        choices = [self.expand(share.atom)[0] for share in mix.shares]
        return choices, place_shares(allocate_counts([share.weight for share in mix.shares], n))

    def render(self, node: _GroupNode | _Item | _LayerNode) -> list[tuple[str, bool]]:
        """Canonical pieces ``(text, is_bare_layer)`` that join with '-' into the canonical spec."""
        if isinstance(node, _LayerNode):
            return [(node.layer.token, True)]
        if isinstance(node, _GroupNode):
            return [piece for item in node.items for piece in self.render(item)]
        if isinstance(node.atom, _MixNode):
            choices, pattern = self.mix_pattern(node.atom, node.count)
            pieces: list[tuple[str, bool]] = []
            run_start = 0
            for j in range(1, len(pattern) + 1):
                if j == len(pattern) or choices[pattern[j]] != choices[pattern[run_start]]:
                    token, k = choices[pattern[run_start]].token, j - run_start
                    pieces.append((token, True) if k == 1 else (f"{token}*{k}", False))
                    run_start = j
            return pieces
        inner = self.render(node.atom)
        k = node.count // self.lengths[id(node.atom)] if node.op == "@" else node.count
        if k == 1:
            return inner
        if len(inner) == 1 and inner[0][1]:
            return [(f"{inner[0][0]}*{k}", False)]
        return [("(" + "-".join(text for text, _ in inner) + f")*{k}", False)]

    def render_atom(self, node: _LayerNode | _GroupNode) -> str:
        pieces = self.render(node)
        text = "-".join(t for t, _ in pieces)
        return text if len(pieces) == 1 and pieces[0][1] else f"({text})"


def _tree(spec: str, vocab: Vocabulary | None) -> _Tree:
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a str, got {type(spec).__name__}")
    return _Tree(spec, vocab if vocab is not None else default_vocabulary())


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def parse(spec: str, vocab: Vocabulary | None = None) -> list[Layer]:
    """Parse a spec into its flat list of layers (the model's blocks, in order).

    ``*k`` repeats an item k times; ``@N`` tiles a layer or group to N layers (N must be a multiple of
    its length); ``mix(a:w1,b:w2,...)@N`` allocates N single layers by the integer weights (largest
    remainder, see :func:`allocate_counts`) and spreads the smaller shares evenly (:func:`place_shares`).
    A share must expand to exactly one layer (``taylor16`` or ``(taylor16)``); a multi-layer group share
    is an error, because a weight counts layers. Bare tokens take the schema's default number.

    Args:
        spec: the spec text, e.g. ``"(taylor16-sw64-conv3)*4"``.
        vocab: the layer vocabulary; default: the registry's (:func:`default_vocabulary`).

    Returns:
        One :class:`Layer` per block, options coerced to their declared types, defaults dropped.

    Raises:
        SpecError: on any malformed spec, with the position, a caret line and a fix.

    >>> [layer.token for layer in parse("taylor-sw*2-conv5", _EXAMPLE_VOCAB)]
    ['taylor16', 'sw64', 'sw64', 'conv5']
    >>> [layer.token for layer in parse("(taylor-sw[heads=4, rope=true])@4", _EXAMPLE_VOCAB)]
    ['taylor16', 'sw64[heads=4]', 'taylor16', 'sw64[heads=4]']
    >>> "".join(layer.name[0] for layer in parse("mix(taylor:3,sw:1)@8", _EXAMPLE_VOCAB))
    'ttsttstt'
    >>> try:
    ...     parse("taylor16-sw64*0", _EXAMPLE_VOCAB)
    ... except SpecError as err:
    ...     print(err)
    repeat count must be >= 1, got 0 (position 13)
      taylor16-sw64*0
                   ^^
    """
    tree = _tree(spec, vocab)
    return tree.expand(tree.root)


def canon(spec: str, vocab: Vocabulary | None = None) -> str:
    """The canonical text of a spec; ``parse(canon(s)) == parse(s)`` and ``canon(canon(s)) == canon(s)``.

    Every layer prints its inline number and only its non-default options, sorted by key; whitespace
    and redundant parentheses (around a single layer, or a group without ``*k``) are dropped; ``*1``
    is dropped; ``@N`` becomes ``*k``; ``mix(...)@N`` becomes its explicit run-length pattern. The
    user's ``*k`` grouping is kept as written.

    Args:
        spec: the spec text.
        vocab: the layer vocabulary; default: the registry's.

    Returns:
        The canonical spec text.

    Raises:
        SpecError: on any malformed spec.

    >>> canon("(taylor - sw - conv) * 4", _EXAMPLE_VOCAB)
    '(taylor16-sw64-conv3)*4'
    >>> canon("sw[rope=false,heads=4,backend=auto]-(attn)@3", _EXAMPLE_VOCAB)
    'sw64[heads=4,rope=false]-attn*3'
    >>> canon("(taylor-conv)@6-mix(taylor:3,sw:1)@8", _EXAMPLE_VOCAB)
    '(taylor16-conv3)*3-taylor16*2-sw64-taylor16*2-sw64-taylor16*2'
    """
    tree = _tree(spec, vocab)
    return "-".join(text for text, _ in tree.render(tree.root))


def check_depth(spec: str, n_layers: int, vocab: Vocabulary | None = None) -> list[Layer]:
    """Parse ``spec`` and check that it expands to exactly ``n_layers`` layers (never tiles or truncates).

    Args:
        spec: the spec text.
        n_layers: the depth the caller expects (``build(spec, n_layers=N)``).
        vocab: the layer vocabulary; default: the registry's.

    Returns:
        The expanded layers, as :func:`parse`.

    Raises:
        SpecError: when the spec is malformed or its depth differs, with a spec of the right depth as hint.

    >>> len(check_depth("(taylor-sw-conv)*4", 12, _EXAMPLE_VOCAB))
    12
    >>> try:
    ...     check_depth("(taylor-sw-conv)*4", 24, _EXAMPLE_VOCAB)
    ... except SpecError as err:
    ...     print(err)
    spec expands to 12 layers but n_layers=24 was requested (position 0)
      (taylor-sw-conv)*4
      ^^^^^^^^^^^^^^^^^^
      use (taylor16-sw64-conv3)*8 or (taylor16-sw64-conv3)@24
    """
    tree = _tree(spec, vocab)
    layers = tree.expand(tree.root)
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise SpecError(f"n_layers must be a positive int, got {n_layers!r}")
    if len(layers) == n_layers:
        return layers
    items = tree.root.items
    if len(items) == 1 and items[0].op is not None and not isinstance(items[0].atom, _MixNode):
        base_node = items[0].atom
        base_layers = tree.expand(base_node)
        base_text = tree.render_atom(base_node)
    else:
        base_layers = layers
        pieces = tree.render(tree.root)
        base_text = "-".join(t for t, _ in pieces)
        base_text = base_text if len(pieces) == 1 and pieces[0][1] else f"({base_text})"
    b = len(base_layers)
    if n_layers % b == 0:
        hint = f"use {base_text}*{n_layers // b}" if n_layers > b else f"use {base_text}"
        hint += f" or {base_text}@{n_layers}"
    else:
        hint = _depth_hint(base_text, base_layers, n_layers)
    raise SpecError(
        f"spec expands to {len(layers)} layers but n_layers={n_layers} was requested", spec, 0, len(spec), hint
    )
