"""A deterministic "segmenter" for the inference tests, loaded by file path from a checkpoint's model spec.

Channel c is ``gain * (x - thresholds[c])`` for the z-scored intensity x: each
voxel's output depends on that voxel alone (flip-equivariant, no context), so
its predictions are known exactly. Kept in its own file: the model registry
executes this file as a fresh module.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class ThresholdSegmenter(nn.Module):
    """Logits ``gain * (x - thresholds[c])`` per output channel."""

    def __init__(self, in_channels: int = 1, out_channels: int = 2, thresholds: Sequence[float] = (0.0, 1.0),
                 gain: float = 40.0) -> None:
        super().__init__()
        if len(thresholds) != out_channels or in_channels != 1:
            raise ValueError("one threshold per output channel, one input channel")
        self.register_buffer("thresholds", torch.tensor(list(thresholds), dtype=torch.float32).view(1, -1, 1, 1, 1))
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gain * (x - self.thresholds)
