"""Masked segmentation loss: BCE + adaptive Tversky on the voxels whose label is known.

Used on every sample and every head. In a report case the tumour-bearing organ
or sub-segment is *unknown* (the report says a tumour is there but not which
voxels), so it is excluded, with a small margin, from voxel supervision; every
other voxel (healthy organs, lesion channels of tumour-free organs, background)
gets ordinary supervision. Mask cases have no unknown voxels.

Formula, per sample b (``known = not dilate(unknown, margin)``)::

    bce_b     = mean over (c, voxels) of  BCEWithLogits(z, y) * known
    tversky_b = mean over c of  adaptive_tversky(sigmoid(z) * known, y * known)

The BCE mean divides by all voxels, masked ones included (as the reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from rsuper.losses.geometry import SpacingLike
from rsuper.losses.morphology import dilate_ball
from rsuper.losses.tversky import ALPHA_RANGE, adaptive_tversky_loss

Reduction = Literal["mean", "none"]


@dataclass(frozen=True)
class SegmentationLossOptions:
    """Options of :func:`masked_segmentation_loss`.

    Attributes:
        unknown_margin_mm: the unknown region is grown by this radius (mm)
            before masking, because organ masks and tumour borders are
            imprecise. 2.5 mm = the reference's 5-voxel-diameter ball at 1 mm.
        tversky_alpha_range: clamp range of the adaptive Tversky alpha.
    """

    unknown_margin_mm: float = 2.5
    tversky_alpha_range: tuple[float, float] = ALPHA_RANGE


@dataclass
class SegmentationLossTerms:
    """Terms of the masked segmentation loss (scalars, or ``(B,)`` with ``reduction="none"``)."""

    bce: Tensor
    tversky: Tensor

    @property
    def total(self) -> Tensor:
        """``bce + tversky``."""
        return self.bce + self.tversky


def known_voxels(unknown: Tensor, spacing_mm: SpacingLike, margin_mm: float) -> Tensor:
    """Voxels with a known label: ``not dilate(unknown, margin_mm)``.

    Args:
        unknown: ``(B, C, X, Y, Z)`` bool, True where the label is unknown.
        spacing_mm: ``(3,)`` or ``(B, 3)`` spacing in mm.
        margin_mm: dilation radius of the unknown region in mm.

    Returns:
        ``(B, C, X, Y, Z)`` bool.
    """
    return ~dilate_ball(unknown, margin_mm, spacing_mm)


def masked_segmentation_loss(
    logits: Tensor,
    target: Tensor,
    known: Tensor | None = None,
    options: SegmentationLossOptions = SegmentationLossOptions(),
    reduction: Reduction = "mean",
) -> SegmentationLossTerms:
    """BCE + adaptive Tversky restricted to known voxels.

    Args:
        logits: ``(B, C, X, Y, Z)`` sigmoid logits (multi-label; any float dtype,
            computed in float32).
        target: ``(B, C, X, Y, Z)`` binary voxel labels.
        known: ``(B, C, X, Y, Z)`` bool from :func:`known_voxels`; ``None`` = all known.
        options: see :class:`SegmentationLossOptions` (only the Tversky range is
            used here; the margin is applied by :func:`known_voxels`).
        reduction: ``"mean"`` over the batch, or ``"none"`` for ``(B,)`` terms.

    Returns:
        :class:`SegmentationLossTerms`; both terms are dimensionless, >= 0.
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in shape")
    z = logits.float()
    y = target.to(z.dtype)
    weight = torch.ones_like(z) if known is None else known.to(device=z.device, dtype=z.dtype)
    bce = F.binary_cross_entropy_with_logits(z, y, reduction="none") * weight
    bce = bce.flatten(1).mean(dim=1)
    tversky = adaptive_tversky_loss(torch.sigmoid(z), y, weight.bool(), options.tversky_alpha_range).mean(dim=1)
    if reduction == "mean":
        return SegmentationLossTerms(bce.mean(), tversky.mean())
    return SegmentationLossTerms(bce, tversky)
