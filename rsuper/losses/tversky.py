"""Adaptive Tversky loss (the soft-overlap term of every R-Super loss).

Per sample b and channel c, with soft prediction ``P`` and binary target ``T``
restricted to the valid voxels::

    TP = sum P T,   FP = sum P (1 - T),   FN = sum (1 - P) T
    alpha = clamp(FP / (FP + FN + eps), a_min, a_max),   beta = 1 - alpha
    L = 1 - TP / (TP + alpha FP + beta FN + eps)

alpha leans the penalty towards whichever error currently dominates (mostly
false positives -> alpha grows). As in the reference, the gradient also flows
through alpha. Differences from the reference, both deliberate:

* alpha is computed per sample, not pooled over the batch, so a sample's loss
  never depends on the other samples in the batch;
* a channel with an empty target returns 0 instead of the constant 1 (it has
  no gradient either way), so a perfect prediction scores 0. Averages over
  channels still divide by the channel count, so gradients keep the reference's
  scale.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Default clamp range of alpha.
ALPHA_RANGE = (0.2, 0.8)


def adaptive_tversky_loss(
    probs: Tensor,
    target: Tensor,
    valid: Tensor | None = None,
    alpha_range: tuple[float, float] = ALPHA_RANGE,
    eps: float = 1e-5,
) -> Tensor:
    """Adaptive Tversky loss per (sample, channel).

    Args:
        probs: ``(B, C, X, Y, Z)`` probabilities in [0, 1].
        target: ``(B, C, X, Y, Z)`` binary target (bool or 0/1).
        valid: optional ``(B, C, X, Y, Z)`` bool; voxels outside it are ignored.
        alpha_range: clamp range ``(a_min, a_max)`` of alpha, ``0 <= a_min <= a_max <= 1``.
        eps: smoothing in voxels.

    Returns:
        ``(B, C)`` losses in [0, 1]; 0 where the (valid) target is empty.
    """
    probs = probs.float()
    target = target.to(probs.dtype)
    if valid is not None:
        probs = probs * valid
        target = target * valid
    dims = tuple(range(2, probs.ndim))
    tp = (probs * target).sum(dims)
    fp = (probs * (1 - target)).sum(dims)
    fn = ((1 - probs) * target).sum(dims)
    alpha = (fp / (fp + fn + eps)).clamp(*alpha_range)
    loss = 1 - tp / (tp + alpha * fp + (1 - alpha) * fn + eps)
    has_target = target.sum(dims) > 0
    return torch.where(has_target, loss, torch.zeros_like(loss))
