"""How well the Ball Loss's pseudo-masks match the true tumours of cases that have both.

The Ball Loss (:mod:`rsuper.losses.ball`) teaches a report case's tumours where
the current model sees them most (:func:`rsuper.losses.pseudo_mask.place_tumours`).
It can only help when that place is right often enough; on cases with a
report *and* a tumour mask (phantoms, or a hospital's few annotated cases)
this module measures how often it is, with the training code's own placement:

* **centre hits**: reported tumours whose ball centre lies on a true tumour voxel;
* **precision**: share of positive pseudo-mask voxels that are true tumour;
* **recall**: share of the true tumour voxels inside the chosen segments that
  the positive pseudo-masks cover.

Placement runs on the whole volume (training places inside a patch that holds
the whole segment, so the result is the same up to the patch's border).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rsuper.anatomy.labels import LabelMap
from rsuper.data.classes import ClassList
from rsuper.data.report_targets import report_targets
from rsuper.losses.ball import BallLossOptions
from rsuper.losses.morphology import dilate_ball
from rsuper.losses.pseudo_mask import place_tumours, tumour_sizes
from rsuper.report.schema import ReportFacts


@dataclass(frozen=True)
class PseudoMaskQuality:
    """Counts behind the pseudo-mask scores; ``+`` pools cases.

    Attributes:
        tumours: reported tumours that were placed.
        centre_hits: of those, the ones whose centre voxel is a true tumour voxel.
        positive_voxels: positive pseudo-mask voxels.
        positive_on_tumour: of those, true tumour voxels.
        tumour_voxels: true tumour voxels inside the chosen segments.
    """

    tumours: int = 0
    centre_hits: int = 0
    positive_voxels: int = 0
    positive_on_tumour: int = 0
    tumour_voxels: int = 0

    def __add__(self, other: PseudoMaskQuality) -> PseudoMaskQuality:
        return PseudoMaskQuality(*(a + b for a, b in zip(self.counts(), other.counts())))

    def counts(self) -> tuple[int, int, int, int, int]:
        """The five counts in field order."""
        return (self.tumours, self.centre_hits, self.positive_voxels, self.positive_on_tumour, self.tumour_voxels)

    @property
    def centre_hit_rate(self) -> float:
        """``centre_hits / tumours`` (``nan`` without tumours)."""
        return self.centre_hits / self.tumours if self.tumours else float("nan")

    @property
    def precision(self) -> float:
        """``positive_on_tumour / positive_voxels`` (``nan`` without positives)."""
        return self.positive_on_tumour / self.positive_voxels if self.positive_voxels else float("nan")

    @property
    def recall(self) -> float:
        """``positive_on_tumour / tumour_voxels`` (``nan`` without tumour voxels)."""
        return self.positive_on_tumour / self.tumour_voxels if self.tumour_voxels else float("nan")


def case_pseudo_mask_quality(
    probs: np.ndarray,
    truth: np.ndarray,
    organs: np.ndarray,
    label_map: LabelMap,
    facts: ReportFacts,
    classes: ClassList,
    spacing_mm: Sequence[float],
    options: BallLossOptions = BallLossOptions(),
) -> PseudoMaskQuality:
    """Place one case's reported tumours as the Ball Loss would and score them against its mask.

    Every segment group of the report (:func:`rsuper.data.report_targets.report_targets`)
    is placed in turn, as if it were the patch's chosen segment.

    Args:
        probs: float ``(C, I, J, K)`` predicted probabilities of all channels (``classes``).
        truth: ``(I, J, K)`` true tumour mask (non-zero = tumour) on the same grid.
        organs: uint8 ``(I, J, K)`` organ labels of ``label_map``.
        label_map: meaning of ``organs``.
        facts: the case's report facts.
        classes: the model's channels.
        spacing_mm: voxel size (mm).
        options: the Ball Loss options of the training run (segment dilation, placement).

    Returns:
        The case's :class:`PseudoMaskQuality` (all zero when no group has known sizes).
    """
    truth = np.asarray(truth) != 0
    spacing = torch.tensor([list(spacing_mm)], dtype=torch.float64)
    quality = PseudoMaskQuality()
    for group in report_targets(facts, organs, label_map, classes).groups:
        chosen_np = np.isin(organs, group.labels)
        chosen = torch.from_numpy(chosen_np)[None]
        segment = dilate_ball(chosen[:, None], options.segment_dilation_mm, spacing)[:, 0]
        channel = torch.from_numpy(np.ascontiguousarray(probs[classes.lesion_channels[group.lesion_index]]))[None]
        diameter, volume = tumour_sizes(torch.from_numpy(group.diameters_mm)[None],
                                        torch.from_numpy(group.volumes_mm3)[None], options.pseudo_mask.volume_mode)
        masks = place_tumours(channel, chosen, segment, diameter, volume, spacing, options.pseudo_mask)
        positive = masks.positive[0].numpy()
        centres = masks.centres[0, : group.n_tumours].tolist()
        quality = quality + PseudoMaskQuality(
            tumours=group.n_tumours,
            centre_hits=sum(bool(truth[tuple(c)]) for c in centres),
            positive_voxels=int(positive.sum()),
            positive_on_tumour=int((positive & truth).sum()),
            tumour_voxels=int((truth & chosen_np).sum()),
        )
    return quality
