"""From probabilities to lesion masks and measured lesions.

* :func:`binarise`: threshold the sigmoid probabilities.
* :func:`restrict_to_organs`: keep lesion voxels within a margin of the organ
  (the reference's ``--organ_mask_on_lesion``, which multiplies the lesion
  mask by the predicted organ mask dilated by 3 voxels at 1 mm).
* :func:`remove_small_components`: drop connected components below a volume in mm³.
* :func:`instances_above`: label the components of at least a volume in mm³ in one pass.
* :func:`instances` / :func:`instance_stats`: label the lesions (26-connectivity)
  and measure each one (volume, centroid, bounding box, diameters in mm).

Arrays are ``(I, J, K)`` volumes in voxel order; ``spacing_mm`` is the voxel
size along I, J, K in mm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

#: 26-connectivity: voxels touching by a face, an edge or a corner form one lesion
#: (as the tumour instances of the cache, rsuper.data.preprocess).
CONNECTIVITY_26 = np.ones((3, 3, 3), bool)

#: Variance of a uniform solid ellipsoid along a semi-axis of length a is a² / 5,
#: so a principal variance v gives the diameter 2 * sqrt(5 v).
_ELLIPSOID_VARIANCE_FACTOR = 5.0


def _spacing(spacing_mm: Sequence[float]) -> np.ndarray:
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    if spacing.shape != (3,) or not np.all(spacing > 0):
        raise ValueError(f"spacing_mm must be three positive numbers (mm), got {spacing_mm!r}")
    return spacing


def _same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ, {a.shape} vs {b.shape}")


def binarise(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """``probs > threshold`` as bool (any shape; e.g. ``(C, I, J, K)`` -> ``(C, I, J, K)``).

    Strictly greater, so a probability of exactly ``threshold`` (logit 0 at 0.5) is background.
    """
    return np.asarray(probs) > threshold


def restrict_to_organs(
    lesion_mask: np.ndarray,
    organ_mask: np.ndarray,
    *,
    spacing_mm: Sequence[float],
    dilation_mm: float = 3.0,
) -> np.ndarray:
    """Lesion voxels within ``dilation_mm`` (Euclidean, in mm) of the organ.

    The organ is dilated by a ball of radius ``dilation_mm`` measured in mm,
    so the margin is the same physical distance along every axis of an
    anisotropic grid (the reference: 3 voxels at 1 mm). For a paired organ pass
    the union of both sides (the reference's kidney = left + right).

    Args:
        lesion_mask: ``(I, J, K)`` bool.
        organ_mask: ``(I, J, K)`` bool.
        spacing_mm: voxel size (mm) along I, J, K.
        dilation_mm: margin around the organ (mm, >= 0).

    Returns:
        ``(I, J, K)`` bool, ``lesion_mask`` and the dilated organ.
    """
    lesion = np.asarray(lesion_mask, dtype=bool)
    organ = np.asarray(organ_mask, dtype=bool)
    _same_shape(lesion, organ, "restrict_to_organs")
    spacing = _spacing(spacing_mm)
    if dilation_mm < 0:
        raise ValueError(f"dilation_mm must be >= 0, got {dilation_mm}")
    result = np.zeros_like(lesion)
    if not organ.any() or not lesion.any():
        return result
    # Work in the organ's bounding box grown by the margin: the distance
    # transform of the whole volume would cost far more for a small organ.
    margin = np.ceil(dilation_mm / spacing).astype(int) + 1
    organ_box = ndi.find_objects(organ.astype(np.uint8))[0]
    box = tuple(
        slice(max(s.start - m, 0), min(s.stop + m, n)) for s, m, n in zip(organ_box, margin, organ.shape)
    )
    distance = ndi.distance_transform_edt(~organ[box], sampling=spacing)  # mm to the nearest organ voxel
    result[box] = lesion[box] & (distance <= dilation_mm)
    return result


def instances(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components (26-connectivity) of a bool ``(I, J, K)`` mask.

    Returns:
        ``(labels, n)``: ``labels`` uint16 ``(I, J, K)`` with 0 = background and
        1..n the components (in scan order), ``n`` their number.

    Raises:
        ValueError: more components than uint16 can number (65,535).
    """
    labels, n = ndi.label(np.asarray(mask, dtype=bool), structure=CONNECTIVITY_26)
    if n > np.iinfo(np.uint16).max:
        raise ValueError(f"{n} connected components do not fit a uint16 label map; threshold the mask first")
    return labels.astype(np.uint16), int(n)


def remove_small_components(mask: np.ndarray, min_volume_mm3: float, spacing_mm: Sequence[float]) -> np.ndarray:
    """Drop the 26-connected components of ``mask`` smaller than ``min_volume_mm3``.

    A component's volume is its voxel count times the voxel volume
    (``prod(spacing_mm)``, mm³); components of exactly ``min_volume_mm3`` stay.

    Returns:
        ``(I, J, K)`` bool.
    """
    voxel_mm3 = float(np.prod(_spacing(spacing_mm)))
    labels, n = ndi.label(np.asarray(mask, dtype=bool), structure=CONNECTIVITY_26)
    if n == 0:
        return labels > 0
    volumes = np.bincount(labels.ravel(), minlength=n + 1) * voxel_mm3
    keep = volumes >= min_volume_mm3
    keep[0] = False
    return keep[labels]


def instances_above(mask: np.ndarray, min_volume_mm3: float, spacing_mm: Sequence[float]) -> tuple[np.ndarray, int]:
    """Connected components (26-connectivity) of at least ``min_volume_mm3``, numbered 1..n.

    The same components as :func:`remove_small_components` followed by
    :func:`instances`, with one labelling pass instead of two. Components keep
    their scan order.

    Returns:
        ``(labels, n)``: uint16 ``(I, J, K)`` labels and their number.

    Raises:
        ValueError: more kept components than uint16 can number.
    """
    voxel_mm3 = float(np.prod(_spacing(spacing_mm)))
    labels, n = ndi.label(np.asarray(mask, dtype=bool), structure=CONNECTIVITY_26)
    volumes = np.bincount(labels.ravel(), minlength=n + 1) * voxel_mm3
    keep = volumes >= min_volume_mm3
    keep[0] = False
    kept = int(keep.sum())
    if kept > np.iinfo(np.uint16).max:
        raise ValueError(f"{kept} connected components do not fit a uint16 label map; raise the threshold")
    renumber = np.zeros(n + 1, np.uint16)
    renumber[keep] = np.arange(1, kept + 1, dtype=np.uint16)
    return renumber[labels], kept


@dataclass(frozen=True)
class InstanceStats:
    """Measurements of one lesion instance.

    Attributes:
        label: its value in the label map.
        voxels: number of voxels.
        volume_mm3: ``voxels * prod(spacing_mm)``.
        centroid_vox: mean voxel index along I, J, K (voxel units).
        bbox: ``((i0, i1), (j0, j1), (k0, k1))`` half-open voxel ranges.
        max_diameter_mm: the longest extent of the lesion along any of the
            three grid axes and the three principal axes: the spread of the
            voxel centres projected on the axis plus the voxel size along it
            (``sqrt(sum((u_i h_i)²))``, i.e. ``h_i`` along grid axis i). A
            caliper measurement restricted to six directions, within about a
            voxel of the longest diameter a radiologist would measure on a
            convex lesion.
        principal_diameters_mm: diameters of the solid ellipsoid with the same
            second moments (PCA of the voxel coordinates in mm, each voxel
            counted as a uniform box), largest first. For an ellipsoidal lesion
            they are its three axis lengths.
    """

    label: int
    voxels: int
    volume_mm3: float
    centroid_vox: tuple[float, float, float]
    bbox: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    max_diameter_mm: float
    principal_diameters_mm: tuple[float, float, float]


def _measure(label: int, coords: np.ndarray, spacing: np.ndarray) -> InstanceStats:
    """``coords`` ``(N, 3)`` voxel indices of one instance."""
    points = coords * spacing  # (N, 3) mm
    # Covariance of the union of voxel boxes = covariance of the centres + that of one box (h² / 12).
    cov = np.cov(points, rowvar=False, bias=True) if len(points) > 1 else np.zeros((3, 3))
    cov = cov + np.diag(spacing**2 / 12.0)
    variances, axes = np.linalg.eigh(cov)  # ascending; columns are unit axes
    order = np.argsort(variances)[::-1]
    variances, axes = np.clip(variances[order], 0.0, None), axes[:, order]
    principal = 2.0 * np.sqrt(_ELLIPSOID_VARIANCE_FACTOR * variances)
    directions = np.concatenate([np.eye(3), axes.T])  # (6, 3) grid axes, then principal axes
    projections = points @ directions.T  # (N, 6)
    # One voxel's width along each direction: exact (h) along a grid axis, h for any direction when isotropic.
    extents = np.ptp(projections, axis=0) + np.sqrt(((directions * spacing) ** 2).sum(axis=1))
    lo, hi = coords.min(axis=0), coords.max(axis=0) + 1
    return InstanceStats(
        label=int(label),
        voxels=int(len(coords)),
        volume_mm3=float(len(coords) * np.prod(spacing)),
        centroid_vox=tuple(float(c) for c in coords.mean(axis=0)),  # type: ignore[arg-type]
        bbox=tuple((int(a), int(b)) for a, b in zip(lo, hi)),  # type: ignore[arg-type]
        max_diameter_mm=float(extents.max()),
        principal_diameters_mm=tuple(float(d) for d in principal),  # type: ignore[arg-type]
    )


def instance_stats(labels: np.ndarray, spacing_mm: Sequence[float]) -> list[InstanceStats]:
    """Measure every non-zero label of an ``(I, J, K)`` integer label map, in label order."""
    labels = np.asarray(labels)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an (I, J, K) integer array, got {labels.dtype} {labels.shape}")
    spacing = _spacing(spacing_mm)
    stats = []
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        coords = np.argwhere(labels[box] == index) + [s.start for s in box]
        stats.append(_measure(index, coords, spacing))
    return stats
