"""Multi-query associative recall (MQAR), exactly as the Zoology benchmark generates it.

An MQAR example is a list of key-value pairs followed by queries: every key reappears once later in
the sequence and the model must emit its value at that position (Arora, Eyuboglu et al., "Zoology",
arXiv 2312.04927; used for Figures 2-3 of BASED, arXiv 2402.18668)::

            key  val  key  val  ...  query          query
    inputs:   2    8    4    7   0   0    4   0   0   0    2   0
    labels: -100 -100 -100 -100 -100 -100 7 -100 -100 -100 8 -100

`generate` reproduces `zoology/data/multiquery_ar.py` call for call (same `numpy` draws in the same
order), so a seed gives the same tensors as Zoology and results compare with published MQAR numbers.
`MQARTask` bundles the train/test segments of a run (the paper's by default) and derives one seed per
segment the way Zoology's `prepare_data` does.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

IGNORE_INDEX = -100  # label of every unscored position (the convention of torch's cross_entropy)


def generate(
    vocab_size: int,
    num_examples: int,
    input_seq_len: int,
    num_kv_pairs: int,
    seed: int,
    power_a: float = 0.01,
    random_non_queries: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate MQAR examples, identical to Zoology's `multiquery_ar` for the same seed.

    Keys are drawn from `[1, V/2)` and values from `[V/2, V)`, without replacement within an example.
    The `num_kv_pairs` pairs fill the first `2·num_kv_pairs` positions; each key is then queried
    exactly once, at an even offset `2g` after the context, with the gap `g` drawn without replacement
    from a power law `p(g) ∝ (g+1)^(power_a−1)` (≈ 1/(g+1) at the default 0.01, so most queries come
    soon after the context). The label at a query position is the paired value; every other label is
    -100. With `random_non_queries`, every filler 0 becomes a uniform token in `[0, V)`, so filler can
    collide with keys and values, as in Zoology.

    Random streams: `numpy.random.RandomState(seed)` for keys, values and gaps (Zoology seeds numpy's
    global generator with the same seed, which is the same stream); the filler comes from
    `torch.Generator().manual_seed(seed)`, which equals Zoology's output when torch's global generator
    is seeded with `seed` (Zoology leaves it to the caller, so its filler alone is not pinned by `seed`).

    Args:
        vocab_size: V, the vocabulary size; must exceed `input_seq_len`.
        num_examples: N, the number of sequences.
        input_seq_len: L, the sequence length; must be even and at least `4·num_kv_pairs`.
        num_kv_pairs: the number of key-value pairs (= the number of scored positions) per example.
        seed: the seed of the numpy and torch streams, in `[0, 2**32)`.
        power_a: the power-law exponent of the query gaps; 1.0 is uniform.
        random_non_queries: replace filler zeros with random tokens.

    Returns:
        `(inputs, labels)`, both int64 `[N, L]`; `labels` is -100 except at the `num_kv_pairs` query
        positions of each row, where it holds the value paired with the key at that input position.

    Raises:
        ValueError: on an odd L, `vocab_size <= L`, too many pairs for L or V, or a bad seed/power_a.

    Example:
        >>> inputs, labels = generate(vocab_size=32, num_examples=1, input_seq_len=16, num_kv_pairs=2, seed=0)
        >>> inputs.shape, labels.shape, int((labels != -100).sum())
        (torch.Size([1, 16]), torch.Size([1, 16]), 2)
    """
    _check_arguments(vocab_size, num_examples, input_seq_len, num_kv_pairs, seed, power_a)
    rng = np.random.RandomState(seed)
    context = 2 * num_kv_pairs

    # Keys for every example first, then values for every example (Zoology's apply_along_axis order).
    key_choices = np.arange(1, vocab_size // 2)
    value_choices = np.arange(vocab_size // 2, vocab_size)
    keys = np.empty((num_examples, num_kv_pairs), dtype=np.int64)  # [N, k]
    values = np.empty((num_examples, num_kv_pairs), dtype=np.int64)  # [N, k]
    for i in range(num_examples):
        keys[i] = rng.choice(key_choices, size=num_kv_pairs, replace=False)
    for i in range(num_examples):
        values[i] = rng.choice(value_choices, size=num_kv_pairs, replace=False)

    kvs = np.zeros((num_examples, context), dtype=np.int64)  # [N, 2k]
    kvs[:, 0::2] = keys
    kvs[:, 1::2] = values

    # Query gaps: without replacement from the power law over the (L − 2k)/2 even slots after the context.
    space = (input_seq_len - context) // 2
    p = power_a * np.arange(1, space + 1) ** (power_a - 1)
    p = p / p.sum()
    gap_choices = np.arange(space)
    gaps = np.empty((num_examples, num_kv_pairs), dtype=np.int64)  # [N, k]
    for i in range(num_examples):
        gaps[i] = rng.choice(gap_choices, size=num_kv_pairs, replace=False, p=p)

    queries = np.zeros((num_examples, input_seq_len - context + 1), dtype=np.int64)  # [N, L − 2k + 1]
    np.put_along_axis(queries, 2 * gaps, keys, axis=1)
    examples = np.concatenate([kvs, queries], axis=1)  # [N, L + 1]
    labels = np.full((num_examples, input_seq_len + 1), IGNORE_INDEX, dtype=np.int64)  # [N, L + 1]
    np.put_along_axis(labels, 2 * gaps + context + 1, values, axis=1)

    inputs = torch.from_numpy(np.ascontiguousarray(examples[:, :-1]))  # [N, L]
    targets = torch.from_numpy(np.ascontiguousarray(labels[:, 1:]))  # [N, L]
    if random_non_queries:
        generator = torch.Generator().manual_seed(seed)
        filler = torch.randint(vocab_size, size=inputs.shape, generator=generator)  # [N, L], as Zoology draws it
        zeros = inputs == 0
        inputs[zeros] = filler[zeros]
    return inputs, targets


def _check_arguments(
    vocab_size: int, num_examples: int, input_seq_len: int, num_kv_pairs: int, seed: int, power_a: float
) -> None:
    if input_seq_len <= 0 or input_seq_len % 2:
        raise ValueError(
            f"MQAR input_seq_len must be a positive even number (queries sit at even offsets), got {input_seq_len}; "
            f"use {max(2, input_seq_len + input_seq_len % 2)}"
        )
    if vocab_size <= input_seq_len:
        raise ValueError(
            f"MQAR needs vocab_size > input_seq_len (Zoology's rule), got vocab_size={vocab_size} and "
            f"input_seq_len={input_seq_len}; raise vocab_size to at least {input_seq_len + 1}"
        )
    if num_kv_pairs < 1 or 4 * num_kv_pairs > input_seq_len:
        raise ValueError(
            f"MQAR needs 1 <= num_kv_pairs and 4·num_kv_pairs <= input_seq_len (room for the pairs and one query "
            f"slot each), got num_kv_pairs={num_kv_pairs}, input_seq_len={input_seq_len}; use num_kv_pairs <= "
            f"{input_seq_len // 4} or input_seq_len >= {4 * num_kv_pairs}"
        )
    # (vocab_size > L >= 4·num_kv_pairs leaves >= num_kv_pairs distinct keys in [1, V/2).)
    if num_examples < 0:
        raise ValueError(f"num_examples must be >= 0, got {num_examples}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32) (numpy's RandomState range), got {seed}")
    if not power_a > 0:
        raise ValueError(f"power_a must be > 0 (1.0 gives uniform gaps, 0.01 Zoology's power law), got {power_a}")


# ----------------------------------------------------------------------------------------------------
# Tasks: train/test segments and their seeds (zoology/data/utils.py:prepare_data)
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One block of MQAR examples sharing a sequence length and a number of pairs.

    Args:
        input_seq_len: L of every example in the segment.
        num_kv_pairs: key-value pairs (and scored queries) per example.
        num_examples: examples in the segment.
    """

    input_seq_len: int
    num_kv_pairs: int
    num_examples: int


# The BASED paper's Figure 2 data (zoology/experiments/paper_configs/arxiv24_based_figure2/configs.py).
PAPER_TRAIN_SEGMENTS: tuple[Segment, ...] = (
    Segment(64, 4, 100_000),
    Segment(128, 8, 20_000),
    Segment(256, 16, 20_000),
    Segment(256, 32, 20_000),
    Segment(256, 64, 20_000),
)
PAPER_TEST_SEGMENTS: tuple[Segment, ...] = (
    Segment(64, 4, 1_000),
    Segment(64, 8, 1_000),
    Segment(64, 16, 1_000),
    Segment(128, 32, 1_000),
    Segment(256, 64, 1_000),
    Segment(512, 128, 1_000),
    Segment(1024, 256, 1_000),
)


def segment_seeds(seed: int, num_train: int, num_test: int) -> tuple[list[int], list[int]]:
    """One seed per segment, as Zoology's `prepare_data` draws them from `DataConfig.seed`.

    Train seeds come from `[0, 2**31)` and test seeds from `[2**31, 2**32)`, so a train and a test
    segment never share a seed: `np.random.seed(seed); randint(0, 2**31, num_train);
    randint(2**31, 2**32, num_test)`.

    Example:
        >>> train, test = segment_seeds(123, 2, 1)
        >>> all(s < 2**31 for s in train) and all(s >= 2**31 for s in test)
        True
    """
    rng = np.random.RandomState(seed)
    train = rng.randint(0, 2**31, size=num_train, dtype=np.int64)
    test = rng.randint(2**31, 2**32, size=num_test, dtype=np.int64)
    return [int(s) for s in train], [int(s) for s in test]


@dataclass(frozen=True)
class MQARTask:
    """The data of one MQAR run: train and test segments, vocabulary and seed.

    Defaults are the BASED paper's (vocab 8192; 5 train segments L=64…256; 7 test segments up to
    L=1024 with 256 pairs; `DataConfig.seed=123`). Each segment gets its own seed from `segment_seeds`.
    Accuracy is reported per `num_kv_pairs` slice (Zoology's slice key).

    Example:
        >>> task = MQARTask(vocab_size=128, train_segments=(Segment(32, 4, 8),), test_segments=(Segment(32, 4, 4),))
        >>> data = task.build()
        >>> data.train[0].inputs.shape, data.max_seq_len
        (torch.Size([8, 32]), 32)
    """

    vocab_size: int = 8192
    train_segments: tuple[Segment, ...] = PAPER_TRAIN_SEGMENTS
    test_segments: tuple[Segment, ...] = PAPER_TEST_SEGMENTS
    power_a: float = 0.01
    random_non_queries: bool = True
    seed: int = 123

    def __post_init__(self) -> None:
        # Accept lists and plain tuples (JSON round trips) and store hashable tuples of Segment.
        for name in ("train_segments", "test_segments"):
            segments = tuple(s if isinstance(s, Segment) else Segment(*s) for s in getattr(self, name))
            if not segments:
                raise ValueError(f"MQARTask.{name} is empty; give at least one Segment(input_seq_len, kv, n)")
            object.__setattr__(self, name, segments)
        for s in (*self.train_segments, *self.test_segments):
            _check_arguments(self.vocab_size, s.num_examples, s.input_seq_len, s.num_kv_pairs, 0, self.power_a)

    @property
    def max_seq_len(self) -> int:
        """The longest sequence of any segment (the model's `max_len`, the L of the state size)."""
        return max(s.input_seq_len for s in (*self.train_segments, *self.test_segments))

    @property
    def max_test_seq_len(self) -> int:
        """The longest test sequence; Zoology reports state sizes at this L."""
        return max(s.input_seq_len for s in self.test_segments)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; `MQARTask.from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MQARTask:
        """Rebuild a task from `to_dict` output (segments may be dicts or lists)."""
        data = dict(data)
        for name in ("train_segments", "test_segments"):
            if name in data:
                data[name] = tuple(Segment(**s) if isinstance(s, Mapping) else Segment(*s) for s in data[name])
        return cls(**data)

    def build(self) -> MQARData:
        """Generate every segment: cached per process, and on disk under ``$MIXERZOO_DATA_CACHE``
        (default ``~/.cache/mixerzoo/mqar``; set it to ``off`` to disable), since the paper's segments take
        about half a minute to draw with zoology's per-example calls."""
        return _build_cached(self)


@dataclass
class SegmentData:
    """The generated tensors of one segment; `inputs` and `labels` are int64 `[N, L]`."""

    segment: Segment
    seed: int
    inputs: torch.Tensor
    labels: torch.Tensor


@dataclass
class MQARData:
    """Generated train and test segments of an `MQARTask`."""

    task: MQARTask
    train: list[SegmentData] = field(default_factory=list)
    test: list[SegmentData] = field(default_factory=list)

    @property
    def max_seq_len(self) -> int:
        return self.task.max_seq_len


def build_segments(task: MQARTask, segments: Sequence[Segment], seeds: Sequence[int]) -> list[SegmentData]:
    """Generate `segments` of `task` with one seed each."""
    out = []
    for segment, seed in zip(segments, seeds, strict=True):
        inputs, labels = generate(
            vocab_size=task.vocab_size,
            num_examples=segment.num_examples,
            input_seq_len=segment.input_seq_len,
            num_kv_pairs=segment.num_kv_pairs,
            seed=seed,
            power_a=task.power_a,
            random_non_queries=task.random_non_queries,
        )
        out.append(SegmentData(segment=segment, seed=seed, inputs=inputs, labels=labels))
    return out


CACHE_FORMAT = 1  # bump when the generator's output for a given task changes


def cache_path(task: MQARTask) -> Path | None:
    """Where ``task``'s generated data is kept on disk (None when the cache is off)."""
    root = os.environ.get("MIXERZOO_DATA_CACHE", str(Path.home() / ".cache" / "mixerzoo" / "mqar"))
    if root.lower() in ("off", "0", "none", ""):
        return None
    key = json.dumps({"format": CACHE_FORMAT, **task.to_dict()}, sort_keys=True)
    return Path(root) / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"


@functools.lru_cache(maxsize=4)
def _build_cached(task: MQARTask) -> MQARData:
    path = cache_path(task)
    if path is not None and path.exists():
        try:
            train, test = torch.load(path, weights_only=True)
            return MQARData(
                task=task,
                train=[SegmentData(Segment(*seg), seed, x, y) for seg, seed, x, y in train],
                test=[SegmentData(Segment(*seg), seed, x, y) for seg, seed, x, y in test],
            )
        except Exception:  # noqa: BLE001 - a damaged or foreign cache file is simply regenerated
            pass
    train_seeds, test_seeds = segment_seeds(task.seed, len(task.train_segments), len(task.test_segments))
    data = MQARData(
        task=task,
        train=build_segments(task, task.train_segments, train_seeds),
        test=build_segments(task, task.test_segments, test_seeds),
    )
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = [
                [(dataclasses.astuple(d.segment), d.seed, d.inputs, d.labels) for d in part]
                for part in (data.train, data.test)
            ]
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            torch.save(rows, tmp)
            os.replace(tmp, path)  # atomic: concurrent workers never read a half-written file
        except OSError:
            pass  # a read-only or full disk only costs the regeneration next time
    return data


def example_accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example accuracy over the scored positions (Zoology's `compute_metrics`).

    Args:
        predictions: int `[B, L]`, the argmax of the logits.
        labels: int `[B, L]`, -100 where unscored.

    Returns:
        float `[B]`: the fraction of scored positions where `predictions == labels` (NaN for a row
        with no scored position; MQAR rows always have `num_kv_pairs` of them).
    """
    scored = labels != IGNORE_INDEX  # [B, L]
    correct = (predictions == labels) & scored  # [B, L]
    return correct.sum(-1).float() / scored.sum(-1).float()
