"""The R-Super training loss: masked segmentation loss + report losses over the output heads.

With heads ``j`` (0 = final output, 1.. = deep-supervision outputs, all at
full resolution), head weights ``a_j``, ``lambda = report_weight``::

    L = sum_j a_j * ( w_seg * (bce_j + tversky_j)                       # every head
                      + lambda * [j == ball_head]   * (w_bb * ball_bce_j + w_bt * ball_tversky_j)
                      + lambda * [j == volume_head] * w_vol * volume_j )

The defaults reproduce the paper's setting ("ball_dice_last" in the reference):
the ball loss on the final head, the volume loss on the deep-supervision head,
``a = (0.5, 0.5)``, ``lambda = 0.1``, all other weights 1, i.e. 0.5 x
segmentation per head and 0.05 for each report term. The volume loss sits on
the coarse deep-supervision head because it only constrains a total (a soft
count, easy to satisfy at low resolution), while the ball loss asks for a
voxel-accurate shape, which is the final head's job. A single-head model sets
``head_weights=(1.0,)`` and ``volume_head=0`` (both report losses on one head).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from rsuper.losses.ball import BallLossOptions, ball_loss
from rsuper.losses.geometry import SpacingLike
from rsuper.losses.segmentation import SegmentationLossOptions, known_voxels, masked_segmentation_loss
from rsuper.losses.volume import VolumeLossOptions, volume_loss


@dataclass(frozen=True)
class RSuperLossConfig:
    """Weights and options of :func:`rsuper_loss`.

    Attributes:
        segmentation, volume, ball: options of the three losses.
        head_weights: ``a_j``, one per head; (0.5, 0.5) as the reference's
            final + one auxiliary head.
        segmentation_weight: ``w_seg`` (1, as the reference).
        report_weight: ``lambda``, the weight of all report terms; 0.1 as in
            every command of the reference's README and demo (its command-line
            default of 1 was not used); 0 trains on masks only.
        ball_bce_weight, ball_tversky_weight, volume_weight: per-term weights (1).
        ball_head: index of the head that gets the ball loss (``None`` = off).
        volume_head: index of the head that gets the volume loss (``None`` = off).
        lesion_channels: indices of the lesion channels among the heads'
            channels (the report losses only see these); ``None`` = all channels
            are lesion channels.
    """

    segmentation: SegmentationLossOptions = field(default_factory=SegmentationLossOptions)
    volume: VolumeLossOptions = field(default_factory=VolumeLossOptions)
    ball: BallLossOptions = field(default_factory=BallLossOptions)
    head_weights: tuple[float, ...] = (0.5, 0.5)
    segmentation_weight: float = 1.0
    report_weight: float = 0.1
    ball_bce_weight: float = 1.0
    ball_tversky_weight: float = 1.0
    volume_weight: float = 1.0
    ball_head: int | None = 0
    volume_head: int | None = 1
    lesion_channels: tuple[int, ...] | None = None


@dataclass
class SupervisionBatch:
    """Everything the losses need besides the network output.

    Attributes:
        target: ``(B, C, X, Y, Z)`` binary voxel labels (all channels; zeros
            where unknown).
        unknown: ``(B, C, X, Y, Z)`` bool unknown-label voxels, or ``None``.
        chosen_segment: ``(B, L, X, Y, Z)`` bool chosen segment per *lesion*
            channel (``(B, X, Y, Z)`` if L = 1), or ``None`` for a mask-only batch.
        diameters_mm: ``(B, T, 3)`` zero-padded reported diameters in mm.
        volumes_mm3: ``(B, T)`` zero-padded reported volumes in mm^3, or ``None``.
        spacing_mm: ``(3,)`` or ``(B, 3)`` voxel spacing in mm.
    """

    target: Tensor
    unknown: Tensor | None = None
    chosen_segment: Tensor | None = None
    diameters_mm: Tensor | None = None
    volumes_mm3: Tensor | None = None
    spacing_mm: SpacingLike = (1.0, 1.0, 1.0)


@dataclass
class LossBreakdown:
    """Total loss and its unweighted terms (detached), keyed ``"<term>/head<j>"``."""

    total: Tensor
    terms: dict[str, Tensor]


def _lesions(x: Tensor, channels: tuple[int, ...] | None) -> Tensor:
    """Lesion channels of a ``(B, C, ...)`` tensor (all of them when ``channels`` is ``None``)."""
    return x if channels is None else x[:, list(channels)]


def _check_heads(heads: Sequence[Tensor], config: RSuperLossConfig) -> None:
    if not heads:
        raise ValueError("no output heads given")
    if any(h.shape != heads[0].shape for h in heads):
        raise ValueError(f"all heads must have the same (full-resolution) shape, got {[tuple(h.shape) for h in heads]}")
    if len(config.head_weights) != len(heads):
        raise ValueError(f"{len(heads)} heads but {len(config.head_weights)} head_weights")
    if config.report_weight:
        for name in ("ball_head", "volume_head"):
            index = getattr(config, name)
            if index is not None and not 0 <= index < len(heads):
                raise ValueError(f"{name}={index} but there are {len(heads)} heads")


def rsuper_loss(
    heads: Sequence[Tensor], batch: SupervisionBatch, config: RSuperLossConfig = RSuperLossConfig()
) -> LossBreakdown:
    """R-Super loss over all heads (formula in the module docstring).

    Args:
        heads: logits ``(B, C, X, Y, Z)`` per head, final head first.
        batch: labels, unknown voxels and report tensors.
        config: weights and options.

    Returns:
        :class:`LossBreakdown` with the scalar total (differentiable).
    """
    _check_heads(heads, config)
    known = None
    if batch.unknown is not None:
        known = known_voxels(batch.unknown, batch.spacing_mm, config.segmentation.unknown_margin_mm)
    lesion_target = _lesions(batch.target, config.lesion_channels)
    lesion_unknown = None if batch.unknown is None else _lesions(batch.unknown, config.lesion_channels)

    total = heads[0].new_zeros((), dtype=torch.float32)
    terms: dict[str, Tensor] = {}
    for j, (logits, weight) in enumerate(zip(heads, config.head_weights)):
        seg = masked_segmentation_loss(logits, batch.target, known, config.segmentation)
        terms[f"seg_bce/head{j}"], terms[f"seg_tversky/head{j}"] = seg.bce, seg.tversky
        head_total = config.segmentation_weight * seg.total
        lesion_logits = _lesions(logits, config.lesion_channels)
        if config.report_weight and j == config.ball_head:
            ball = ball_loss(
                lesion_logits, batch.chosen_segment, batch.diameters_mm, batch.spacing_mm,
                target=lesion_target, unknown=lesion_unknown, volumes_mm3=batch.volumes_mm3, options=config.ball,
            )
            terms[f"ball_bce/head{j}"], terms[f"ball_tversky/head{j}"] = ball.bce, ball.tversky
            head_total = head_total + config.report_weight * (
                config.ball_bce_weight * ball.bce + config.ball_tversky_weight * ball.tversky
            )
        if config.report_weight and j == config.volume_head:
            volume = volume_loss(
                lesion_logits, batch.chosen_segment, batch.spacing_mm, batch.diameters_mm, batch.volumes_mm3,
                config.volume,
            )
            terms[f"volume/head{j}"] = volume
            head_total = head_total + config.report_weight * config.volume_weight * volume
        total = total + weight * head_total
    return LossBreakdown(total, {name: value.detach() for name, value in terms.items()})


class RSuperLoss(nn.Module):
    """:func:`rsuper_loss` as a module: ``RSuperLoss(config)(heads, batch) -> LossBreakdown``."""

    def __init__(self, config: RSuperLossConfig = RSuperLossConfig()) -> None:
        super().__init__()
        self.config = config

    def forward(self, heads: Sequence[Tensor], batch: SupervisionBatch) -> LossBreakdown:
        return rsuper_loss(heads, batch, self.config)
