"""Tumours of the synthetic CT phantom: specification, random draw and placement.

A tumour is a solid ellipsoid with true diameters in mm (honouring the voxel
spacing) and a random orientation, placed so that every voxel lies inside the
requested organ or sub-segment mask and apart from the other tumours. Its
voxels keep their organ label; the tumour instance map says which tumour they
belong to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial.transform import Rotation

from rsuper.anatomy.labels import labels_for
from rsuper.report.schema import ORGANS, PAIRED_ORGANS, validate_subsegment

from .phantom_report import MALIGNANCY_BY_ATTENUATION

#: Attenuation classes the phantom can draw.
ATTENUATION_KINDS = ("hypo", "hyper", "cystic")
#: Cyst content attenuation in HU.
CYST_HU = 5.0

# Random draw: organ -> (probability, largest first diameter in mm).
_RANDOM_ORGANS: dict[str, tuple[float, float]] = {
    "pancreas": (0.4, 24.0), "liver": (0.35, 40.0), "kidney_left": (0.125, 28.0), "kidney_right": (0.125, 28.0),
}
_RANDOM_SUBSEGMENTS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "pancreas": (("head", "body", "tail"), (0.5, 0.3, 0.2)),
    "liver": (tuple(f"segment_{k}" for k in range(1, 9)), (0.02,) + (0.14,) * 7),
}
_RANDOM_ATTENUATION: dict[str, tuple[float, float, float]] = {
    "pancreas": (0.6, 0.1, 0.3), "liver": (0.5, 0.2, 0.3), "kidney_left": (0.3, 0.3, 0.4),
    "kidney_right": (0.3, 0.3, 0.4),
}


class TumourPlacementError(ValueError):
    """A tumour does not fit inside its organ / sub-segment."""


@dataclass
class TumourSpec:
    """A requested tumour.

    Attributes:
        organ: a side-specific organ of :data:`rsuper.report.schema.ORGANS`
            that the label map has a mask for (``kidney_left``, ``pancreas`` ...).
        subsegment: ``None`` or a sub-segment with its own mask (``head``,
            ``segment_7``; ``neck``/``uncinate`` use the head mask).
        diameters_mm: one diameter (sphere) or 2-3 diameters in mm; with two
            (a, b) the third is (a + b) / 2, as in ``Tumour.volume_mm3``.
        attenuation: ``hypo`` (organ - 40..60 HU), ``hyper`` (organ + 40..60 HU)
            or ``cystic`` (about 5 HU).
        malignancy: impression written in the report; ``None`` takes the first
            of ``MALIGNANCY_BY_ATTENUATION[attenuation]``.
    """

    organ: str
    subsegment: str | None = None
    diameters_mm: float | Sequence[float] = 20.0
    attenuation: str = "hypo"
    malignancy: str | None = None

    def full_diameters(self) -> tuple[float, float, float]:
        """The three diameters in mm, largest first."""
        d = [float(self.diameters_mm)] if np.isscalar(self.diameters_mm) else [float(v) for v in self.diameters_mm]
        if len(d) == 1:
            d = d * 3
        elif len(d) == 2:
            d.append((d[0] + d[1]) / 2.0)
        if len(d) != 3 or min(d) <= 0:
            raise ValueError(f"diameters_mm must be 1-3 positive values, got {self.diameters_mm}")
        return tuple(sorted(d, reverse=True))  # type: ignore[return-value]

    def label_values(self) -> list[int]:
        """Organ-map labels the tumour must lie in (validates organ and sub-segment)."""
        if self.organ in PAIRED_ORGANS:
            raise ValueError(f"organ {self.organ!r} needs a side: one of {PAIRED_ORGANS[self.organ]}")
        if self.organ not in ORGANS:
            raise ValueError(f"organ {self.organ!r} is not in the facts vocabulary")
        validate_subsegment(self.organ, self.subsegment)
        if self.attenuation not in ATTENUATION_KINDS:
            raise ValueError(f"attenuation must be one of {ATTENUATION_KINDS}, got {self.attenuation!r}")
        try:
            values = labels_for(self.organ, self.subsegment)
        except KeyError as exc:
            raise ValueError(f"the phantom cannot place tumours in {exc.args[0]}") from None
        if not values:
            raise ValueError(f"the phantom has no mask for organ {self.organ!r}")
        return values


@dataclass
class PlacedTumour:
    """A tumour as realised in the phantom.

    Attributes:
        instance: its value in the tumour instance map (1..N).
        organ, subsegment, attenuation, malignancy: as requested.
        diameters_mm: true diameters in mm, largest first.
        centre_mm: centre in world (RAS+) mm.
        axes: 3x3; column k is the world direction of ``diameters_mm[k]``.
        hu: mean attenuation painted (before smoothing and noise), HU.
        n_voxels: voxels in the instance map.
        voxel_volume_mm3: ``n_voxels`` times the voxel volume, mm^3.
    """

    instance: int
    organ: str
    subsegment: str | None
    diameters_mm: tuple[float, float, float]
    attenuation: str
    malignancy: str
    centre_mm: tuple[float, float, float]
    axes: list[list[float]] = field(repr=False)
    hu: float
    n_voxels: int
    voxel_volume_mm3: float

    @property
    def volume_mm3(self) -> float:
        """Ellipsoid volume pi/6 * a * b * c of the true diameters, mm^3."""
        a, b, c = self.diameters_mm
        return float(np.pi / 6.0 * a * b * c)


def random_specs(rng: np.random.Generator, n: int, min_diameter_mm: float = 8.0,
                 attenuations: Sequence[str] = ATTENUATION_KINDS) -> list[TumourSpec]:
    """``n`` random tumours in the pancreas, liver or kidneys.

    The largest diameter is uniform between ``min_diameter_mm`` and the organ's
    limit (24 mm pancreas, 28 mm kidney, 40 mm liver), at most that limit. The
    attenuation is drawn among ``attenuations`` with the organ's frequencies
    (renormalised over the kinds allowed).

    Raises:
        ValueError: ``attenuations`` is empty or names an unknown kind.
    """
    unknown = sorted(set(attenuations) - set(ATTENUATION_KINDS))
    if unknown or not attenuations:
        raise ValueError(f"attenuations must be a non-empty subset of {ATTENUATION_KINDS}, got {tuple(attenuations)}")
    allowed_kinds = np.isin(ATTENUATION_KINDS, list(attenuations))
    organs = list(_RANDOM_ORGANS)
    probs = [_RANDOM_ORGANS[o][0] for o in organs]
    specs = []
    for _ in range(n):
        organ = organs[int(rng.choice(len(organs), p=probs))]
        sub = None
        if organ in _RANDOM_SUBSEGMENTS:
            names, p = _RANDOM_SUBSEGMENTS[organ]
            sub = names[int(rng.choice(len(names), p=p))]
        d1 = rng.uniform(min(min_diameter_mm, _RANDOM_ORGANS[organ][1]), _RANDOM_ORGANS[organ][1])
        d2 = d1 * rng.uniform(0.7, 1.0)
        d3 = d2 * rng.uniform(0.7, 1.0)
        weights = np.asarray(_RANDOM_ATTENUATION[organ]) * allowed_kinds
        att = ATTENUATION_KINDS[int(rng.choice(3, p=weights / weights.sum()))]
        allowed = MALIGNANCY_BY_ATTENUATION[att]
        specs.append(TumourSpec(organ, sub, tuple(round(d, 1) for d in (d1, d2, d3)), att,
                                allowed[int(rng.integers(len(allowed)))]))
    return specs


def ellipsoid_offsets(
    diameters_mm: Sequence[float], rotation: np.ndarray, spacing_mm: Sequence[float]
) -> np.ndarray:
    """Voxel offsets ``(n, 3)`` (int) of a solid ellipsoid centred on a voxel centre.

    A voxel is in when its centre satisfies ``sum((R^T p / semi_axes)^2) <= 1``
    with ``p`` its offset in mm and ``R``'s columns the ellipsoid axes.
    """
    semi = np.asarray(diameters_mm, float) / 2.0
    sp = np.asarray(spacing_mm, float)
    reach = np.ceil(semi.max() / sp).astype(int)
    grid = np.stack(np.meshgrid(*(np.arange(-r, r + 1) for r in reach), indexing="ij"), -1).reshape(-1, 3)
    local = (grid * sp) @ rotation
    return grid[((local / semi) ** 2).sum(1) <= 1.0]


def place_tumour(
    rng: np.random.Generator,
    allowed: np.ndarray,
    diameters_mm: Sequence[float],
    spacing_mm: Sequence[float],
    tries: int = 400,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Find a position where the ellipsoid fits inside ``allowed``.

    Args:
        allowed: bool ``(X, Y, Z)``, voxels the tumour may occupy.
        diameters_mm: three diameters in mm.
        spacing_mm: voxel size along X, Y, Z in mm (axes aligned with the world).

    Returns:
        ``(centre_index (3,), voxel_indices (n, 3), rotation (3, 3))``.

    Raises:
        TumourPlacementError: no position found in ``tries`` attempts.
    """
    if not allowed.any():
        raise TumourPlacementError("the organ mask is empty (or fully taken by other tumours)")
    lo = np.argwhere(allowed).min(0)
    hi = np.argwhere(allowed).max(0) + 1
    sub = allowed[tuple(slice(a, b) for a, b in zip(lo, hi))]
    depth = ndi.distance_transform_edt(np.pad(sub, 1), sampling=spacing_mm)[1:-1, 1:-1, 1:-1]
    semi = np.sort(np.asarray(diameters_mm, float))[::-1] / 2.0
    candidates = np.argwhere(depth >= semi[-1])
    if len(candidates) == 0:
        raise TumourPlacementError(
            f"no point lies {semi[-1]:.1f} mm inside the mask (largest inscribed radius {depth.max():.1f} mm)"
        )
    deep = candidates[np.argsort(-depth[tuple(candidates.T)])]
    shape = np.asarray(sub.shape)
    rotation = offsets = None
    for attempt in range(tries):
        if attempt % 20 == 0:
            rotation = Rotation.random(random_state=rng).as_matrix()
            offsets = ellipsoid_offsets(diameters_mm, rotation, spacing_mm)
        pool = candidates if attempt < tries // 2 else deep[: max(1, len(deep) // 20)]
        centre = pool[int(rng.integers(len(pool)))]
        vox = centre + offsets
        if (vox < 0).any() or (vox >= shape).any() or not sub[tuple(vox.T)].all():
            continue
        return centre + lo, vox + lo, rotation
    raise TumourPlacementError(
        f"an ellipsoid of {', '.join(f'{d:.1f}' for d in diameters_mm)} mm does not fit "
        f"(largest inscribed radius {depth.max():.1f} mm)"
    )
