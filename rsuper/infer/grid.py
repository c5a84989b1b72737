"""A CT's voxel grid and its canonical RAS view (the orientation every measurement is made in).

Arrays are indexed in nibabel order ``[i, j, k]``; the affine maps ``(i, j, k, 1)``
to world RAS+ mm (+x toward the patient's right, +y anterior, +z superior).
:class:`CanonicalGrid` reorders / flips the axes of any array on the CT's grid
so that i runs toward R, j toward A and k toward S (``nibabel.as_closest_canonical``
does the same to an image), and back. Oblique grids use their closest axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform


@dataclass(frozen=True)
class CanonicalGrid:
    """The CT's grid ``(shape, affine)`` and the permutation / flips to canonical RAS.

    Attributes:
        shape: the CT's array shape ``(I, J, K)``.
        affine: the CT's ``(4, 4)`` voxel -> world mm.
        ornt: nibabel orientation ``(3, 2)`` taking the CT's axes to RAS.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    ornt: np.ndarray

    @classmethod
    def of(cls, shape: Sequence[int], affine: np.ndarray) -> "CanonicalGrid":
        """The grid of an image with this ``shape`` (first three axes) and ``affine``."""
        affine = np.asarray(affine, dtype=np.float64)
        return cls(tuple(int(s) for s in shape[:3]), affine, io_orientation(affine))  # type: ignore[arg-type]

    @property
    def ras_affine(self) -> np.ndarray:
        """``(4, 4)`` voxel -> world mm of the canonical array."""
        return self.affine @ inv_ornt_aff(self.ornt, self.shape)

    @property
    def ras_shape(self) -> tuple[int, int, int]:
        """Shape of the canonical array."""
        return tuple(self.shape[int(a)] for a in np.argsort(self.ornt[:, 0]))  # type: ignore[return-value]

    @property
    def ras_spacing_mm(self) -> np.ndarray:
        """Voxel size (mm) ``(3,)`` along the canonical axes R, A, S."""
        return np.linalg.norm(self.ras_affine[:3, :3], axis=0)

    def to_ras(self, array: np.ndarray) -> np.ndarray:
        """The canonical view of ``array`` (first three axes on the CT's grid; a view, not a copy)."""
        return apply_orientation(array, self.ornt)

    def from_ras(self, array: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_ras`, as a C-contiguous array on the CT's grid."""
        back = ornt_transform(axcodes2ornt("RAS"), self.ornt)
        return np.ascontiguousarray(apply_orientation(array, back))

    def ras_to_world(self, index: np.ndarray) -> np.ndarray:
        """World mm ``(..., 3)`` of canonical voxel indices ``(..., 3)``."""
        aff = self.ras_affine
        return np.asarray(index, float) @ aff[:3, :3].T + aff[:3, 3]

    def world_to_index(self, world_mm: np.ndarray) -> np.ndarray:
        """Voxel indices ``(..., 3)`` on the CT's own grid of world points ``(..., 3)`` in mm."""
        inv = np.linalg.inv(self.affine)
        return np.asarray(world_mm, float) @ inv[:3, :3].T + inv[:3, 3]
