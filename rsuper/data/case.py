"""One preprocessed case as the patch sampler sees it (the cache's in-memory form).

Arrays share one grid: indexed ``[i, j, k]`` in nibabel order, canonical RAS+
orientation (``affine`` maps voxel -> world mm), spacing ``spacing_mm`` (mm).
They may be ``np.memmap`` views of the cache files (read-only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS, LabelMap
from rsuper.report.schema import ReportFacts

CaseKind = Literal["mask", "report", "unlabelled"]


@dataclass
class CachedCase:
    """A case ready for patch sampling.

    Attributes:
        case_id: identifier from the manifest.
        image: float32 ``(I, J, K)`` normalised intensities (HU clipped, z-scored).
        organs: uint8 ``(I, J, K)`` organ / sub-segment labels of ``label_map``,
            or ``None`` when the case has no organ mask.
        tumours: uint16 ``(I, J, K)`` tumour instances (0 = none, 1..N), or
            ``None`` when the case has no voxel tumour mask.
        spacing_mm: voxel size along I, J, K in mm.
        facts: report facts, or ``None``.
        label_map: meaning of ``organs``.
        affine: float ``(4, 4)`` voxel -> world RAS+ mm of this grid.
    """

    case_id: str
    image: np.ndarray
    organs: np.ndarray | None
    tumours: np.ndarray | None
    spacing_mm: tuple[float, float, float]
    facts: ReportFacts | None = None
    label_map: LabelMap = field(default_factory=lambda: RSUPER_ORGAN_LABELS, repr=False)
    affine: np.ndarray = field(default_factory=lambda: np.eye(4), repr=False)

    @property
    def kind(self) -> CaseKind:
        """``"mask"`` with a tumour mask (it wins over facts), ``"report"`` with facts only, else ``"unlabelled"``."""
        if self.tumours is not None:
            return "mask"
        if self.facts is not None:
            return "report"
        return "unlabelled"

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid size ``(I, J, K)`` in voxels."""
        return tuple(int(n) for n in self.image.shape)  # type: ignore[return-value]
