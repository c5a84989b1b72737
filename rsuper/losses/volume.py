"""Volume loss: the soft tumour volume in the reported (sub)segment must match the report.

For sample b and lesion channel c with chosen segment ``G`` (see
:mod:`rsuper.losses.segments`)::

    S  = dilate(G, segment_dilation_mm)                     # tolerate organ-mask errors
    P  = sum over voxels of sigmoid(z) * S * voxel_volume    # mm^3
    V  = sum over t of volumes_mm3[b, t]   if G is non-empty, else 0   # mm^3
    f(x) = |x - V| / (x + V + E)                             # E = smoothing_mm3
    v  = max((1 - tau) V, min(V, tolerance_min_volume_mm3))  # tolerance point
    L  = clamp(f(P) - f(v), 0, 1)

``f`` is 0 at ``P = V``, tends to 1 for ``P >> V`` and is ``V / (V + E)`` for an
empty prediction; ``E`` keeps it finite and smooth when V = 0. Subtracting
``f(v)`` makes a dead zone ``(1 - tau) V <= P <= V'`` (``f(V') = f(v)``, roughly
``V / (1 - tau)`` for large V), in which the loss and its gradient are 0: the
reported diameters are rounded, and the volume derived from them is only an
estimate. Below ``tolerance_min_volume_mm3`` the dead zone is switched off.

A channel whose chosen segment is empty (mask cases, random crops) gives 0. A
report case with a chosen segment and V = 0 (the organ is reported tumour-free)
penalises any predicted volume in the segment: ``L = P / (P + E)``.

The loss has no negative term of its own; negatives come from the masked
segmentation loss (:mod:`rsuper.losses.segmentation`), as in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from rsuper.losses.geometry import SpacingLike, spacing_per_sample, voxel_volume_mm3
from rsuper.losses.morphology import dilate_ball
from rsuper.losses.segments import chosen_per_channel
from rsuper.losses.tumours import check_report_tensors, reported_volumes_mm3

Reduction = Literal["mean", "none"]


@dataclass(frozen=True)
class VolumeLossOptions:
    """Options of :func:`volume_loss`.

    Attributes:
        segment_dilation_mm: radius (mm) by which the chosen segment is grown
            before the predicted volume is measured, so that a tumour bulging
            out of an imperfect organ mask still counts. 15 mm ~ the
            reference's dilation by a 31-voxel ball (as five 7-voxel passes)
            at 1 mm.
        tolerance: relative dead zone tau. Default 0.2, not the 0.1 of the
            reference's docstring: 0.2 is what its training script actually ran
            with (the command-line default, never overridden in the README), and
            the report itself is not more precise than that, since a diameter
            rounded to +-0.5 mm already moves the volume of a 15 mm tumour by
            +-10 % (volume ~ d^3).
        tolerance_min_volume_mm3: below this reported volume the dead zone
            is disabled (100 mm^3, a ~6 mm sphere).
        smoothing_mm3: E in ``|P - V| / (P + V + E)``, in mm^3 (500 mm^3, as
            the reference's 500 voxels at 1 mm).
    """

    segment_dilation_mm: float = 15.0
    tolerance: float = 0.2
    tolerance_min_volume_mm3: float = 100.0
    smoothing_mm3: float = 500.0


def soft_volume_mm3(probs: Tensor, region: Tensor, spacing_mm: Tensor) -> Tensor:
    """Soft volume ``sum(p * region) * voxel_volume`` in mm^3.

    Args:
        probs: ``(B, C, X, Y, Z)`` probabilities.
        region: ``(B, C, X, Y, Z)`` bool.
        spacing_mm: ``(B, 3)`` spacing in mm.

    Returns:
        ``(B, C)`` float32 volumes in mm^3.
    """
    voxels = (probs * region).flatten(2).sum(dim=2)
    return voxels * voxel_volume_mm3(spacing_mm).to(voxels.dtype)[:, None]


def volume_mismatch(predicted_mm3: Tensor, reported_mm3: Tensor, options: VolumeLossOptions) -> Tensor:
    """``clamp(f(P) - f(v), 0, 1)`` elementwise (see the module docstring).

    Args:
        predicted_mm3: P, any shape, mm^3.
        reported_mm3: V, same shape, mm^3.
        options: tolerance and smoothing.

    Returns:
        Loss values in [0, 1], same shape.
    """
    e = options.smoothing_mm3

    def f(x: Tensor) -> Tensor:
        return (x - reported_mm3).abs() / (x + reported_mm3 + e)

    tolerance_point = torch.maximum(
        (1 - options.tolerance) * reported_mm3, reported_mm3.clamp(max=options.tolerance_min_volume_mm3)
    )
    return (f(predicted_mm3) - f(tolerance_point)).clamp(0.0, 1.0)


def volume_loss(
    logits: Tensor,
    chosen_segment: Tensor | None,
    spacing_mm: SpacingLike = (1.0, 1.0, 1.0),
    diameters_mm: Tensor | None = None,
    volumes_mm3: Tensor | None = None,
    options: VolumeLossOptions = VolumeLossOptions(),
    reduction: Reduction = "mean",
) -> Tensor:
    """Volume loss of the lesion channels (see the module docstring).

    Args:
        logits: ``(B, C, X, Y, Z)`` lesion-channel logits (any float dtype,
            computed in float32).
        chosen_segment: ``(B, C, X, Y, Z)`` bool, or ``(B, X, Y, Z)`` if C = 1,
            or ``None`` (then the loss is 0).
        spacing_mm: ``(3,)`` or ``(B, 3)`` voxel spacing in mm.
        diameters_mm: ``(B, T, 3)`` zero-padded diameters in mm; used for the
            volumes when ``volumes_mm3`` is not given.
        volumes_mm3: ``(B, T)`` zero-padded reported volumes in mm^3.
        options: see :class:`VolumeLossOptions`.
        reduction: ``"mean"`` over (B, C) as the reference, or ``"none"`` for
            ``(B,)`` per-sample means over C.

    Returns:
        Dimensionless loss in [0, 1] (scalar or ``(B,)``).
    """
    batch = logits.shape[0]
    chosen = chosen_per_channel(chosen_segment, logits.shape, logits.device)
    spacing = spacing_per_sample(spacing_mm, batch, logits.device)
    has_segment = chosen.flatten(2).any(dim=2)
    if bool(has_segment.any()):
        check_report_tensors(batch, diameters_mm, volumes_mm3)
        total = reported_volumes_mm3(diameters_mm, volumes_mm3).sum(dim=1).to(logits.device)
    else:
        total = torch.zeros(batch, dtype=torch.float64, device=logits.device)

    region = dilate_ball(chosen, options.segment_dilation_mm, spacing)
    predicted = soft_volume_mm3(torch.sigmoid(logits.float()), region, spacing)
    reported = torch.where(has_segment, total[:, None], torch.zeros_like(total[:, None])).to(predicted.dtype)
    loss = volume_mismatch(predicted, reported, options)
    return loss.mean() if reduction == "mean" else loss.mean(dim=1)
