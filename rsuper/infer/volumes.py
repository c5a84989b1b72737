"""Read a CT and its label images onto the CT's canonical RAS grid (no torch; shared by predict and compare).

Voxel values are read once, in the type needed (float32 HU, integer labels),
never as float64 (nibabel's ``get_fdata`` default) even when the file stores
scaled integers.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from rsuper.data.validate import AFFINE_TOL_MM, geometry_mismatch, integer_labels

from .grid import CanonicalGrid


class InputError(ValueError):
    """An input volume cannot be used (not 3D, not on the CT's grid, not labels); the message says why."""


def read_ct_ras(ct: nib.spatialimages.SpatialImage) -> tuple[CanonicalGrid, np.ndarray]:
    """``(grid, HU (I, J, K) on the canonical grid)`` of a CT image.

    Integers of at most 16 bits stored without scaling (the usual int16 CT)
    stay as they are; anything else is read as float32.
    """
    if len(ct.shape) != 3:
        raise InputError(f"the CT must be a 3D image, got shape {tuple(ct.shape)}")
    grid = CanonicalGrid.of(ct.shape, ct.affine)
    stored = np.dtype(ct.get_data_dtype())
    scaled = float(getattr(ct.dataobj, "slope", 1.0)) != 1.0 or float(getattr(ct.dataobj, "inter", 0.0)) != 0.0
    if stored.kind in "iu" and stored.itemsize <= 2 and not scaled:
        hu = np.asarray(ct.dataobj)
    else:
        hu = np.asarray(ct.dataobj, dtype=np.float32)
    return grid, np.ascontiguousarray(grid.to_ras(hu))


def read_labels_ras(image: nib.spatialimages.SpatialImage, reference: nib.spatialimages.SpatialImage,
                    grid: CanonicalGrid, what: str) -> np.ndarray:
    """Non-negative integer labels of ``image`` on ``grid``'s canonical view.

    Args:
        image: a label image (organ mask, tumour mask).
        reference: the image whose grid it must share (shape, affine within
            :data:`rsuper.data.validate.AFFINE_TOL_MM`).
        grid: ``reference``'s grid.
        what: its name in error messages.

    Raises:
        InputError: another grid, or values that are not labels.
    """
    why = geometry_mismatch(reference, image, AFFINE_TOL_MM)
    if why:
        raise InputError(f"{what}: {why}")
    data, problem = integer_labels(np.asanyarray(image.dataobj))
    if problem:
        raise InputError(f"{what}: {problem}")
    return np.ascontiguousarray(grid.to_ras(data))
