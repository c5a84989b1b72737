"""One record per tumour instance: size, RECIST diameters, position, organ, attenuation, probability.

:func:`measure_tumours` measures every instance of a label map on the CT's
canonical RAS grid (:class:`rsuper.infer.grid.CanonicalGrid`), so that
"axial" means the patient's axial plane whatever the array order of the file.

The organ of a tumour is the facts organ (``rsuper.report.schema.ORGANS``)
of the organ-mask labels under it (:func:`rsuper.anatomy.labels.organ_of`):
the organ covering most of its voxels, preferring the organ of the lesion
channel that found it (a kidney-lesion channel tumour touching the liver is a
kidney tumour when any kidney label lies under it). When no organ label lies
under the tumour, the labels within ``margin_mm`` around it are used (a mask
that leaves the tumour out, e.g. an organ model that does not include
lesions); without labels there, the lesion channel's organ is used.
``subsegments`` gives the share of the tumour's voxels (or of the
neighbourhood's, in the second case) in each sub-segment of that organ;
``subsegment`` is the largest share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from rsuper.anatomy.labels import LabelMap, organ_of
from rsuper.report.schema import PAIRED_ORGANS

from .grid import CanonicalGrid
from .recist import recist_diameters

#: mm³ per mL.
MM3_PER_ML = 1000.0


@dataclass
class TumourRecord:
    """Measurements of one tumour instance (JSON: :meth:`to_dict`).

    Attributes:
        id: the instance's value in the label NIfTI.
        channel: the lesion channel that found it (``"pancreas_lesion"``), or ``None`` for a given mask.
        organ: facts organ (``"kidney_left"``; ``"kidney"`` when the side is unknown), or ``None``.
        subsegment: the sub-segment holding most of it (``"head"``, ``"segment_7"``), or ``None``.
        subsegments: share (0-1) of its voxels in each sub-segment of ``organ``.
        organ_label: the organ-mask label name it was assigned from, or ``None``.
        voxels: number of voxels on the CT grid.
        volume_ml: volume in mL (voxels x voxel volume).
        long_axis_mm: longest axial diameter (mm), see :mod:`rsuper.infer.recist`.
        short_axis_mm: longest perpendicular diameter on the same slice (mm).
        craniocaudal_mm: cranio-caudal extent (mm).
        centroid_voxel: centre of mass as voxel indices of the CT file's own grid.
        centroid_mm: centre of mass in world RAS+ mm.
        mean_hu: mean attenuation of its voxels in the CT (HU), or ``None`` without a CT.
        max_probability: highest lesion probability inside it, or ``None`` for a given mask.
    """

    id: int
    channel: str | None
    organ: str | None
    subsegment: str | None
    subsegments: dict[str, float]
    organ_label: str | None
    voxels: int
    volume_ml: float
    long_axis_mm: float
    short_axis_mm: float
    craniocaudal_mm: float
    centroid_voxel: list[float]
    centroid_mm: list[float]
    mean_hu: float | None = None
    max_probability: float | None = None

    @property
    def diameters_mm(self) -> list[float]:
        """The three diameters largest first (mm), comparable with ``Tumour.diameters_mm`` of a report."""
        return sorted([self.long_axis_mm, self.short_axis_mm, self.craniocaudal_mm], reverse=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (floats rounded to 0.01 mm / 0.001 mL / 0.0001)."""
        data = asdict(self)
        for key in ("long_axis_mm", "short_axis_mm", "craniocaudal_mm", "mean_hu"):
            data[key] = None if data[key] is None else round(float(data[key]), 2)
        data["volume_ml"] = round(float(self.volume_ml), 3)
        data["centroid_voxel"] = [round(float(v), 2) for v in self.centroid_voxel]
        data["centroid_mm"] = [round(float(v), 2) for v in self.centroid_mm]
        data["subsegments"] = {k: round(float(v), 4) for k, v in self.subsegments.items()}
        if self.max_probability is not None:
            data["max_probability"] = round(float(self.max_probability), 4)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TumourRecord":
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["subsegments"] = dict(values.get("subsegments") or {})
        return cls(**values)


@dataclass
class OrganLookup:
    """What :func:`measure_tumours` needs to name a tumour's organ.

    Attributes:
        organs_ras: integer organ labels on the canonical grid ``(I, J, K)``, or ``None``.
        label_map: meaning of the labels.
        margin_mm: how far around a tumour to look when no label lies under it.
        names: label value -> ``(facts organ, sub-segment)`` for the labels that have one.
    """

    organs_ras: np.ndarray | None
    label_map: LabelMap
    margin_mm: float = 3.0
    names: dict[int, tuple[str, str | None]] = field(init=False)

    def __post_init__(self) -> None:
        self.names = {v: m for v, n in self.label_map.labels.items() if (m := organ_of(n)) is not None}


def _family(organ: str) -> set[str]:
    """A facts organ with its sides (``kidney`` -> kidney, kidney_left, kidney_right)."""
    for unsided, sides in PAIRED_ORGANS.items():
        if organ == unsided or organ in sides:
            return {unsided, *sides}
    return {organ}


def _label_counts(values: np.ndarray, lookup: OrganLookup) -> dict[int, int]:
    counts = np.bincount(values.ravel().astype(np.int64))
    return {v: int(c) for v, c in enumerate(counts) if c and v in lookup.names}


def _neighbour_labels(lookup: OrganLookup, mask: np.ndarray, box: tuple[slice, ...], spacing: np.ndarray) -> np.ndarray:
    """Organ labels within ``margin_mm`` of the tumour (outside it), from a box grown by the margin."""
    grow = np.ceil(lookup.margin_mm / spacing).astype(int) + 1
    shape = lookup.organs_ras.shape  # type: ignore[union-attr]
    big = tuple(slice(max(s.start - g, 0), min(s.stop + g, n)) for s, g, n in zip(box, grow, shape))
    inner = np.zeros([s.stop - s.start for s in big], bool)
    inner[tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(box, big))] = mask
    distance = ndi.distance_transform_edt(~inner, sampling=spacing)
    return lookup.organs_ras[big][(distance > 0) & (distance <= lookup.margin_mm)]  # type: ignore[index]


def assign_organ(
    counts: Mapping[int, int], lookup: OrganLookup, channel_organ: str | None, total: int
) -> tuple[str | None, str | None, dict[str, float], str | None]:
    """``(organ, subsegment, subsegment shares, label name)`` from label voxel counts (see module docstring).

    Args:
        counts: label value -> voxels of the tumour (or of its neighbourhood) with that label.
        lookup: label names.
        channel_organ: the lesion channel's organ (preferred), or ``None``.
        total: voxels counted (the tumour's, or its neighbourhood's): the denominator of the shares.
    """
    per_organ: dict[str, int] = {}
    for value, n in counts.items():
        organ = lookup.names[value][0]
        per_organ[organ] = per_organ.get(organ, 0) + n
    if not per_organ:
        return channel_organ, None, {}, None
    preferred = {o: n for o, n in per_organ.items() if channel_organ is not None and o in _family(channel_organ)}
    pool = preferred or per_organ
    organ = max(sorted(pool), key=lambda o: pool[o])
    shares: dict[str, float] = {}
    for value, n in counts.items():
        name_organ, sub = lookup.names[value]
        if name_organ == organ and sub is not None:
            shares[sub] = shares.get(sub, 0.0) + n / max(total, 1)
    subsegment = max(sorted(shares), key=lambda s: shares[s]) if shares else None
    label_values = [v for v in counts if lookup.names[v][0] == organ]
    label = lookup.label_map.name_of(max(label_values, key=lambda v: counts[v]))
    return organ, subsegment, shares, label


def measure_tumours(
    labels_ras: np.ndarray,
    grid: CanonicalGrid,
    *,
    hu_ras: np.ndarray | None = None,
    probability_ras: np.ndarray | None = None,
    organs: OrganLookup | None = None,
    channels: Mapping[int, str] | None = None,
    channel_organs: Mapping[int, str] | None = None,
) -> list[TumourRecord]:
    """One :class:`TumourRecord` per non-zero value of an instance map, in increasing id order.

    Args:
        labels_ras: integer ``(I, J, K)`` instance ids on the canonical RAS grid of ``grid``.
        grid: the CT's grid.
        hu_ras: CT in HU on the same grid (for ``mean_hu``), or ``None``.
        probability_ras: lesion probability on the same grid (for ``max_probability``), or ``None``.
        organs: organ labels for ``organ`` / ``subsegment``, or ``None``.
        channels: instance id -> lesion channel name (``"liver_lesion"``).
        channel_organs: instance id -> that channel's facts organ (the fallback organ).
    """
    labels_ras = np.asarray(labels_ras)
    if not np.issubdtype(labels_ras.dtype, np.integer):
        raise ValueError(f"labels must be integer instance ids, got {labels_ras.dtype}")
    if labels_ras.shape != grid.ras_shape:
        raise ValueError(f"labels shape {labels_ras.shape} is not the CT's canonical shape {grid.ras_shape}")
    spacing = grid.ras_spacing_mm
    voxel_ml = float(np.prod(spacing)) / MM3_PER_ML
    channels = channels or {}
    channel_organs = channel_organs or {}
    records = []
    for value, box in enumerate(ndi.find_objects(labels_ras), start=1):
        if box is None:
            continue
        mask = labels_ras[box] == value
        coords = np.argwhere(mask) + [s.start for s in box]
        diameters = recist_diameters(coords, spacing)
        centre = coords.mean(axis=0)
        world = grid.ras_to_world(centre)
        organ, sub, shares, label = channel_organs.get(value), None, {}, None
        if organs is not None and organs.organs_ras is not None:
            counts, total = _label_counts(organs.organs_ras[box][mask], organs), len(coords)
            if not counts and organs.margin_mm > 0:
                shell = _neighbour_labels(organs, mask, box, spacing)
                counts, total = _label_counts(shell, organs), len(shell)
            organ, sub, shares, label = assign_organ(counts, organs, channel_organs.get(value), total)
        records.append(TumourRecord(
            id=int(value),
            channel=channels.get(value),
            organ=organ,
            subsegment=sub,
            subsegments=shares,
            organ_label=label,
            voxels=int(len(coords)),
            volume_ml=len(coords) * voxel_ml,
            long_axis_mm=diameters.long_axis_mm,
            short_axis_mm=diameters.short_axis_mm,
            craniocaudal_mm=diameters.craniocaudal_mm,
            centroid_voxel=[float(v) for v in grid.world_to_index(world)],
            centroid_mm=[float(v) for v in world],
            mean_hu=None if hu_ras is None else float(np.mean(hu_ras[box][mask], dtype=np.float64)),
            max_probability=None if probability_ras is None else float(np.max(probability_ras[box][mask])),
        ))
    return records
