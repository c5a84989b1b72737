"""Ball loss: voxel supervision from pseudo-masks of the reported tumours.

Per sample b, over its lesion channels (logits ``z``, probabilities ``p``):

* ``S`` = the chosen segment dilated by ``segment_dilation_mm``;
* supervised region ``Pi = (not unknown and not labelled) or S``: all voxels
  except those with unknown or positive labels, but the dilated chosen segment
  always included (that is where the report tells us something);
* in the chosen channel, pseudo-masks from :func:`~rsuper.losses.pseudo_mask.place_tumours`
  (one ball-shaped blob per reported tumour, at distinct places): positives
  ``M+`` (core masks), ``big = dilate(extent masks, border_dilation_mm)``, and
  the border ``big - M+`` is ignored: ``Pi' = Pi - border``;
* every other lesion channel, and every channel of a sample without a report
  tumour (mask case, healthy report, random crop), has no positives: all of
  ``Pi`` is negative.

Terms (``|Omega|`` = voxels per channel, ``w`` = GWRP weights of :mod:`rsuper.losses.gwrp`)::

    bce_b     = sum over (c, Pi') of BCE(z, M+) * (w M+ + (1 - big))  /  (C |Omega|)
    tversky_b = adaptive_tversky(p * Pi', M+ * Pi') of the chosen channel (0 without tumours)

Both BCE sums are scaled by the full voxel count, as in the reference (so the
positive term is small next to the negatives; the Tversky term balances it).

Differences from the reference: non-chosen lesion channels of a report sample
also receive the negative BCE term (the reference leaves them to the
segmentation loss), samples without tumours score 0 instead of a constant 1 in
the Tversky term (no gradient either way), and everything is spacing-aware.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from rsuper.losses.geometry import SpacingLike, spacing_per_sample
from rsuper.losses.gwrp import gwrp_weights
from rsuper.losses.morphology import dilate_ball
from rsuper.losses.pseudo_mask import PseudoMaskOptions, place_tumours, tumour_sizes
from rsuper.losses.segments import chosen_channel, chosen_per_channel
from rsuper.losses.tumours import check_report_tensors
from rsuper.losses.tversky import ALPHA_RANGE, adaptive_tversky_loss

Reduction = Literal["mean", "none"]


@dataclass(frozen=True)
class BallLossOptions:
    """Options of :func:`ball_loss`.

    Attributes:
        pseudo_mask: placement and size of the pseudo-masks, including the
            ellipsoid / sphere volume choice (:class:`~rsuper.losses.pseudo_mask.PseudoMaskOptions`).
        segment_dilation_mm: growth of the chosen segment (mm) before the
            tumours are looked for in it (15 mm, as the volume loss).
        border_dilation_mm: growth (mm) of the extent masks that makes the
            ignored border (3.5 mm ~ the reference's 7-voxel ball at 1 mm).
        gwrp_concentration: last/first GWRP weight ratio (0.5 as the reference).
        tversky_alpha_range: clamp range of the adaptive Tversky alpha.
    """

    pseudo_mask: PseudoMaskOptions = field(default_factory=PseudoMaskOptions)
    segment_dilation_mm: float = 15.0
    border_dilation_mm: float = 3.5
    gwrp_concentration: float = 0.5
    tversky_alpha_range: tuple[float, float] = ALPHA_RANGE


@dataclass
class BallLossTerms:
    """Result of :func:`ball_loss`.

    Attributes:
        bce: GWRP-weighted BCE (scalar, or ``(B,)`` with ``reduction="none"``).
        tversky: adaptive Tversky against the pseudo-masks (same shape).
        positive: ``(B, C, X, Y, Z)`` bool positive pseudo-mask voxels.
        ignored: ``(B, C, X, Y, Z)`` bool voxels left out of the loss
            (unknown/labelled outside the dilated segment, and the border).
        centres: ``(B, T, 3)`` int64 tumour centres (voxel indices, ``-1`` = none).
    """

    bce: Tensor
    tversky: Tensor
    positive: Tensor
    ignored: Tensor
    centres: Tensor

    @property
    def total(self) -> Tensor:
        """``bce + tversky``."""
        return self.bce + self.tversky


def ball_loss(
    logits: Tensor,
    chosen_segment: Tensor | None,
    diameters_mm: Tensor | None,
    spacing_mm: SpacingLike = (1.0, 1.0, 1.0),
    target: Tensor | None = None,
    unknown: Tensor | None = None,
    volumes_mm3: Tensor | None = None,
    options: BallLossOptions = BallLossOptions(),
    reduction: Reduction = "mean",
) -> BallLossTerms:
    """Ball loss of the lesion channels (see the module docstring).

    Args:
        logits: ``(B, C, X, Y, Z)`` lesion-channel logits (any float dtype,
            computed in float32).
        chosen_segment: ``(B, C, X, Y, Z)`` bool (non-empty in at most one
            channel per sample), ``(B, X, Y, Z)`` if C = 1, or ``None``.
        diameters_mm: ``(B, T, 3)`` zero-padded diameters in mm (may be ``None``
            when ``volumes_mm3`` is given: spheres of those volumes are used).
        spacing_mm: ``(3,)`` or ``(B, 3)`` voxel spacing in mm.
        target: ``(B, C, X, Y, Z)`` voxel labels of mask cases, or ``None``.
            Labelled positives are never pushed down.
        unknown: ``(B, C, X, Y, Z)`` bool unknown-label voxels, or ``None``.
        volumes_mm3: ``(B, T)`` reported volumes in mm^3, or ``None`` (from the
            diameters). Ignored with ``volume_mode="sphere"`` when diameters are given.
        options: see :class:`BallLossOptions`.
        reduction: ``"mean"`` over the batch, or ``"none"`` for ``(B,)`` terms.

    Returns:
        :class:`BallLossTerms`.
    """
    batch = logits.shape[0]
    device = logits.device
    chosen = chosen_per_channel(chosen_segment, logits.shape, device)
    has_segment, channel = chosen_channel(chosen)
    spacing = spacing_per_sample(spacing_mm, batch, device)
    if bool(has_segment.any()):
        check_report_tensors(batch, diameters_mm, volumes_mm3)
        diameter, volume = tumour_sizes(diameters_mm, volumes_mm3, options.pseudo_mask.volume_mode)
        diameter, volume = diameter.to(device), volume.to(device)
    else:
        diameter = volume = torch.zeros((batch, 1), dtype=torch.float64, device=device)
    active = torch.nonzero(has_segment & (volume.sum(dim=1) > 0)).flatten()

    z = logits.float()
    probs = torch.sigmoid(z)
    segment = dilate_ball(chosen, options.segment_dilation_mm, spacing)
    supervised = ~unknown.bool() if unknown is not None else torch.ones_like(chosen)
    if target is not None:
        supervised &= ~target.bool()
    supervised |= segment

    positive = torch.zeros_like(chosen)
    big = torch.zeros_like(chosen)
    centres = torch.full((*volume.shape, 3), -1, dtype=torch.int64, device=device)
    if active.numel():
        c = channel[active]
        masks = place_tumours(
            probs[active, c].detach(),
            chosen[active, c],
            segment[active, c],
            diameter[active],
            volume[active],
            spacing[active],
            options.pseudo_mask,
        )
        positive[active, c] = masks.positive
        big[active, c] = dilate_ball(masks.extent[:, None], options.border_dilation_mm, spacing[active])[:, 0]
        centres[active] = masks.centres
    big |= positive
    kept = supervised & ~(big & ~positive)

    weights = gwrp_weights(probs.detach(), positive, options.gwrp_concentration)
    voxel_weight = (weights * positive + ~big) * kept
    bce = F.binary_cross_entropy_with_logits(z, positive.to(z.dtype), reduction="none")
    bce = (bce * voxel_weight).flatten(1).mean(dim=1)
    tversky = adaptive_tversky_loss(probs, positive, kept, options.tversky_alpha_range).sum(dim=1)

    if reduction == "mean":
        bce, tversky = bce.mean(), tversky.mean()
    return BallLossTerms(bce, tversky, positive, ~kept, centres)
