"""The rows of a GUI table from the JSON that ``rsuper compare`` writes, with positions to jump to and draw.

:func:`comparison_rows` turns each finding of a comparison (one case, format
``rsuper-comparison``; or a cohort, ``rsuper-comparison-cohort``) into a
:class:`ComparisonRow`. The comparison JSON has no positions; they come from
either

* the ``tumours.json`` of ``rsuper predict`` (``tumours``): each tumour's
  centre ``centroid_mm``; or
* the tumour label array and its affine (``labels``, ``affine``): the centre
  and the end points of the longest axial diameter (the RECIST long axis),
  which the Slicer module draws as a line measurement.

:func:`read_comparison_rows` does both for a written ``comparison.json``: it
finds the tumour label image the comparison used (:func:`compared_tumour_files`)
and reads it.

All positions are world RAS+ mm (nibabel's and 3D Slicer's RAS). Importing
this module needs only the standard library; numpy / scipy / nibabel are
loaded when labels are given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ComparisonRow", "comparison_rows", "compared_tumour_files", "read_comparison_rows", "tumour_geometry",
           "FLAG_TEXT"]

Point = tuple[float, float, float]

#: Short words for the flags, for a table column.
FLAG_TEXT: dict[str, str] = {
    "agrees": "agrees",
    "size_differs": "size differs",
    "ai_only": "AI only",
    "normal_organ": "organ called normal",
    "report_only": "report only",
    "not_assessed": "not assessed",
}


@dataclass
class ComparisonRow:
    """One finding of a comparison, ready for a table.

    Attributes:
        ai_id: the AI tumour's instance id (its value in the label image), or ``None`` (report only).
        organ: facts organ (``"pancreas"``, ``"kidney_left"``), or ``None``.
        subsegment: sub-segment (``"head"``, ``"segment_7"``), or ``None``.
        ai_diameters_mm: the AI tumour's diameters, largest first (``[]`` when none).
        report_diameters_mm: the reported diameters (``[]`` when none).
        flag: ``agrees``, ``size_differs``, ``ai_only``, ``normal_organ``, ``report_only`` or ``not_assessed``.
        severity: larger is worse (sort key; 0 for agreement).
        report_sentence: the report's words for the tumour (``""`` when none).
        centroid_ras: the AI tumour's centre (RAS mm), or ``None`` when unknown.
        longest_axis_ras: end points (RAS mm) of its longest axial diameter, or ``None`` when unknown.
        message: one sentence for people (from ``rsuper compare``).
        difference_mm: AI largest diameter minus the reported one (mm), or ``None``.
        case_id: the case (cohort comparisons hold several).
    """

    ai_id: int | None
    organ: str | None
    subsegment: str | None
    ai_diameters_mm: list[float]
    report_diameters_mm: list[float]
    flag: str
    severity: float
    report_sentence: str
    centroid_ras: Point | None = None
    longest_axis_ras: tuple[Point, Point] | None = None
    message: str = ""
    difference_mm: float | None = None
    case_id: str = ""

    @property
    def is_disagreement(self) -> bool:
        """Whether the row needs a look (not ``agrees`` / ``not_assessed``)."""
        return self.flag not in ("agrees", "not_assessed")

    @property
    def flag_text(self) -> str:
        """Short words for the flag."""
        return FLAG_TEXT.get(self.flag, self.flag)

    @property
    def place(self) -> str:
        """``"pancreas head"``, ``"liver segment 7"``, ``"kidney left"``, or ``""``."""
        words = " ".join(p for p in (self.organ, self.subsegment) if p)
        return words.replace("_", " ")


def comparison_rows(
    comparison_json: Mapping[str, Any],
    tumours: Mapping[str, Any] | None = None,
    labels: Any = None,
    affine: Any = None,
) -> list[ComparisonRow]:
    """Rows of every finding, in the comparison's order (a cohort: its cases in order, worst first).

    Args:
        comparison_json: the parsed ``--out`` JSON of ``rsuper compare``.
        tumours: the parsed ``tumours.json`` of the case (centres of the AI tumours), or ``None``.
        labels: the tumour label array ``(I, J, K)`` (instance ids) of the case, or ``None``.
        affine: its ``(4, 4)`` voxel -> RAS mm matrix (needed with ``labels``).

    Returns:
        one :class:`ComparisonRow` per finding; positions filled for AI tumours where ``tumours`` or
        ``labels`` give them (``labels`` win, and also give the long axis).

    Raises:
        ValueError: not a comparison JSON; ``labels`` without ``affine``.
    """
    fmt = comparison_json.get("format")
    if fmt == "rsuper-comparison-cohort":
        cases = comparison_json.get("cases") or []
    elif fmt == "rsuper-comparison" or "findings" in comparison_json:
        cases = [comparison_json]
    else:
        raise ValueError(f"not an rsuper compare JSON (format {fmt!r})")
    if labels is not None and affine is None:
        raise ValueError("labels need their affine")
    centres: dict[int, Point] = {}
    axes: dict[int, tuple[Point, Point]] = {}
    for record in (tumours or {}).get("tumours") or []:
        if record.get("centroid_mm") is not None:
            centres[int(record["id"])] = _point(record["centroid_mm"])
    if labels is not None:
        ids = {int(f["ai_id"]) for case in cases for f in case.get("findings") or [] if f.get("ai_id") is not None}
        for ai_id, (centre, axis) in tumour_geometry(labels, affine, sorted(ids)).items():
            centres[ai_id] = centre
            axes[ai_id] = axis
    rows = []
    for case in cases:
        for finding in case.get("findings") or []:
            ai_id = finding.get("ai_id")
            ai_id = None if ai_id is None else int(ai_id)
            evidence = finding.get("evidence") or {}
            rows.append(ComparisonRow(
                ai_id=ai_id,
                organ=finding.get("organ"),
                subsegment=finding.get("subsegment"),
                ai_diameters_mm=[float(d) for d in finding.get("ai_diameters_mm") or []],
                report_diameters_mm=[float(d) for d in finding.get("report_diameters_mm") or []],
                flag=str(finding.get("flag", "")),
                severity=float(finding.get("severity") or 0.0),
                report_sentence=str(evidence.get("text") or ""),
                centroid_ras=centres.get(ai_id) if ai_id is not None else None,
                longest_axis_ras=axes.get(ai_id) if ai_id is not None else None,
                message=str(finding.get("message") or ""),
                difference_mm=None if finding.get("difference_mm") is None else float(finding["difference_mm"]),
                case_id=str(case.get("case_id") or ""),
            ))
    return rows


def compared_tumour_files(comparison_json: Mapping[str, Any], base_dir: str | Path | None = None
                          ) -> tuple[Path, Path | None]:
    """The files of the AI tumours a one-case comparison used: ``(label image, tumours.json or None)``.

    ``rsuper compare`` records its ``--tumours`` in ``sources.tumours``: either a tumour label NIfTI (then that
    is the label image) or the ``tumours.json`` of ``rsuper predict``, whose label image is the file its
    ``labels`` entry names in the same folder (``tumours.nii.gz`` for ``tumours.json`` when it names none).

    Args:
        comparison_json: the parsed ``--out`` JSON of a one-case ``rsuper compare``.
        base_dir: where to look for a relative ``sources.tumours`` that does not exist from the current
            folder (usually the comparison JSON's folder).

    Raises:
        ValueError: a cohort comparison or no ``sources.tumours``; a ``.json`` that is not an
            ``rsuper-tumours`` file.
        FileNotFoundError: the recorded file or the label image beside the records is gone.
    """
    from rsuper.infer.tumours_file import read_tumours_json

    if comparison_json.get("format") == "rsuper-comparison-cohort":
        raise ValueError("a cohort comparison names a folder of tumours, not the files of one case")
    named = (comparison_json.get("sources") or {}).get("tumours")
    if not named:
        raise ValueError("the comparison does not record its tumours (sources.tumours)")
    path = Path(named)
    if not path.is_absolute() and not path.exists() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.is_file():
        raise FileNotFoundError(f"the compared tumours {path} are gone")
    if path.suffix.lower() != ".json":
        return path, None
    records = read_tumours_json(path)
    labels = records.labels_path or path.with_name(path.stem + ".nii.gz")
    if not labels.is_file():
        raise FileNotFoundError(f"{path} describes {labels.name}, which is not beside it")
    return labels, path


def read_comparison_rows(comparison_path: str | Path) -> list[ComparisonRow]:
    """The rows of a written ``comparison.json``, positions included.

    One case: centres and long axes from the tumour label image it compared (:func:`compared_tumour_files`),
    with the records of its ``tumours.json`` when it compared one. A cohort: rows without positions.

    Raises:
        ValueError, FileNotFoundError: as :func:`compared_tumour_files`; not a comparison JSON.
        OSError: unreadable files.
    """
    comparison_path = Path(comparison_path)
    data = json.loads(comparison_path.read_text(encoding="utf-8"))
    if data.get("format") == "rsuper-comparison-cohort":
        return comparison_rows(data)
    import nibabel as nib
    import numpy as np

    labels_path, records_path = compared_tumour_files(data, comparison_path.parent)
    records = None if records_path is None else json.loads(records_path.read_text(encoding="utf-8"))
    image = nib.load(str(labels_path))
    return comparison_rows(data, tumours=records, labels=np.asarray(image.dataobj), affine=image.affine)


def _point(values: Sequence[float]) -> Point:
    x, y, z = (float(v) for v in values)
    return (x, y, z)


def tumour_geometry(labels: Any, affine: Any, ids: Sequence[int] | None = None
                    ) -> dict[int, tuple[Point, tuple[Point, Point]]]:
    """Centre and longest axial diameter of each tumour instance, in RAS mm.

    The long axis is measured as :mod:`rsuper.infer.recist` does: on the canonical RAS view of the grid,
    per axial slice the farthest pair of voxel centres (among the slice's convex-hull vertices), on the
    slice where it is longest; each end is then moved half a voxel outwards, so the segment's length is
    the RECIST long axis (``long_axis_mm`` of the tumour records).

    Args:
        labels: integer ``(I, J, K)`` instance ids.
        affine: ``(4, 4)`` voxel -> RAS mm.
        ids: the instances wanted (default: all present).

    Returns:
        instance id -> ``(centre, (end 1, end 2))``; ids absent from ``labels`` are left out.
    """
    import numpy as np
    from scipy import ndimage as ndi

    from rsuper.infer.grid import CanonicalGrid

    labels = np.asarray(labels)
    if labels.ndim != 3 or labels.dtype.kind not in "iub":
        raise ValueError(f"labels must be a 3D integer array, got {labels.dtype} {labels.shape}")
    grid = CanonicalGrid.of(labels.shape, np.asarray(affine, float))
    ras = np.asarray(grid.to_ras(labels)).astype(np.int64, copy=False)
    ras_affine = grid.ras_affine
    pixel = grid.ras_spacing_mm[:2]
    wanted = None if ids is None else set(int(i) for i in ids)
    out: dict[int, tuple[Point, tuple[Point, Point]]] = {}
    for value, box in enumerate(ndi.find_objects(ras), start=1):
        if box is None or (wanted is not None and value not in wanted):
            continue
        coords = np.argwhere(ras[box] == value) + np.array([s.start for s in box])
        centre = coords.mean(axis=0)
        a, b = _long_axis_voxels(coords, pixel)
        direction_mm = (b[:2] - a[:2]) * pixel
        length = float(np.linalg.norm(direction_mm))
        if length > 0:
            unit = direction_mm / length
            half = 0.5 * float(np.sqrt(((unit * pixel) ** 2).sum()))  # half a voxel along the axis, mm
            shift = np.r_[unit * half / pixel, 0.0]  # in voxels
        else:  # a one-voxel slice: one voxel wide along i
            shift = np.array([0.5, 0.0, 0.0])
        ends = np.stack([a - shift, b + shift, centre])
        world = ends @ ras_affine[:3, :3].T + ras_affine[:3, 3]
        out[value] = (_point(world[2]), (_point(world[0]), _point(world[1])))
    return out


def _long_axis_voxels(coords: Any, pixel: Any) -> tuple[Any, Any]:
    """The two voxel centres ``(3,)`` (canonical grid) farthest apart on the axial slice where that is longest."""
    import numpy as np
    from scipy.spatial import ConvexHull, QhullError
    from scipy.spatial.distance import pdist, squareform

    best = (-1.0, coords[0].astype(float), coords[0].astype(float))
    for k in np.unique(coords[:, 2]):
        part = coords[coords[:, 2] == k]
        points = part[:, :2] * pixel
        if len(points) >= 3:
            try:
                keep = ConvexHull(points).vertices
                part, points = part[keep], points[keep]
            except QhullError:  # collinear voxels: compare them all
                pass
        distances = squareform(pdist(points)) if len(points) > 1 else np.zeros((1, 1))
        i, j = np.unravel_index(int(np.argmax(distances)), distances.shape)
        if distances[i, j] > best[0]:
            best = (float(distances[i, j]), part[i].astype(float), part[j].astype(float))
    return best[1], best[2]
