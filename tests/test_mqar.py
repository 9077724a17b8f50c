"""MQAR generator: Zoology golden values, invariants, power law, seeds and argument errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mixerzoo.tasks.mqar import (
    PAPER_TEST_SEGMENTS,
    PAPER_TRAIN_SEGMENTS,
    MQARTask,
    Segment,
    example_accuracy,
    generate,
    segment_seeds,
)


def zoology_multiquery_ar(vocab_size, num_examples, input_seq_len, seed, power_a=0.01, num_kv_pairs=8,
                          random_non_queries=True):  # fmt: skip
    """zoology/data/multiquery_ar.py (num_passes=1), written out a second time as literally as possible:
    numpy's global generator, apply_along_axis, put_along_axis, and torch's global generator for filler."""
    np.random.seed(seed)
    context_size = num_kv_pairs * 2
    key_vocab_size = vocab_size // 2
    key_choices = np.arange(1, key_vocab_size)
    value_choices = np.arange(key_vocab_size, vocab_size)
    keys_unshuffled = np.tile(key_choices, (num_examples, 1))
    keys = np.apply_along_axis(np.random.choice, 1, keys_unshuffled, replace=False, size=num_kv_pairs)
    values_unshuffled = np.tile(value_choices, (num_examples, 1))
    values = np.apply_along_axis(np.random.choice, 1, values_unshuffled, replace=False, size=num_kv_pairs)
    kvs = np.zeros((num_examples, context_size), dtype=np.int64)
    kvs[:, 0::2] = keys
    kvs[:, 1::2] = values
    space = (input_seq_len - context_size) // 2
    p = power_a * np.arange(1, space + 1) ** (power_a - 1)
    p = p / p.sum()
    x = np.stack([np.arange(space, dtype=int)] * num_examples)
    gaps = np.apply_along_axis(np.random.choice, axis=1, arr=x, replace=False, p=p, size=num_kv_pairs)
    queries = np.zeros((num_examples, input_seq_len - context_size + 1), dtype=np.int64)
    np.put_along_axis(queries, (gaps * 2), values=keys, axis=1)
    examples = np.concatenate([kvs, queries], axis=1)
    labels = np.full((num_examples, input_seq_len + 1), -100, dtype=np.int64)
    np.put_along_axis(labels, (gaps * 2) + context_size + 1, values=values, axis=1)
    inputs, labels = torch.tensor(examples[:, :-1]), torch.tensor(labels[:, 1:])
    if random_non_queries:
        torch.manual_seed(seed)  # Zoology leaves torch's global generator to the caller; we pin it to `seed`
        inputs[inputs == 0] = torch.randint(vocab_size, size=inputs.shape)[inputs == 0]
    return inputs, labels


@pytest.mark.parametrize(
    ("vocab_size", "num_examples", "input_seq_len", "num_kv_pairs", "seed", "power_a"),
    [
        (8192, 64, 64, 4, 0, 0.01),
        (8192, 16, 256, 64, 123, 0.01),
        (8192, 8, 1024, 256, 2**32 - 1, 0.01),
        (300, 50, 128, 8, 7, 1.0),
        (65, 40, 64, 16, 2967327842, 0.5),
    ],
)
@pytest.mark.parametrize("random_non_queries", [True, False])
def test_matches_zoology_literal(vocab_size, num_examples, input_seq_len, num_kv_pairs, seed, power_a,
                                 random_non_queries):  # fmt: skip
    ours = generate(vocab_size, num_examples, input_seq_len, num_kv_pairs, seed, power_a, random_non_queries)
    state = torch.random.get_rng_state()
    try:
        theirs = zoology_multiquery_ar(
            vocab_size, num_examples, input_seq_len, seed, power_a, num_kv_pairs, random_non_queries
        )
    finally:
        torch.random.set_rng_state(state)
    for a, b in zip(ours, theirs):
        assert a.dtype == torch.int64 and a.shape == (num_examples, input_seq_len)
        assert torch.equal(a, b)


def test_golden_values():
    # Pinned output: catches a change in either implementation above (or in numpy's legacy stream).
    inputs, labels = generate(vocab_size=32, num_examples=2, input_seq_len=16, num_kv_pairs=2, seed=0,
                              random_non_queries=False)  # fmt: skip
    assert inputs.tolist() == [
        [2, 20, 7, 28, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 7, 0],
        [3, 29, 5, 22, 5, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0],
    ]
    x = -100
    assert labels.tolist() == [
        [x, x, x, x, x, x, x, x, 20, x, x, x, x, x, 28, x],
        [x, x, x, x, 22, x, x, x, 29, x, x, x, x, x, x, x],
    ]
    filled, _ = generate(vocab_size=32, num_examples=2, input_seq_len=16, num_kv_pairs=2, seed=0)
    kept = inputs != 0
    assert torch.equal(filled[kept], inputs[kept])  # filler changes only the zeros


def check_invariants(inputs, labels, vocab_size, num_kv_pairs, filler):
    n, length = inputs.shape
    context = 2 * num_kv_pairs
    keys, values = inputs[:, 0:context:2], inputs[:, 1:context:2]
    assert ((keys >= 1) & (keys < vocab_size // 2)).all()
    assert ((values >= vocab_size // 2) & (values < vocab_size)).all()
    assert ((inputs >= 0) & (inputs < vocab_size)).all()
    scored = labels != -100
    assert (scored.sum(1) == num_kv_pairs).all()
    positions = torch.arange(length).expand(n, length)
    # Labels only at query slots: after the context, at even offsets from it.
    assert (positions[scored] >= context).all() and ((positions[scored] - context) % 2 == 0).all()
    for i in range(n):
        pairs = dict(zip(keys[i].tolist(), values[i].tolist()))
        assert len(pairs) == num_kv_pairs  # distinct keys
        assert len(set(values[i].tolist())) == num_kv_pairs  # distinct values
        queried = inputs[i][scored[i]].tolist()
        assert sorted(queried) == sorted(pairs)  # each key queried exactly once
        assert labels[i][scored[i]].tolist() == [pairs[k] for k in queried]  # label = the paired value
        if not filler:
            rest = ~scored[i] & (positions[i] >= context)
            assert (inputs[i][rest] == 0).all()


@settings(max_examples=40, deadline=None)
@given(
    num_kv_pairs=st.integers(1, 12),
    extra=st.integers(0, 40),
    vocab_extra=st.integers(1, 200),
    num_examples=st.integers(0, 6),
    seed=st.integers(0, 2**32 - 1),
    power_a=st.sampled_from([0.01, 0.3, 1.0]),
    filler=st.booleans(),
)
def test_invariants(num_kv_pairs, extra, vocab_extra, num_examples, seed, power_a, filler):
    length = 4 * num_kv_pairs + 2 * extra
    vocab_size = max(length, 2 * num_kv_pairs + 1) + vocab_extra
    inputs, labels = generate(vocab_size, num_examples, length, num_kv_pairs, seed, power_a, filler)
    assert inputs.shape == labels.shape == (num_examples, length)
    assert inputs.dtype == labels.dtype == torch.int64
    check_invariants(inputs, labels, vocab_size, num_kv_pairs, filler)


def test_invariants_paper_segment():
    inputs, labels = generate(8192, 200, 256, 64, seed=5)
    check_invariants(inputs, labels, 8192, 64, filler=True)


def test_power_law_shape():
    num_kv_pairs, length, n = 4, 256, 2000
    context, space = 2 * num_kv_pairs, (length - 2 * num_kv_pairs) // 2
    _, labels = generate(8192, n, length, num_kv_pairs, seed=1, random_non_queries=False)
    gaps = (torch.nonzero(labels != -100)[:, 1] - context) // 2
    counts = torch.bincount(gaps, minlength=space).float()
    assert counts.sum() == n * num_kv_pairs
    # p(g) ∝ (g+1)^-0.99: the first 8 slots get far more queries than the last 8 ...
    assert counts[:8].sum() > 10 * counts[-8:].sum()
    # ... and frequency falls with the gap (monotone over coarse bins).
    bins = counts[: space // 4 * 4].reshape(4, -1).sum(1)
    assert (bins[:-1] > bins[1:]).all()
    # power_a = 1 is uniform: no such skew.
    _, flat = generate(8192, n, length, num_kv_pairs, seed=1, power_a=1.0, random_non_queries=False)
    flat_counts = torch.bincount((torch.nonzero(flat != -100)[:, 1] - context) // 2, minlength=space).float()
    assert flat_counts[:8].sum() < 2 * flat_counts[-8:].sum()


def test_seed_determinism():
    a = generate(512, 20, 64, 8, seed=3)
    b = generate(512, 20, 64, 8, seed=3)
    c = generate(512, 20, 64, 8, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    # Independent of the global generators' state.
    torch.manual_seed(99)
    np.random.seed(99)
    d = generate(512, 20, 64, 8, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a, d))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(input_seq_len=63), "even"),
        (dict(vocab_size=64), "vocab_size > input_seq_len"),
        (dict(num_kv_pairs=17), "4·num_kv_pairs <= input_seq_len"),
        (dict(num_kv_pairs=0), "num_kv_pairs"),
        (dict(seed=-1), "seed"),
        (dict(seed=2**32), "seed"),
        (dict(power_a=0.0), "power_a"),
        (dict(num_examples=-1), "num_examples"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(vocab_size=8192, num_examples=2, input_seq_len=64, num_kv_pairs=4, seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        generate(**args)


def test_segment_seeds_match_zoology_prepare_data():
    train, test = segment_seeds(123, len(PAPER_TRAIN_SEGMENTS), len(PAPER_TEST_SEGMENTS))
    np.random.seed(123)  # zoology/data/utils.py:prepare_data
    assert train == [int(s) for s in np.random.randint(0, 2**32 // 2, size=len(PAPER_TRAIN_SEGMENTS))]
    assert test == [int(s) for s in np.random.randint(2**32 // 2, 2**32, size=len(PAPER_TEST_SEGMENTS))]
    assert all(0 <= s < 2**31 for s in train) and all(2**31 <= s < 2**32 for s in test)


def test_task_build_and_round_trip():
    task = MQARTask(
        vocab_size=256,
        train_segments=(Segment(64, 4, 30), Segment(128, 8, 10)),
        test_segments=[(64, 4, 5), (128, 16, 5)],  # plain tuples are accepted
        seed=7,
    )
    assert task.test_segments[1] == Segment(128, 16, 5)
    assert task.max_seq_len == 128 and task.max_test_seq_len == 128
    assert MQARTask.from_dict(task.to_dict()) == task
    data = task.build()
    assert [s.inputs.shape for s in data.train] == [(30, 64), (10, 128)]
    train_seeds, test_seeds = segment_seeds(7, 2, 2)
    assert [s.seed for s in data.train] == train_seeds and [s.seed for s in data.test] == test_seeds
    inputs, labels = generate(256, 5, 128, 16, test_seeds[1])
    assert torch.equal(data.test[1].inputs, inputs) and torch.equal(data.test[1].labels, labels)
    with pytest.raises(ValueError, match="4·num_kv_pairs"):
        MQARTask(vocab_size=256, train_segments=(Segment(64, 4, 5),), test_segments=(Segment(64, 32, 5),))
    with pytest.raises(ValueError, match="empty"):
        MQARTask(vocab_size=256, test_segments=())


def test_example_accuracy():
    labels = torch.tensor([[-100, 5, -100, 6], [7, -100, -100, -100]])
    preds = torch.tensor([[0, 5, 0, 0], [7, 1, 1, 1]])
    assert example_accuracy(preds, labels).tolist() == [0.5, 1.0]


def test_built_data_is_cached_on_disk_and_reloads_identically(tmp_path, monkeypatch):
    from mixerzoo.tasks import mqar

    monkeypatch.setenv("MIXERZOO_DATA_CACHE", str(tmp_path))
    task = mqar.MQARTask(
        vocab_size=128, train_segments=(mqar.Segment(64, 4, 30),), test_segments=(mqar.Segment(64, 8, 20),), seed=7
    )
    mqar._build_cached.cache_clear()
    first = task.build()
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1 and mqar.cache_path(task) == files[0]
    mqar._build_cached.cache_clear()
    again = task.build()  # from disk
    for a, b in zip(first.train + first.test, again.train + again.test):
        assert a.segment == b.segment and a.seed == b.seed
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
    files[0].write_bytes(b"damaged")
    mqar._build_cached.cache_clear()
    assert torch.equal(task.build().train[0].inputs, first.train[0].inputs)  # regenerated, not trusted
    monkeypatch.setenv("MIXERZOO_DATA_CACHE", "off")
    assert mqar.cache_path(task) is None
    mqar._build_cached.cache_clear()
