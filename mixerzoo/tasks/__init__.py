"""Synthetic tasks for mixer ablations.

`mixerzoo.tasks.mqar` — multi-query associative recall, bit-identical to the Zoology generator.
"""

from __future__ import annotations

from mixerzoo.tasks.mqar import (
    PAPER_TEST_SEGMENTS,
    PAPER_TRAIN_SEGMENTS,
    MQARData,
    MQARTask,
    Segment,
    SegmentData,
    generate,
    segment_seeds,
)

__all__ = [
    "PAPER_TEST_SEGMENTS",
    "PAPER_TRAIN_SEGMENTS",
    "MQARData",
    "MQARTask",
    "Segment",
    "SegmentData",
    "generate",
    "segment_seeds",
]
