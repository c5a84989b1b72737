"""Where a training patch is cut from a case (R-Super method notes §2.3).

A crop is the patch origin ``start`` (voxel index of the patch's first voxel;
it may be negative or run past the volume, see :func:`extract`) plus what it
was centred on. Choices, drawn with the sample's ``numpy.random.Generator``:

* **mask case** with tumours: 90 % centred on a tumour voxel (a tumour instance
  drawn uniformly, then one of its voxels, so small tumours are seen as often as
  large ones), 5 % on an organ voxel, 5 % anywhere ("background");
  without tumours: 90 % organ, 10 % background. "Organ" means the lesion
  organs (the model's tumour organs), as in the reference.
* **report case**: 10 % a plain random crop (organ / background as for a
  tumour-free mask case; no report supervision); otherwise a segment group is
  drawn and the patch is placed at a random offset such that the group's
  bounding box plus a 1-voxel margin lies wholly inside it (so the reported
  volume is inside the patch). A box larger than the patch makes the other
  groups be tried in random order, then a random crop. (The reference first
  "denoises" an oversized mask by erosion/dilation; we do not: a stray voxel
  far from the organ is better fixed in the organ mask.)

Centred crops are jittered by up to ``±jitter × patch`` voxels per axis
(default 0.25, i.e. half of the reference's ±50 %): the centre voxel stays in
the central half of the patch, so the structure it sits on is in view with
context around it. A background crop's origin is uniform over the positions
that keep the patch inside the volume (centred when the volume is smaller).

Per-case lookups (label and tumour bounding boxes, tumour voxels, the image
minimum used for padding) are computed lazily, once per case and process, by
:class:`CaseGeometry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, Sequence

import numpy as np
from scipy import ndimage as ndi

from rsuper.data.case import CachedCase
from rsuper.data.report_targets import SegmentGroup

CropKind = Literal["tumour", "organ", "background", "segment"]

#: Mask case with tumours: P(tumour), P(organ); the rest is background.
TUMOUR_CROP_P = (0.90, 0.05)
#: Tumour-free mask case and random report crops: P(organ); the rest is background.
ORGAN_CROP_P = 0.90
#: Report case: P(plain random crop without report supervision).
RANDOM_REPORT_CROP_P = 0.10
#: Default centre jitter, as a fraction of the patch size per axis.
DEFAULT_JITTER = 0.25
# Rejection sampling of an organ voxel inside the organ's bounding box: candidates per round, rounds.
_CANDIDATES, _ROUNDS = 256, 4


def patch_shape(size: int | Sequence[int]) -> tuple[int, int, int]:
    """Patch size per axis in voxels from one int or three ints."""
    shape = (int(size),) * 3 if np.isscalar(size) else tuple(int(s) for s in size)  # type: ignore[arg-type]
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"patch size must be a positive int or three positive ints, got {size!r}")
    return shape  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class Crop:
    """A chosen patch.

    Attributes:
        start: int64 ``(3,)`` patch origin in case voxels (may lie outside the volume).
        kind: what the patch was centred on.
        group: the segment group of a ``"segment"`` crop (its report supervision), else ``None``.
    """

    start: np.ndarray
    kind: CropKind
    group: SegmentGroup | None = field(default=None)


def extract(array: np.ndarray, start: np.ndarray, patch: Sequence[int], pad_value: float | int = 0) -> np.ndarray:
    """Cut ``array[start : start + patch]`` (3-D), filling voxels outside the volume with ``pad_value``.

    Args:
        array: ``(I, J, K)`` volume (may be a memmap).
        start: ``(3,)`` first voxel of the patch; negative / past-the-end parts are padding.
        patch: ``(Px, Py, Pz)`` patch size.
        pad_value: value of the padding voxels.

    Returns:
        A new ``(Px, Py, Pz)`` array of ``array.dtype``.
    """
    start = np.asarray(start, np.int64)
    size = np.asarray(patch, np.int64)
    shape = np.asarray(array.shape, np.int64)
    lo = np.clip(start, 0, shape)
    hi = np.clip(start + size, 0, shape)
    out = np.full(tuple(size), pad_value, dtype=array.dtype)
    if np.all(hi > lo):
        src = tuple(slice(a, b) for a, b in zip(lo, hi))
        dst = tuple(slice(a, b) for a, b in zip(lo - start, hi - start))
        out[dst] = array[src]
    return out


class CaseGeometry:
    """Lazily cached lookups of one case for crop selection (one per case and process)."""

    def __init__(self, case: CachedCase) -> None:
        self.case = case
        self.shape = np.asarray(case.shape, np.int64)
        self._instance_voxels: dict[int, np.ndarray] = {}

    @cached_property
    def pad_value(self) -> float:
        """Image minimum (air after clipping): the padding intensity outside the volume."""
        return float(np.min(self.case.image))

    @cached_property
    def label_boxes(self) -> list[tuple[slice, ...] | None]:
        """``scipy.ndimage.find_objects`` of the organ labels (entry ``v - 1`` for label ``v``)."""
        if self.case.organs is None:
            return []
        return ndi.find_objects(np.asarray(self.case.organs))

    @cached_property
    def tumour_boxes(self) -> list[tuple[slice, ...] | None]:
        """``find_objects`` of the tumour instances (entry ``n - 1`` for instance ``n``)."""
        if self.case.tumours is None:
            return []
        return ndi.find_objects(np.asarray(self.case.tumours))

    @cached_property
    def instances(self) -> np.ndarray:
        """Instance numbers present in the tumour map, int64 ``(N,)``."""
        return np.asarray([n + 1 for n, box in enumerate(self.tumour_boxes) if box is not None], np.int64)

    def box_of(self, labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray] | None:
        """Union bounding box ``(lo, hi)`` (int64 ``(3,)``, ``hi`` exclusive) of organ labels, ``None`` if absent."""
        boxes = [self.label_boxes[v - 1] for v in labels if 0 < v <= len(self.label_boxes)]
        boxes = [b for b in boxes if b is not None]
        if not boxes:
            return None
        lo = np.min([[s.start for s in b] for b in boxes], axis=0).astype(np.int64)
        hi = np.max([[s.stop for s in b] for b in boxes], axis=0).astype(np.int64)
        return lo, hi

    def instance_voxels(self, instance: int) -> np.ndarray:
        """Voxel indices int64 ``(n, 3)`` of one tumour instance (cached)."""
        if instance not in self._instance_voxels:
            box = self.tumour_boxes[instance - 1]
            assert box is not None and self.case.tumours is not None
            lo = np.asarray([s.start for s in box], np.int64)
            self._instance_voxels[instance] = np.argwhere(np.asarray(self.case.tumours[box]) == instance) + lo
        return self._instance_voxels[instance]

    def random_tumour_voxel(self, rng: np.random.Generator) -> np.ndarray | None:
        """A voxel of a uniformly drawn tumour instance, ``None`` without tumours."""
        if self.instances.size == 0:
            return None
        voxels = self.instance_voxels(int(rng.choice(self.instances)))
        return voxels[rng.integers(len(voxels))]

    def random_organ_voxel(self, labels: Sequence[int], rng: np.random.Generator) -> np.ndarray | None:
        """A uniformly drawn voxel carrying one of ``labels``, ``None`` if none is present.

        Rejection sampling inside the labels' bounding box (no full-volume pass
        per draw); after a few unlucky rounds, the box's voxels are listed.
        """
        box = self.box_of(labels)
        if box is None or self.case.organs is None:
            return None
        lo, hi = box
        organs, wanted = self.case.organs, np.asarray(sorted(labels))
        for _ in range(_ROUNDS):
            points = rng.integers(lo, hi, size=(_CANDIDATES, 3))
            hits = np.flatnonzero(np.isin(organs[points[:, 0], points[:, 1], points[:, 2]], wanted))
            if hits.size:
                return points[hits[0]]
        inside = np.argwhere(np.isin(organs[tuple(slice(a, b) for a, b in zip(lo, hi))], wanted)) + lo
        return inside[rng.integers(len(inside))]


def centred_start(centre: np.ndarray, patch: Sequence[int], jitter: float, rng: np.random.Generator) -> np.ndarray:
    """Origin of a patch centred on ``centre`` (int ``(3,)``), shifted by up to ``±jitter × patch`` voxels."""
    size = np.asarray(patch, np.int64)
    reach = np.floor(jitter * size).astype(np.int64)
    return np.asarray(centre, np.int64) - size // 2 + rng.integers(-reach, reach + 1)


def background_start(shape: np.ndarray, patch: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Uniform origin keeping the patch inside the volume (centred on axes where the volume is smaller)."""
    slack = shape - np.asarray(patch, np.int64)
    return np.where(slack >= 0, rng.integers(0, np.maximum(slack, 0) + 1), slack // 2)


def box_start(lo: np.ndarray, hi: np.ndarray, shape: np.ndarray, patch: Sequence[int],
              rng: np.random.Generator, margin: int = 1) -> np.ndarray | None:
    """Random origin of a patch holding the box ``[lo, hi)`` plus ``margin`` voxels, ``None`` if it cannot.

    Among the valid origins, those keeping the patch inside the volume are
    preferred (per axis, when there are any).
    """
    size = np.asarray(patch, np.int64)
    first, last = hi + margin - size, lo - margin  # valid origins: first <= start <= last
    if np.any(first > last):
        return None
    inner_first, inner_last = np.maximum(first, 0), np.minimum(last, shape - size)
    use_inner = inner_first <= inner_last
    first, last = np.where(use_inner, inner_first, first), np.where(use_inner, inner_last, last)
    return rng.integers(first, last + 1)


def random_crop(geometry: CaseGeometry, patch: Sequence[int], organ_labels: Sequence[int],
                rng: np.random.Generator, jitter: float = DEFAULT_JITTER, organ_p: float = ORGAN_CROP_P) -> Crop:
    """An organ crop with probability ``organ_p`` (if the organs are present), else a background crop."""
    if rng.random() < organ_p:
        centre = geometry.random_organ_voxel(organ_labels, rng)
        if centre is not None:
            return Crop(centred_start(centre, patch, jitter, rng), "organ")
    return Crop(background_start(geometry.shape, patch, rng), "background")


def mask_crop(geometry: CaseGeometry, patch: Sequence[int], organ_labels: Sequence[int],
              rng: np.random.Generator, jitter: float = DEFAULT_JITTER) -> Crop:
    """Crop of a mask case: tumour / organ / background (see the module docstring)."""
    if geometry.instances.size == 0:
        return random_crop(geometry, patch, organ_labels, rng, jitter)
    u = rng.random()
    if u < TUMOUR_CROP_P[0]:
        centre = geometry.random_tumour_voxel(rng)
        assert centre is not None
        return Crop(centred_start(centre, patch, jitter, rng), "tumour")
    organ_share = TUMOUR_CROP_P[1] / (1.0 - TUMOUR_CROP_P[0])
    return random_crop(geometry, patch, organ_labels, rng, jitter, organ_p=organ_share)


def report_crop(geometry: CaseGeometry, patch: Sequence[int], groups: Sequence[SegmentGroup],
                organ_labels: Sequence[int], rng: np.random.Generator, jitter: float = DEFAULT_JITTER,
                random_p: float = RANDOM_REPORT_CROP_P) -> Crop:
    """Crop of a report case: a segment group wholly inside the patch, else a random crop.

    Returns a ``"segment"`` crop carrying its group, or an organ / background
    crop (no report supervision) with probability ``random_p``, when the case
    has no group, or when no group's box (+1 voxel) fits in the patch.
    """
    if groups and rng.random() >= random_p:
        for g in rng.permutation(len(groups)):
            box = geometry.box_of(groups[g].labels)
            start = None if box is None else box_start(box[0], box[1], geometry.shape, patch, rng)
            if start is not None:
                return Crop(start, "segment", groups[g])
    return random_crop(geometry, patch, organ_labels, rng, jitter)
