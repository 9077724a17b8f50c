"""A tiny sweep script for the sweep tests: `SWEEP_TEST_RUNS` runs of about a second each."""

from __future__ import annotations

import os

from mixerzoo.sweep import grid as product
from mixerzoo.sweep import script_main
from mixerzoo.tasks.mqar import MQARTask, Segment

TASK = MQARTask(vocab_size=128, train_segments=(Segment(64, 4, 256),), test_segments=(Segment(64, 4, 64),))


def grid(scale: str) -> list:
    runs = int(os.environ.get("SWEEP_TEST_RUNS", "6"))
    epochs = int(os.environ.get("SWEEP_TEST_EPOCHS", "4"))
    lrs = [1e-3 * (i + 1) for i in range(runs)]
    return product(["conv3-attn"], [16], lrs, task=TASK, epochs=epochs, train_batch_size=64, test_batch_size=64)


if __name__ == "__main__":
    raise SystemExit(script_main(__file__))
