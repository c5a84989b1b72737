"""RECIST-style diameters of one lesion: longest axial diameter, its perpendicular, cranio-caudal extent.

The lesion is given as the voxel indices of a grid whose axes run along the
patient's R, A and S directions (a canonical RAS grid, e.g. after
``nibabel.as_closest_canonical``), so that the axial plane of the patient is
the plane of the first two indices and the third index runs cranio-caudally.

* long axis: on each axial slice, the longest distance between two voxel
  centres of the lesion (the Feret diameter, found among the vertices of the
  slice's convex hull), plus one voxel along that direction (the centres lie
  about half a voxel inside the lesion's edge at each end); the slice with the
  longest one is the measured slice, as RECIST measures the lesion where it is
  longest;
* short axis: on that slice, the longest chord perpendicular to the long axis:
  the voxel centres are cut into strips one voxel wide across the long axis,
  and the longest spread of a strip along the perpendicular, plus one voxel,
  is taken. (The lesion's whole width along the perpendicular would grow with
  any small tilt of the long axis, which a digitised lesion always has.)
* cranio-caudal extent: the number of axial slices the lesion spans times the
  slice spacing.

"One voxel along a unit direction u" is ``sqrt((u_x h_x)² + (u_y h_y)²)``, which
is exact along the grid axes and equals the voxel size in-plane when the pixels
are square (the convention of :mod:`rsuper.infer.postprocess`). On a digitised
convex lesion each diameter is within about a voxel of the true one.

The convex hull is scipy's (Qhull); scikit-image's Feret diameter is not used
because scikit-image is not a dependency of this package, and the short axis
needs the long axis's direction anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist, squareform


@dataclass(frozen=True)
class RecistDiameters:
    """The three diameters of one lesion in mm.

    Attributes:
        long_axis_mm: longest axial diameter.
        short_axis_mm: longest diameter perpendicular to it, on the same slice.
        craniocaudal_mm: extent along the superior axis.
        axial_slice: index along the third (S) grid axis of the slice holding the long axis.
    """

    long_axis_mm: float
    short_axis_mm: float
    craniocaudal_mm: float
    axial_slice: int


def _voxel_width(direction: np.ndarray, pixel_mm: np.ndarray) -> float:
    return float(np.sqrt(((direction * pixel_mm) ** 2).sum()))


def _hull_points(points: np.ndarray) -> np.ndarray:
    """The convex-hull vertices of ``(N, 2)`` points (all points when they are collinear or fewer than 3)."""
    if len(points) < 3:
        return points
    try:
        return points[ConvexHull(points).vertices]
    except QhullError:  # collinear: a one-voxel-wide line; few points, compare them all
        return points


def _slice_axes(points_mm: np.ndarray, pixel_mm: np.ndarray) -> tuple[float, float]:
    """``(long, short)`` in mm of one axial slice's voxel centres ``(N, 2)`` in mm."""
    hull = _hull_points(points_mm)
    if len(hull) < 2:
        return float(pixel_mm[0]), float(pixel_mm[1])
    distances = squareform(pdist(hull))
    a, b = np.unravel_index(int(np.argmax(distances)), distances.shape)
    length = float(distances[a, b])
    u = (hull[b] - hull[a]) / length
    v = np.array([-u[1], u[0]])
    along, across = points_mm @ u, points_mm @ v
    # Chords perpendicular to the long axis: the points in each strip one voxel wide along it.
    strips = np.floor((along - along.min()) / _voxel_width(u, pixel_mm)).astype(np.int64)
    order = np.argsort(strips, kind="stable")
    _, starts = np.unique(strips[order], return_index=True)
    chord = max(float(np.ptp(part)) for part in np.split(across[order], starts[1:]))
    return length + _voxel_width(u, pixel_mm), chord + _voxel_width(v, pixel_mm)


def recist_diameters(coords: np.ndarray, spacing_mm: Sequence[float]) -> RecistDiameters:
    """RECIST-style diameters of one lesion (see the module docstring).

    Args:
        coords: ``(N, 3)`` integer voxel indices of the lesion in a RAS-ordered grid.
        spacing_mm: voxel size (mm) along the three grid axes.

    Raises:
        ValueError: no voxels, or a bad shape / spacing.
    """
    coords = np.asarray(coords)
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 3 or len(coords) == 0:
        raise ValueError(f"coords must be a non-empty (N, 3) array, got shape {coords.shape}")
    if spacing.shape != (3,) or not np.all(spacing > 0):
        raise ValueError(f"spacing_mm must be three positive numbers (mm), got {spacing_mm!r}")
    pixel = spacing[:2]
    order = np.argsort(coords[:, 2], kind="stable")
    ordered = coords[order]
    slices, starts = np.unique(ordered[:, 2], return_index=True)
    best = (-1.0, 0.0, int(slices[0]))
    for k, part in zip(slices, np.split(ordered[:, :2], starts[1:])):
        long_axis, short_axis = _slice_axes(part * pixel, pixel)
        if long_axis > best[0]:
            best = (long_axis, short_axis, int(k))
    craniocaudal = float((slices[-1] - slices[0] + 1) * spacing[2])
    return RecistDiameters(best[0], best[1], craniocaudal, best[2])
