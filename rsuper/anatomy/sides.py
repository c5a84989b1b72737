"""Left and right of paired organs, from patient coordinates (never from array index order).

World coordinates are nibabel's RAS+ millimetres: the affine maps voxel
``(i, j, k)`` to ``(x, y, z)`` with +x toward the patient's **right**, +y
anterior, +z superior. A DICOM-style (LPS) array simply has an affine whose
first column points the other way; working in world x makes the answer the
same for every array orientation.

* :func:`side_of`: the side of one mask, relative to a midline x.
* :func:`midline_x_mm`: a midline estimate from the labelled organs.
* :func:`fix_sides`: relabels connected components of paired organs
  (kidneys, adrenals, lungs, femurs) that sit on the wrong side, e.g. in
  imported masks that confuse the patient's left with the image's left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import ndimage as ndi

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS, LabelMap

Side = Literal["left", "right"]

#: Left/right label-name pairs that :func:`fix_sides` checks.
PAIRED_LABEL_NAMES: tuple[tuple[str, str], ...] = (
    ("kidney_left", "kidney_right"),
    ("adrenal_gland_left", "adrenal_gland_right"),
    ("lung_left", "lung_right"),
    ("femur_left", "femur_right"),
)
#: A component whose centre lies closer than this to the midline is left as it is (e.g. a horseshoe kidney).
MIDLINE_MARGIN_MM = 10.0


def world_x_mm(index: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World RAS+ x in mm ``(n,)`` of voxel indices ``(n, 3)``."""
    return np.asarray(index, float) @ affine[0, :3] + affine[0, 3]


def side_of(mask: np.ndarray, affine: np.ndarray, midline_x_mm: float = 0.0) -> Side:
    """The patient side of a mask's centre of mass.

    Args:
        mask: bool ``(I, J, K)``, not empty.
        affine: ``(4, 4)`` voxel -> world RAS+ mm.
        midline_x_mm: world x of the patient's midline (0 is the scanner's
            isocentre, close to the midline in most CT; see :func:`midline_x_mm`).

    Returns:
        ``"right"`` when the centre's world x is greater than the midline, else ``"left"``.

    Raises:
        ValueError: an empty mask.
    """
    index = np.argwhere(mask)
    if not len(index):
        raise ValueError("empty mask has no side")
    return "right" if float(world_x_mm(index, affine).mean()) > midline_x_mm else "left"


def midline_x_mm(labels: np.ndarray, affine: np.ndarray) -> float:
    """World x (mm) halfway between the rightmost and leftmost labelled voxel.

    The abdominal organs together reach about as far to the right (liver) as to
    the left (spleen, colon), so the middle of their extent is a rough
    midline, good to a centimetre or two: plenty to tell kidneys about 8 cm
    apart. Falls back to 0 (isocentre) when nothing is labelled.
    """
    x_of_i = world_x_mm(np.argwhere(labels > 0), affine)
    return float((x_of_i.min() + x_of_i.max()) / 2.0) if len(x_of_i) else 0.0


@dataclass
class SideFix:
    """Result of :func:`fix_sides`.

    Attributes:
        labels: the relabelled ``(I, J, K)`` array (a copy).
        moved: one line per relabelled component (name, voxels, from -> to).
        messages: components left unchanged because they straddle the midline.
    """

    labels: np.ndarray
    moved: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def fix_sides(
    labels: np.ndarray, affine: np.ndarray, label_map: LabelMap = RSUPER_ORGAN_LABELS,
    midline_mm: float | None = None,
) -> SideFix:
    """Give each connected component of a paired organ the label of the side it lies on.

    For every pair in :data:`PAIRED_LABEL_NAMES` present in ``label_map``, the
    union of both labels is split into 26-connected components; a component
    whose centre of mass lies right of the midline gets the ``*_right``
    label, else ``*_left``. Components within :data:`MIDLINE_MARGIN_MM` of the
    midline are left unchanged (reported).

    Args:
        labels: integer ``(I, J, K)`` labels of ``label_map``.
        affine: ``(4, 4)`` voxel -> world RAS+ mm.
        label_map: meaning of ``labels``.
        midline_mm: world x of the midline; ``None`` estimates it with :func:`midline_x_mm`.
    """
    out = np.array(labels, copy=True)
    result = SideFix(out)
    midline = midline_x_mm(labels, affine) if midline_mm is None else float(midline_mm)
    names = set(label_map.labels.values())
    for left_name, right_name in PAIRED_LABEL_NAMES:
        if left_name not in names or right_name not in names:
            continue
        left, right = label_map.label_of(left_name), label_map.label_of(right_name)
        components, n = ndi.label(np.isin(labels, (left, right)), structure=np.ones((3, 3, 3), bool))
        if not n:
            continue
        index = np.argwhere(components > 0)
        comp = components[tuple(index.T)]
        x_centre = np.bincount(comp, world_x_mm(index, affine), n + 1)[1:] / np.bincount(comp, minlength=n + 1)[1:]
        for c, (x, box) in enumerate(zip(x_centre, ndi.find_objects(components)), start=1):
            inside = components[box] == c
            if abs(x - midline) < MIDLINE_MARGIN_MM:
                result.messages.append(
                    f"{left_name}/{right_name}: a component of {int(inside.sum())} voxels lies on the midline "
                    f"(x = {x:.1f} mm, midline {midline:.1f} mm); left unchanged"
                )
                continue
            target, target_name = (right, right_name) if x > midline else (left, left_name)
            wrong = inside & (labels[box] != target)
            if wrong.any():
                source = label_map.name_of(int(np.bincount(labels[box][wrong]).argmax()))
                out[box][wrong] = target
                result.moved.append(f"{int(wrong.sum())} voxels {source} -> {target_name} (x = {x:.1f} mm)")
    return result
