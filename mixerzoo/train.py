"""Train one mixer model on MQAR, the BASED paper's recipe (zoology/train.py).

One `RunConfig` = one run: a spec string, `d_model`, a learning rate, a seed and an `MQARTask`.
The recipe: AdamW (weight decay 0.1), cosine decay of the learning rate to 0 over the run with no
warm-up, evaluation on the test segments after every epoch, early stop once test accuracy passes 0.99.
Models are built as in the paper's MQAR configs: `mlp="none"`, one head, no position embeddings, e.g.
`"conv3-taylor16"` (a gated short conv then the mixer). bf16 autocast on the GPU, fp32 on the CPU.

A run is deterministic for its config: the seed fixes the model init and the batch order (data come
from the task's own seeds), and deterministic algorithms are switched on for the run's duration.

Example (about a minute on a CPU; ``tests/test_train.py`` runs one like it)::

    from mixerzoo.tasks.mqar import MQARTask, Segment
    task = MQARTask(vocab_size=128, train_segments=(Segment(64, 4, 2000),), test_segments=(Segment(64, 4, 200),))
    result = train(RunConfig("conv3-attn", d_model=64, lr=3e-3, task=task, epochs=8))
    result.metrics["accuracy"]   # close to 1
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mixerzoo.tasks.mqar import IGNORE_INDEX, MQARTask, SegmentData, example_accuracy

CONFIG_SCHEMA = 1  # bump when the meaning of a RunConfig field changes (it enters the run hash)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one MQAR training run; its hash (`run_id`) keys the results database.

    Args:
        spec: the model's spec string, e.g. `"conv3-taylor16"` (canonicalised with `mixerzoo.canon`).
        d_model: the model width.
        lr: the peak learning rate (cosine-decayed to 0 over the run).
        seed: the seed of the model init and batch order (the data's seeds come from `task.seed`).
        task: the MQAR data; the paper's segments by default.
        epochs: passes over the training segments (the paper: 32).
        train_batch_size: the paper: 256.
        test_batch_size: the paper: 32.
        weight_decay: AdamW's, applied to every parameter as in Zoology.
        early_stop_accuracy: stop once test accuracy exceeds this (the paper: 0.99); None never stops early.
        n_heads: the default heads of every layer (the paper's MQAR models use 1); spec options override it.
        mlp: the block's MLP, `"none"` for MQAR models as in the paper.
        max_len: the model's `max_len`; None resolves to the task's longest sequence.
        family: the group this run is plotted in (e.g. `"Based"`); display only, not part of the run's identity.

    Example:
        >>> cfg = RunConfig("conv3-taylor16", d_model=64, lr=1e-3)
        >>> cfg.replace(lr=3e-3).lr
        0.003
    """

    spec: str
    d_model: int
    lr: float
    seed: int = 0
    task: MQARTask = field(default_factory=MQARTask)
    epochs: int = 32
    train_batch_size: int = 256
    test_batch_size: int = 32
    weight_decay: float = 0.1
    early_stop_accuracy: float | None = 0.99
    n_heads: int = 1
    mlp: str = "none"
    max_len: int | None = None
    family: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.task, Mapping):
            object.__setattr__(self, "task", MQARTask.from_dict(self.task))
        for name in ("d_model", "epochs", "train_batch_size", "test_batch_size", "n_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"RunConfig.{name} must be a positive int, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"RunConfig.lr must be > 0, got {self.lr!r}")
        if self.max_len is not None and self.max_len < self.task.max_seq_len:
            raise ValueError(
                f"RunConfig.max_len={self.max_len} is shorter than the task's longest sequence "
                f"({self.task.max_seq_len}); leave max_len=None to use {self.task.max_seq_len}"
            )

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    def resolved(self) -> dict[str, Any]:
        """The full config with every default filled in and the spec canonical: what the hash covers."""
        import mixerzoo  # the package import registers every mixer, so canon knows all layer names

        out = dataclasses.asdict(self)
        out.pop("family")
        out["spec"] = mixerzoo.canon(self.spec)
        out["max_len"] = self.max_len or self.task.max_seq_len
        out["lr"] = float(self.lr)
        out["schema"] = CONFIG_SCHEMA
        out["kind"] = "mqar"
        return out

    @property
    def run_id(self) -> str:
        """A 16-hex-digit hash of `resolved()`; equal configs (after canonicalisation) share it."""
        return config_hash(self.resolved())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (including `family`); `RunConfig.from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Rebuild from `to_dict()` or `resolved()` output (extra resolved-only keys are dropped)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names - {"schema", "kind"}
        if unknown:
            raise ValueError(f"unknown RunConfig keys {sorted(unknown)}; valid keys: {sorted(names)}")
        return cls(**{k: v for k, v in data.items() if k in names})


def config_hash(resolved: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a resolved config, first 16 hex digits."""
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class RunResult:
    """What a finished run reports.

    Attributes:
        metrics: `{"accuracy": overall test accuracy (mean over examples of the per-example accuracy on
            scored positions, as Zoology), "slices": {"num_kv_pairs": {"4": acc, ...}}, "best_accuracy",
            "train_loss", "epochs", "steps", "early_stopped"}`.
        num_params: trainable parameters.
        state_size: recurrent-state elements per sequence after the task's longest test sequence.
        wall_time: seconds of training and evaluation.
        device: where it ran, e.g. `"cuda:0 NVIDIA H200"` or `"cpu (2 threads)"`.
        versions: python, torch, numpy and mixerzoo versions.
    """

    metrics: dict[str, Any]
    num_params: int
    state_size: int
    wall_time: float
    device: str
    versions: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


Builder = Callable[..., torch.nn.Module]


def train(
    config: RunConfig,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
    position: int = 0,
    build: Builder | None = None,
) -> RunResult:
    """Train `config` and evaluate it on its test segments.

    Args:
        config: the run.
        device: `"cuda"`, `"cpu"`, ...; None picks CUDA when available.
        progress: show a tqdm bar for the run (steps, with loss and the last test accuracy).
        position: the bar's tqdm position (one per worker in a sweep).
        build: a builder with `mixerzoo.build`'s signature, for models outside the zoo; the zoo by default.

    Returns:
        The run's `RunResult`.
    """
    from tqdm.auto import tqdm

    if build is None:
        from mixerzoo.zoo import build
    device = torch.device(device) if device is not None else default_device()
    start = time.perf_counter()
    data = config.task.build()
    max_len = config.max_len or config.task.max_seq_len

    with _deterministic(device), _fork_rng(device):
        torch.manual_seed(config.seed)
        model = build(
            config.spec,
            config.d_model,
            config.task.vocab_size,
            n_heads=config.n_heads,
            mlp=config.mlp,
            max_len=max_len,
        ).to(device)
        num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        state_size = int(model.state_size(config.task.max_test_seq_len))

        batches = _batches(data.train, config.train_batch_size)  # [(segment, start)]
        total_steps = config.epochs * len(batches)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        # Cosine to 0 over all steps, no warm-up (Zoology steps it per epoch; per step is smoother for short runs).
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
        )
        order_generator = torch.Generator().manual_seed(config.seed)
        autocast = _autocast(device)
        bar = tqdm(
            total=total_steps,
            desc=f"{config.spec} d={config.d_model} lr={config.lr:.2g}",
            position=position,
            leave=position == 0,
            disable=not progress,
            dynamic_ncols=True,
        )
        metrics: dict[str, Any] = {}
        best, epoch_loss, step = 0.0, float("nan"), 0
        for epoch in range(config.epochs):
            model.train()
            losses = []
            # Batches never mix segments (one L per batch, as Zoology); their order is shuffled per epoch.
            for index in torch.randperm(len(batches), generator=order_generator).tolist():
                segment, begin = batches[index]
                inputs = segment.inputs[begin : begin + config.train_batch_size].to(device)  # [B, L]
                labels = segment.labels[begin : begin + config.train_batch_size].to(device)  # [B, L]
                scored = labels != IGNORE_INDEX  # [B, L]
                with autocast:
                    logits = scored_logits(model, inputs, scored)  # [N, V]
                loss = F.cross_entropy(logits.float(), labels[scored])  # mean over scored positions
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
                losses.append(loss.detach())
                bar.update()
            epoch_loss = torch.stack(losses).mean().item()
            metrics = evaluate(model, data.test, config.test_batch_size, device)
            best = max(best, metrics["accuracy"])
            bar.set_postfix(epoch=epoch + 1, loss=f"{epoch_loss:.3f}", acc=f"{metrics['accuracy']:.3f}")
            if config.early_stop_accuracy is not None and metrics["accuracy"] > config.early_stop_accuracy:
                break
        bar.close()

    metrics |= {
        "best_accuracy": best,
        "train_loss": epoch_loss,
        "epochs": epoch + 1,
        "steps": step,
        "early_stopped": epoch + 1 < config.epochs,
    }
    return RunResult(
        metrics=metrics,
        num_params=num_params,
        state_size=state_size,
        wall_time=time.perf_counter() - start,
        device=describe_device(device),
        versions=versions(),
    )


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, segments: Sequence[SegmentData], batch_size: int, device: torch.device
) -> dict[str, Any]:
    """Test accuracy, overall and per `num_kv_pairs` slice.

    Per-example accuracy is the fraction of its scored positions predicted right; the overall accuracy
    is its mean over all test examples, and a slice's the mean over the examples of that slice
    (zoology/train.py:compute_metrics). Within a slice every example has the same number of scored
    positions, so a slice's accuracy is also its accuracy over scored positions.
    """
    was_training = model.training
    model.eval()
    per_example: list[torch.Tensor] = []
    slice_of: list[int] = []
    autocast = _autocast(device)
    for segment in segments:
        for begin in range(0, segment.inputs.shape[0], batch_size):
            inputs = segment.inputs[begin : begin + batch_size].to(device)  # [B, L]
            labels = segment.labels[begin : begin + batch_size].to(device)  # [B, L]
            scored = labels != IGNORE_INDEX  # [B, L]
            with autocast:
                logits = scored_logits(model, inputs, scored)  # [N, V]
            predictions = torch.full_like(labels, IGNORE_INDEX)  # never equal to a scored label
            predictions[scored] = logits.argmax(-1)
            per_example.append(example_accuracy(predictions, labels).cpu())
            slice_of += [segment.segment.num_kv_pairs] * inputs.shape[0]
    model.train(was_training)
    accuracy = torch.cat(per_example)  # [N_test]
    slices = torch.tensor(slice_of)  # [N_test]
    return {
        "accuracy": accuracy.mean().item(),
        "slices": {
            "num_kv_pairs": {str(k): accuracy[slices == k].mean().item() for k in sorted(set(slice_of))},
        },
    }


def scored_logits(model: torch.nn.Module, inputs: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    """Logits ``[N, V]`` at the scored positions (``scored`` bool ``[B, L]``), in the order of ``labels[scored]``.

    A zoo `LanguageModel` runs its head only there (MQAR scores ``num_kv_pairs`` of L positions, and the
    head is most of a 2-layer model's work at vocabulary 8192); any other model's full logits are indexed.
    """
    from mixerzoo.models.lm import LanguageModel

    if isinstance(model, LanguageModel):
        return model(inputs, scored)
    return model(inputs)[scored]


def _batches(segments: Sequence[SegmentData], batch_size: int) -> list[tuple[SegmentData, int]]:
    return [(s, begin) for s in segments for begin in range(0, s.inputs.shape[0], batch_size)]


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device(device: torch.device) -> str:
    """A human-readable device name for the results database."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} {torch.cuda.get_device_name(index)}"
    return f"{device.type} ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    # bf16 autocast on the GPU as in the paper; fp32 on the CPU (CPU bf16 is slow and only adds noise).
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """On CUDA, deterministic algorithms for the run (strict: an op without one raises), then restore;
    attention runs on SDPA's FlashAttention backend, whose backward is then deterministic.

    CPU kernels are deterministic for a fixed thread count already, and torch's deterministic mode makes
    some of them (index_put's backward) 4x slower there, so on the CPU it only flushes subnormals.
    """
    if device.type != "cuda":
        # Linear attention drives activations into subnormal floats as training goes on, and x86 CPUs take
        # ~100x longer on subnormals (a 6x slower run measured): flush them to zero for the run.
        flushed = torch.set_flush_denormal(True)
        try:
            yield
        finally:
            if flushed:
                torch.set_flush_denormal(False)
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by cuBLAS for determinism
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = torch.backends.cudnn.benchmark
    # Strict (warn_only=False): in warn-only mode SDPA's FlashAttention and cuDNN backwards only warn and stay
    # non-deterministic; strict mode runs their deterministic algorithms (an op with none raises, never drifts).
    torch.use_deterministic_algorithms(True, warn_only=False)
    torch.backends.cudnn.benchmark = False
    try:
        # FlashAttention's deterministic backward (the math backend serves what flash cannot take); the
        # memory-efficient backward has no deterministic mode.
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]):
            yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.backends.cudnn.benchmark = cudnn


@contextlib.contextmanager
def _fork_rng(device: torch.device) -> Iterator[None]:
    """Seed torch for the run without leaking the seed into the caller's generator state."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


_VERSIONS: dict[str, str] | None = None


def versions() -> dict[str, str]:
    """Versions of python, torch, numpy and mixerzoo (with the git commit when run from a checkout)."""
    global _VERSIONS
    if _VERSIONS is None:
        import importlib.metadata

        import numpy

        try:
            mixerzoo_version = importlib.metadata.version("mixerzoo")
        except importlib.metadata.PackageNotFoundError:
            mixerzoo_version = "unknown"
        root = Path(__file__).resolve().parent.parent
        try:
            commit = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            mixerzoo_version += f"+g{commit}" + (".dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            pass
        _VERSIONS = {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "mixerzoo": mixerzoo_version,
            "cuda": torch.version.cuda or "none",
        }
    return dict(_VERSIONS)
