"""R-Super losses: learn tumour segmentation from report facts as well as masks.

Tensor contract (all losses; sigmoid multi-label outputs):

* logits ``(B, C, X, Y, Z)``; the report losses take the lesion channels only
  (:class:`RSuperLossConfig.lesion_channels` selects them from a full output);
* ``target`` ``(B, C, X, Y, Z)`` binary voxel labels, ``unknown`` ``(B, C, X, Y, Z)``
  bool (the tumour-bearing organ of a report case);
* ``chosen_segment`` ``(B, C, X, Y, Z)`` bool (or ``(B, X, Y, Z)`` with one
  lesion channel): the (sub)segment holding the reported tumours, empty for
  mask cases and healthy reports;
* ``diameters_mm`` ``(B, T, 3)`` and/or ``volumes_mm3`` ``(B, T)``, zero-padded;
* ``spacing_mm`` ``(3,)`` or ``(B, 3)``: every size is physical (mm, mm^3), so the
  losses are correct at any voxel spacing.

Main entry points: :func:`rsuper_loss` / :class:`RSuperLoss` (the combination
used for training), :func:`masked_segmentation_loss`, :func:`volume_loss`,
:func:`ball_loss`; building blocks :func:`dilate_ball`, :func:`ball_filter`,
:func:`place_tumours`, :func:`adaptive_tversky_loss`, :func:`gwrp_weights`.
"""

from rsuper.losses.ball import BallLossOptions, BallLossTerms, ball_loss
from rsuper.losses.combined import LossBreakdown, RSuperLoss, RSuperLossConfig, SupervisionBatch, rsuper_loss
from rsuper.losses.fftconv import ball_filter
from rsuper.losses.geometry import ball_kernel, spacing_per_sample
from rsuper.losses.gwrp import gwrp_weights
from rsuper.losses.morphology import dilate_ball, dilate_ball_voxels
from rsuper.losses.pseudo_mask import PseudoMaskOptions, PseudoMasks, place_tumours, tumour_sizes
from rsuper.losses.segmentation import (
    SegmentationLossOptions,
    SegmentationLossTerms,
    known_voxels,
    masked_segmentation_loss,
)
from rsuper.losses.tumours import ellipsoid_volumes_mm3, reported_volumes_mm3, sphere_volumes_mm3
from rsuper.losses.tversky import adaptive_tversky_loss
from rsuper.losses.volume import VolumeLossOptions, soft_volume_mm3, volume_loss, volume_mismatch

__all__ = [
    "BallLossOptions",
    "BallLossTerms",
    "LossBreakdown",
    "PseudoMaskOptions",
    "PseudoMasks",
    "RSuperLoss",
    "RSuperLossConfig",
    "SegmentationLossOptions",
    "SegmentationLossTerms",
    "SupervisionBatch",
    "VolumeLossOptions",
    "adaptive_tversky_loss",
    "ball_filter",
    "ball_kernel",
    "ball_loss",
    "dilate_ball",
    "dilate_ball_voxels",
    "ellipsoid_volumes_mm3",
    "gwrp_weights",
    "known_voxels",
    "masked_segmentation_loss",
    "place_tumours",
    "reported_volumes_mm3",
    "rsuper_loss",
    "soft_volume_mm3",
    "spacing_per_sample",
    "sphere_volumes_mm3",
    "tumour_sizes",
    "volume_loss",
    "volume_mismatch",
]
