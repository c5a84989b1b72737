"""The chosen (sub)segment of a report case, per lesion channel.

``chosen_segment`` marks the organ or sub-segment in which the report places
the sample's tumours (e.g. the pancreas head), in the lesion channel of that
organ. It is empty for mask cases, healthy report cases and random crops.
"""

from __future__ import annotations

import torch
from torch import Tensor


def chosen_per_channel(chosen_segment: Tensor | None, shape: torch.Size, device: torch.device) -> Tensor:
    """Chosen segment as a ``(B, C, X, Y, Z)`` bool tensor.

    Args:
        chosen_segment: ``(B, C, X, Y, Z)`` (one mask per lesion channel), or
            ``(B, X, Y, Z)`` when there is a single lesion channel (C = 1), or
            ``None`` (no report supervision in this batch).
        shape: the logits' ``(B, C, X, Y, Z)`` shape.
        device: device of the result.

    Raises:
        ValueError: shape mismatch, or a 4-D mask with C > 1 (the channel would
            be ambiguous).
    """
    if chosen_segment is None:
        return torch.zeros(shape, dtype=torch.bool, device=device)
    chosen = chosen_segment.to(device=device).bool()
    if chosen.ndim == 4:
        if shape[1] != 1:
            raise ValueError("a (B, X, Y, Z) chosen_segment needs single-channel logits; give (B, C, X, Y, Z)")
        chosen = chosen[:, None]
    if chosen.shape != shape:
        raise ValueError(f"chosen_segment shape {tuple(chosen.shape)} does not match logits {tuple(shape)}")
    return chosen


def chosen_channel(chosen: Tensor) -> tuple[Tensor, Tensor]:
    """Which lesion channel carries each sample's report.

    Args:
        chosen: ``(B, C, X, Y, Z)`` bool from :func:`chosen_per_channel`.

    Returns:
        ``(has_segment, channel)``: ``(B,)`` bool and ``(B,)`` int64 (0 where
        ``has_segment`` is False).

    Raises:
        ValueError: a sample with a chosen segment in more than one channel
            (its tumour list could not be assigned to one organ).
    """
    nonempty = chosen.flatten(2).any(dim=2)
    if bool((nonempty.sum(dim=1) > 1).any()):
        raise ValueError("a sample has a chosen segment in more than one lesion channel")
    return nonempty.any(dim=1), nonempty.to(torch.int64).argmax(dim=1)
