"""Helpers of the inference and comparison tests: a synthetic CT and a deterministic segmenter's checkpoint.

:func:`threshold_checkpoint` saves a checkpoint of ``threshold_model.ThresholdSegmenter``
(channel c = ``gain * (x - thresholds[c])``, voxel by voxel) with thresholds
placed between the HU of air, soft tissue and bright lesions of the CT
(:func:`z_of_hu`), so that its predictions are known exactly and the inference
pipeline around it can be checked against truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform
from threshold_model import ThresholdSegmenter

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS
from rsuper.data.classes import ClassList
from rsuper.data.preprocess import resample, target_grid
from rsuper.train.checkpoint import save_checkpoint

MODEL_FILE = Path(__file__).resolve().with_name("threshold_model.py")
BODY_HU, LESION_HU, AIR_HU = 40.0, 400.0, -1000.0
HU_CLIP = (-991.0, 500.0)


def ellipsoid(shape: Sequence[int], spacing: Sequence[float], centre: Sequence[float],
              diameters_mm: Sequence[float], angle_rad: float = 0.0) -> np.ndarray:
    """Bool mask of a solid ellipsoid (axes: in-plane rotated by ``angle_rad``, third along k)."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    d = (grid - np.asarray(centre, float)) * np.asarray(spacing, float)
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    local = d @ rotation
    return ((local / (np.asarray(diameters_mm, float) / 2.0)) ** 2).sum(axis=-1) <= 1.0


@dataclass
class SyntheticCase:
    """A CT (RAS arrays before reorientation) with a liver block and three bright lesions.

    ``lesions``: name -> bool mask on the RAS grid: ``big`` (in the liver,
    20 x 14 x 16 mm), ``small`` (in the liver, below 50 mm³) and ``outside``
    (in the body, far from the liver).
    """

    ct: np.ndarray
    organs: np.ndarray
    affine: np.ndarray
    lesions: dict[str, np.ndarray] = field(default_factory=dict)
    diameters: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def oriented(self, codes: str) -> tuple[nib.Nifti1Image, nib.Nifti1Image, dict[str, np.ndarray]]:
        """``(ct image, organ image, lesion masks)`` with arrays in axis order ``codes`` (same world positions)."""
        ornt = ornt_transform(axcodes2ornt("RAS"), axcodes2ornt(tuple(codes)))
        affine = self.affine @ inv_ornt_aff(ornt, self.ct.shape)
        turn = lambda a: np.ascontiguousarray(apply_orientation(a, ornt))  # noqa: E731
        return (nib.Nifti1Image(turn(self.ct), affine), nib.Nifti1Image(turn(self.organs), affine),
                {k: turn(v) for k, v in self.lesions.items()})


SPACING = (1.5, 1.5, 4.0)
SHAPE = (60, 50, 24)


def synthetic_case() -> SyntheticCase:
    """The case of :class:`SyntheticCase` on a 60 x 50 x 24 grid of 1.5 x 1.5 x 4 mm."""
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = (-40.0, -30.0, -50.0)
    ct = np.full(SHAPE, AIR_HU, np.float32)
    ct[4:56, 4:46, 2:22] = BODY_HU
    organs = np.zeros(SHAPE, np.uint8)
    organs[6:30, 6:44, 3:21] = RSUPER_ORGAN_LABELS.label_of("liver_segment_5")
    organs[6:30, 6:20, 3:21] = RSUPER_ORGAN_LABELS.label_of("liver_segment_6")
    case = SyntheticCase(ct, organs, affine)
    case.diameters = {"big": (20.0, 14.0, 16.0), "small": (5.0, 5.0, 8.0), "outside": (9.0, 9.0, 8.0)}
    centres = {"big": (17.0, 27.3, 12.0), "small": (12.0, 10.0, 6.0), "outside": (47.0, 25.0, 12.0)}
    for name, centre in centres.items():
        mask = ellipsoid(SHAPE, SPACING, centre, case.diameters[name], angle_rad=0.5 if name == "big" else 0.0)
        case.lesions[name] = mask
        ct[mask] = LESION_HU
    return case


def z_of_hu(ct_ras: np.ndarray, affine: np.ndarray, spacing_mm: Sequence[float], hu: Sequence[float]) -> list[float]:
    """Where HU values land after the training preprocessing (resample, clip, z-score) of this CT."""
    shape, scale, offset, _ = target_grid(ct_ras.shape, affine, spacing_mm)
    image = np.clip(resample(ct_ras, shape, scale, offset, 1, np.float32), *HU_CLIP).astype(np.float64)
    return [float((np.clip(h, *HU_CLIP) - image.mean()) / image.std()) for h in hu]


def threshold_checkpoint(path: Path, case: SyntheticCase, spacing_mm: Sequence[float] = (2.0, 2.0, 2.0),
                         patch: int = 16) -> Path:
    """A checkpoint of :class:`ThresholdSegmenter` for ``case``: organ channel = body, lesion channel = bright."""
    organ_z, lesion_z = z_of_hu(case.ct, case.affine, spacing_mm,
                                [(AIR_HU + BODY_HU) / 2, (BODY_HU + LESION_HU) / 2])
    classes = ClassList(organs=("liver",), lesion_organs=("liver",))
    model = {"class": f"{MODEL_FILE}:ThresholdSegmenter", "kwargs": {"thresholds": [organ_z, lesion_z]}}
    net = ThresholdSegmenter(1, 2, [organ_z, lesion_z])
    return save_checkpoint(path, {
        "model": net.state_dict(), "ema": None, "classes": classes.to_dict(), "label_map": None,
        "config": {"model": model, "data": {"patch_size": [patch] * 3, "spacing_mm": list(spacing_mm),
                                            "hu_clip": list(HU_CLIP)}},
        "spacing_mm": list(spacing_mm), "hu_clip": list(HU_CLIP),
    })
