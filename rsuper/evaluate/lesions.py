"""Tumour-level pieces of the evaluation: matching, sizes, size groups.

* :func:`match_lesions`: which truth tumours a predicted mask finds, and which
  predicted components match a tumour (:class:`LesionMatch`).
* :func:`largest_diameters_mm`: the largest diameter of each truth tumour, in mm.
* :func:`size_group`: ``"small"`` (< 2 cm) or ``"large"`` (>= 2 cm).

Arrays are ``(I, J, K)`` volumes in voxel order; ``spacing_mm`` is the voxel
size along I, J, K in mm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull

from rsuper.infer.postprocess import instances

#: Tumours with a largest diameter below this (mm) are "small" (the 2 cm split of the paper).
SMALL_TUMOUR_MM = 20.0
#: Size group names, in reporting order.
SIZE_GROUPS: tuple[str, str] = ("small", "large")


@dataclass(frozen=True)
class LesionMatch:
    """Overlap matching of predicted components and truth tumours.

    Attributes:
        truth_ids: ``(T,)`` instance values of the truth tumours, ascending.
        truth_found: ``(T,)`` bool, the tumour shares enough voxels with a predicted component.
        pred_matched: ``(P,)`` bool, predicted component ``p + 1`` matches a truth tumour.
    """

    truth_ids: np.ndarray
    truth_found: np.ndarray
    pred_matched: np.ndarray

    @property
    def tp(self) -> int:
        """Truth tumours found."""
        return int(self.truth_found.sum())

    @property
    def fn(self) -> int:
        """Truth tumours missed."""
        return int((~self.truth_found).sum())

    @property
    def fp(self) -> int:
        """Predicted components that match no truth tumour."""
        return int((~self.pred_matched).sum())


def match_lesions(pred_mask: np.ndarray, truth_instances: np.ndarray, min_overlap_voxels: int = 1) -> LesionMatch:
    """Match the 26-connected components of ``pred_mask`` to truth tumours by overlap.

    A component and a tumour match when they share at least
    ``min_overlap_voxels`` voxels. One component covering two tumours finds
    both; two components on one tumour both match it.

    Args:
        pred_mask: ``(I, J, K)`` predicted lesions (non-zero = lesion).
        truth_instances: ``(I, J, K)`` integer instance map (0 = background, one
            value per tumour), or a bool mask, split into connected components first.
        min_overlap_voxels: voxels a component must share with a tumour to match it (>= 1).
    """
    if min_overlap_voxels < 1:
        raise ValueError(f"min_overlap_voxels must be >= 1, got {min_overlap_voxels}")
    truth = np.asarray(truth_instances)
    if truth.dtype == bool:
        truth = instances(truth)[0]
    pred_labels, n_pred = instances(np.asarray(pred_mask) != 0)
    if pred_labels.shape != truth.shape:
        raise ValueError(f"prediction {pred_labels.shape} and truth {truth.shape} differ in shape")
    truth_ids = np.unique(truth[truth != 0]).astype(np.int64)
    both = (pred_labels != 0) & (truth != 0)
    pairs = np.stack([pred_labels[both].astype(np.int64), truth[both].astype(np.int64)])  # (2, overlap voxels)
    pairs, overlaps = np.unique(pairs, axis=1, return_counts=True)
    matched = pairs[:, overlaps >= min_overlap_voxels]  # (2, M): predicted label, truth id
    pred_matched = np.zeros(n_pred, bool)
    pred_matched[matched[0] - 1] = True
    return LesionMatch(truth_ids, np.isin(truth_ids, matched[1]), pred_matched)


def _max_pairwise_distance(points: np.ndarray) -> tuple[float, np.ndarray]:
    """Largest distance between rows of ``points`` ``(N, 3)`` and the unit direction of that pair."""
    if len(points) > 4:
        # The farthest pair of a point set lies on its convex hull; "QJ" joggles flat (coplanar) sets.
        points = points[ConvexHull(points, qhull_options="QJ").vertices]
    best, direction = 0.0, np.zeros(3)
    for start in range(0, len(points), 1024):  # chunks bound the (chunk, N) distance matrix
        diff = points[start:start + 1024, None, :] - points[None, :, :]
        dist2 = np.einsum("abk,abk->ab", diff, diff)
        flat = int(np.argmax(dist2))
        a, b = np.unravel_index(flat, dist2.shape)
        if dist2[a, b] > best**2:
            best = float(np.sqrt(dist2[a, b]))
            direction = diff[a, b] / best
    return best, direction


def largest_diameters_mm(truth_instances: np.ndarray, spacing_mm: Sequence[float]) -> dict[int, float]:
    """Largest diameter (mm) of each tumour of an instance map.

    The caliper length along the tumour's longest chord: the largest distance
    between two voxel centres (found on their convex hull,
    ``scipy.spatial.ConvexHull``) plus the width of one voxel along that
    direction, ``sqrt(sum((u_i h_i)²))``, so a row of ``n`` voxels of size
    ``h`` measures ``n h`` and a single voxel its largest side. It follows the
    tumour's extent in any direction, not only along the grid axes.

    Args:
        truth_instances: ``(I, J, K)`` integer instance map (0 = background).
        spacing_mm: voxel size along I, J, K (mm).

    Returns:
        ``{instance value: diameter in mm}`` for every non-zero value.
    """
    labels = np.asarray(truth_instances)
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"truth_instances must be an integer instance map, got {labels.dtype}")
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    out: dict[int, float] = {}
    # find_objects takes the instance values as they are (no renumbered copy of a whole CT); absent ones are None.
    for value, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        tumour = labels[box] == value
        # Only surface voxels can hold the farthest pair of the solid.
        surface = tumour & ~ndi.binary_erosion(tumour)
        points = (np.argwhere(surface) + [s.start for s in box]) * spacing  # (N, 3) mm
        length, direction = _max_pairwise_distance(points)
        width = float(np.sqrt(np.sum((direction * spacing) ** 2))) if length > 0 else float(spacing.max())
        out[value] = length + width
    return out


def size_group(diameter_mm: float) -> str:
    """``"small"`` below :data:`SMALL_TUMOUR_MM` (20 mm), else ``"large"``."""
    return SIZE_GROUPS[0] if diameter_mm < SMALL_TUMOUR_MM else SIZE_GROUPS[1]
