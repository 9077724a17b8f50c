"""Training: a real zoo model learns MQAR on the CPU; runs are deterministic; evaluation and early stop."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from mixerzoo.tasks.mqar import MQARTask, Segment
from mixerzoo.train import RunConfig, evaluate, train


class Oracle(nn.Module):
    """Answers from a lookup of the labels of known rows (right = True) or always wrongly (right = False)."""

    def __init__(self, segments, vocab_size: int, right: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))  # something for AdamW to hold
        self.vocab_size, self.right = vocab_size, right
        self.table = {tuple(x.tolist()): y for s in segments for x, y in zip(s.inputs, s.labels)}

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        labels = torch.stack([self.table[tuple(row.tolist())] for row in input_ids])  # [B, L]
        answer = labels.clamp(min=0) if self.right else (labels.clamp(min=0) + 1) % self.vocab_size
        return nn.functional.one_hot(answer, self.vocab_size).float() + self.weight  # [B, L, V]

    def state_size(self, seq_len: int) -> int:
        return 7


def small_task(**changes) -> MQARTask:
    base = dict(
        vocab_size=128,
        train_segments=(Segment(64, 4, 128),),
        test_segments=(Segment(64, 4, 40), Segment(64, 8, 24), Segment(32, 8, 8)),
    )
    return MQARTask(**(base | changes))


def test_evaluate_slices_and_early_stop():
    task = small_task()
    data = task.build()
    oracle = Oracle(data.train + data.test, task.vocab_size)
    metrics = evaluate(oracle, data.test, batch_size=16, device=torch.device("cpu"))
    assert metrics == {"accuracy": 1.0, "slices": {"num_kv_pairs": {"4": 1.0, "8": 1.0}}}
    wrong = Oracle(data.test, task.vocab_size, right=False)
    assert evaluate(wrong, data.test, 16, torch.device("cpu"))["accuracy"] == 0.0

    def build(spec, d_model, vocab_size, **kwargs):
        return Oracle(data.train + data.test, vocab_size)

    result = train(RunConfig("conv3-attn", 8, 1e-3, task=task, epochs=5), build=build, progress=False)
    assert result.metrics["epochs"] == 1 and result.metrics["early_stopped"]  # accuracy 1.0 > 0.99 after epoch 1
    assert result.state_size == 7 and result.num_params == 1
    no_stop = RunConfig("conv3-attn", 8, 1e-3, task=task, epochs=2, early_stop_accuracy=None)
    assert train(no_stop, build=build, progress=False).metrics["epochs"] == 2


def test_deterministic_for_a_seed():
    config = RunConfig("conv3-taylor8", 16, 3e-3, task=small_task(), epochs=2, train_batch_size=32)
    a = train(config, progress=False)
    b = train(config, progress=False)
    c = train(config.replace(seed=1), progress=False)
    assert a.metrics == b.metrics
    assert a.metrics["train_loss"] != c.metrics["train_loss"]
    assert a.num_params == b.num_params and a.state_size == b.state_size > 0
    import mixerzoo

    model = mixerzoo.build("conv3-taylor8", 16, 128, n_heads=1, mlp="none", max_len=64)
    assert a.state_size == model.state_size(64) and a.num_params == sum(p.numel() for p in model.parameters())


@pytest.mark.gpu
@pytest.mark.parametrize("spec", ["conv3-attn", "conv3-taylor8", "conv3-sw16"])
def test_deterministic_for_a_seed_on_gpu(spec, recwarn):
    """bf16 autocast and the Triton kernels on CUDA: two runs of one config give the same metrics, and no
    op warns that it has no deterministic implementation (SDPA's cuDNN backward would)."""
    config = RunConfig(spec, 32, 3e-3, task=small_task(), epochs=2, train_batch_size=32)
    a = train(config, device="cuda", progress=False)
    b = train(config, device="cuda", progress=False)
    assert a.metrics == b.metrics and a.device.startswith("cuda")
    assert not [w for w in recwarn if "deterministic" in str(w.message)]


def test_based_learns_mqar_on_cpu():
    """The paper's MQAR model (conv3-taylor16, no MLP, one head) learns L=64 / 4 pairs to > 0.9 in well under 60 s."""
    task = MQARTask(
        vocab_size=128,
        train_segments=(Segment(64, 4, 2000),),
        test_segments=(Segment(64, 4, 500),),
    )
    config = RunConfig("conv3-taylor16", 48, 1e-2, task=task, epochs=12, train_batch_size=64, test_batch_size=250)
    start = time.perf_counter()
    result = train(config, progress=False)
    print(f"conv3-taylor16 d=48: accuracy {result.metrics['accuracy']:.3f} in {time.perf_counter() - start:.1f} s")
    assert result.metrics["accuracy"] > 0.9
    assert result.metrics["slices"]["num_kv_pairs"]["4"] > 0.9
