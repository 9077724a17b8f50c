"""Blocks, stacks and the language model."""

from __future__ import annotations

from mixerzoo.models.block import MLP, Block, RMSNorm, Stack
from mixerzoo.models.lm import LanguageModel

__all__ = ["MLP", "Block", "LanguageModel", "RMSNorm", "Stack"]
