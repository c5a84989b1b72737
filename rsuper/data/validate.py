"""Dataset integrity check of a manifest (in the spirit of nnU-Net's ``verify_dataset_integrity``).

:func:`validate_manifest` lists every problem of every case (it never stops
at the first): missing or unreadable files, geometry mismatches, organ masks
with labels outside the label map, and the facts that cannot become report
supervision (docs/dataset-manifest.md has the table of codes). Headers are
read with nibabel (cheap); voxel data is loaded only for the organ and tumour
masks, never for the CT.

Severities: ``error`` (the case cannot be used as given), ``warning`` (the
case is used with less supervision), ``info`` (a remark; the case is ok).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from rsuper.anatomy.labels import LabelMap, labels_for
from rsuper.data.classes import DEFAULT_LESION_ORGANS, channel_organ
from rsuper.progress import Progress
from rsuper.report.schema import ReportFacts

from .manifest import MAX_PLAUSIBLE_DIAMETER_MM, Manifest, ManifestRow, Problem

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = [
    "Problem", "ValidationSummary", "AFFINE_TOL_MM", "geometry_mismatch", "integer_labels", "open_nifti",
    "validate_row", "validate_manifest", "summarize", "problems_table", "print_validation", "problems_to_dict",
]

#: Largest difference between two affines (mm) still counted as the same grid.
AFFINE_TOL_MM = 1e-3
#: Tumours per lesion channel that a sample can carry (volume/diameter padding).
DEFAULT_MAX_TUMOURS = 10


def open_nifti(path: Path) -> tuple[Any | None, str | None, str | None]:
    """Open a NIfTI header: ``(image, code, reason)``; image ``None`` with a problem code on failure.

    Codes: ``missing_file``, ``unreadable``, ``not_3d``.
    """
    if not path.is_file():
        return None, "missing_file", f"file not found: {path}"
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types (ImageFileError, EOFError, zlib.error ...)
        return None, "unreadable", f"cannot read {path.name}: {exc}"
    if len(img.shape) != 3:
        return None, "not_3d", f"{path.name} has shape {tuple(img.shape)}, not 3D"
    return img, None, None


def geometry_mismatch(ref: Any, other: Any, atol_mm: float = AFFINE_TOL_MM) -> str | None:
    """Why ``other`` is not on the grid of ``ref`` (shape, then affine within ``atol_mm``), or ``None``."""
    if tuple(other.shape) != tuple(ref.shape):
        return f"shape {tuple(other.shape)} differs from the ct's {tuple(ref.shape)}"
    diff = float(np.abs(np.asarray(other.affine) - np.asarray(ref.affine)).max())
    if diff > atol_mm:
        return f"affine differs from the ct's by up to {diff:.3g} mm (tolerance {atol_mm:g} mm)"
    return None


def integer_labels(data: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """The array as non-negative integers, or why it is not a label image."""
    if data.dtype.kind == "f":
        values = np.unique(data)
        bad = values[(values < 0) | (values != np.round(values))]
        if bad.size:
            return None, f"non-integer or negative values {bad[:5].tolist()}"
        return data.astype(np.int32), None
    if data.dtype.kind == "b":
        return data.view(np.uint8), None
    if data.dtype.kind not in "iu":
        return None, f"data type {data.dtype} is not a label type"
    if data.dtype.kind == "i" and data.size and data.min() < 0:
        return None, f"negative value {int(data.min())}"
    return data, None


def _load_data(img: Any, row: ManifestRow, kind: str, out: list[Problem]) -> np.ndarray | None:
    """Voxel data of a label image as non-negative integers, or ``None`` (problem recorded)."""
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # truncated or corrupt compressed data
        out.append(Problem(row.label, "error", "unreadable", f"cannot read the {kind} voxels: {exc}"))
        return None
    labels, why = integer_labels(data)
    if why:
        out.append(Problem(row.label, "error", "unknown_labels", f"{kind} mask: {why}"))
    return labels


def _ras_extent_mm(bbox: tuple[slice, ...], affine: np.ndarray) -> np.ndarray:
    """Bounding-box size ``(3,)`` in mm along R, A, S of voxel slices on a grid with ``affine``."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    extent_vox = np.array([s.stop - s.start for s in bbox], float) * spacing
    ornt = nib.io_orientation(affine)
    out = np.zeros(3)
    out[ornt[:, 0].astype(int)] = extent_vox
    return out


@dataclass
class _Organs:
    """The organ mask of one case, summarised for the facts checks."""

    present: set[int]
    boxes: list[tuple[slice, ...] | None]
    affine: np.ndarray

    def box_of(self, values: Iterable[int]) -> tuple[slice, ...] | None:
        """Union bounding box (voxel slices) of several labels, ``None`` if none is present."""
        boxes = [self.boxes[v - 1] for v in values if 0 < v <= len(self.boxes) and self.boxes[v - 1] is not None]
        if not boxes:
            return None
        return tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(3))


def _facts_problems(
    row: ManifestRow, facts: ReportFacts, organs: _Organs | None, label_map: LabelMap,
    lesion_organs: Sequence[str], patch_mm: np.ndarray | None, max_tumours: int,
) -> list[Problem]:
    """Problems of the report facts as report supervision (rows without a tumour mask)."""
    out: list[Problem] = []
    tumours = [t for t in facts.tumours if channel_organ(t.organ, tuple(lesion_organs)) is not None]
    if tumours and row.organs is None:
        names = sorted({t.organ for t in tumours})
        out.append(Problem(row.label, "error", "no_organ_mask",
                           f"facts report tumours in {', '.join(names)} but the case has no organ mask: "
                           "report supervision is impossible"))
    per_channel: dict[str, int] = {}
    flagged: set[tuple[str, str]] = set()
    for t in tumours:
        channel = channel_organ(t.organ, tuple(lesion_organs)) or t.organ
        per_channel[channel] = per_channel.get(channel, 0) + t.count
        for d in t.diameters_mm:
            if not 0.0 < d <= MAX_PLAUSIBLE_DIAMETER_MM:
                out.append(Problem(row.label, "error", "size_out_of_range",
                                   f"{t.organ} tumour diameter {d:g} mm outside (0, {MAX_PLAUSIBLE_DIAMETER_MM:g}] mm"))
        if (not t.size_known or t.count_is_lower_bound) and ("unknown_size", channel) not in flagged:
            flagged.add(("unknown_size", channel))
            what = "an unknown size" if not t.size_known else "an unknown number (\"multiple\")"
            out.append(Problem(row.label, "warning", "unknown_size",
                               f"a {t.organ} tumour has {what}: {channel} is excluded from report supervision "
                               "(the case is kept for the other organs)"))
        if organs is None:  # no organ mask (reported above) or a broken one (its own error)
            continue
        values = labels_for(t.organ, None, label_map)
        if not organs.present.intersection(values):
            if ("organ_absent", t.organ) not in flagged:
                flagged.add(("organ_absent", t.organ))
                out.append(Problem(row.label, "error", "organ_absent",
                                   f"facts report a {t.organ} tumour but the organ mask has no {t.organ} "
                                   f"(labels {values or 'none in the label map'})"))
            continue
        if patch_mm is not None:
            try:
                seg_values = labels_for(t.organ, t.subsegment, label_map)
            except KeyError:  # the sub-segment has no mask of its own: the whole organ is the segment
                seg_values = values
            box = organs.box_of(seg_values)
            name = f"{t.organ} {t.subsegment}" if t.subsegment else t.organ
            if box is not None and ("segment_too_large", name) not in flagged:
                extent = _ras_extent_mm(box, organs.affine)
                if np.any(extent > patch_mm):
                    flagged.add(("segment_too_large", name))
                    out.append(Problem(row.label, "warning", "segment_too_large",
                                       f"{name} spans {' x '.join(f'{e:.0f}' for e in extent)} mm (R x A x S), "
                                       f"more than the patch {' x '.join(f'{p:g}' for p in patch_mm)} mm: "
                                       "it cannot be used for report supervision"))
    for channel, n in per_channel.items():
        if n > max_tumours:
            out.append(Problem(row.label, "warning", "too_many_tumours",
                               f"{n} {channel} tumours, more than the {max_tumours} a sample carries: "
                               "the extra ones are dropped"))
    return out


def validate_row(
    row: ManifestRow,
    label_map: LabelMap,
    lesion_organs: Sequence[str] = DEFAULT_LESION_ORGANS,
    patch_size_mm: float | Sequence[float] | None = None,
    max_tumours: int = DEFAULT_MAX_TUMOURS,
    atol_mm: float = AFFINE_TOL_MM,
) -> list[Problem]:
    """Every problem of one case (the row's reading problems first)."""
    out = list(row.problems)
    images: dict[str, Any] = {}
    for kind in ("ct", "organs", "tumours"):
        path = getattr(row, kind)
        if path is None:
            continue
        img, code, reason = open_nifti(path)
        if img is None:
            out.append(Problem(row.label, "error", code or "unreadable", f"{kind}: {reason}"))
        else:
            images[kind] = img
    for kind in ("organs", "tumours"):
        if "ct" in images and kind in images:
            why = geometry_mismatch(images["ct"], images[kind], atol_mm)
            if why:
                out.append(Problem(row.label, "error", "geometry_mismatch", f"{kind}: {why}"))
                del images[kind]
    organs_data = _load_data(images["organs"], row, "organs", out) if "organs" in images else None
    tumours_data = _load_data(images["tumours"], row, "tumours", out) if "tumours" in images else None
    organs: _Organs | None = None
    if organs_data is not None:
        boxes = ndi.find_objects(organs_data)
        present = {i + 1 for i, b in enumerate(boxes) if b is not None}
        unknown = sorted(present - set(label_map.labels))
        if unknown:
            out.append(Problem(row.label, "error", "unknown_labels",
                               f"organ mask has labels {unknown[:10]} not in label map {label_map.name!r}"))
        organs = _Organs(present, boxes, np.asarray(images["organs"].affine))
    if tumours_data is not None and organs_data is not None:
        outside = int(np.count_nonzero((tumours_data > 0) & (organs_data == 0)))
        if outside:
            out.append(Problem(row.label, "warning", "tumour_outside_organs",
                               f"{outside} tumour voxels lie outside every organ of the organ mask"))
    if row.tumours is not None and row.facts is not None:
        out.append(Problem(row.label, "info", "mask_and_facts",
                           "both a tumour mask and facts are given: the mask is used, the facts are not"))
    elif row.tumours is None and row.facts is None and row.facts_path is None:
        out.append(Problem(row.label, "warning", "no_tumour_supervision",
                           "neither a tumour mask nor facts: no tumour supervision (organs only)"))
    elif row.tumours is None and row.facts is not None:
        patch = None if patch_size_mm is None else np.broadcast_to(np.asarray(patch_size_mm, float), (3,))
        out.extend(_facts_problems(row, row.facts, organs, label_map, lesion_organs, patch, max_tumours))
    return out


def validate_manifest(
    manifest: Manifest,
    lesion_organs: Sequence[str] = DEFAULT_LESION_ORGANS,
    patch_size_mm: float | Sequence[float] | None = None,
    max_tumours: int = DEFAULT_MAX_TUMOURS,
    atol_mm: float = AFFINE_TOL_MM,
    progress: str = "none",
) -> list[Problem]:
    """All problems of all cases, in manifest order (manifest-level problems first).

    Args:
        manifest: from :func:`rsuper.data.manifest.read_manifest`.
        lesion_organs: organs with a lesion channel; facts of other organs are not checked.
        patch_size_mm: training patch size in mm (one value or R, A, S); when
            given, sub-segments whose bounding box exceeds it are reported.
        max_tumours: tumours per lesion channel a sample can carry.
        atol_mm: affine tolerance between the ct and its masks, in mm.
        progress: :class:`rsuper.progress.Progress` mode.
    """
    problems = list(manifest.problems)
    bar = Progress(len(manifest.rows), mode=progress, desc="validate")
    for row in manifest.rows:
        found = validate_row(row, manifest.label_map, lesion_organs, patch_size_mm, max_tumours, atol_mm)
        problems.extend(found)
        bar.update(1, case_id=row.label, errors=sum(p.severity == "error" for p in found))
    bar.close()
    return problems


@dataclass
class ValidationSummary:
    """Counts of a validation: cases ok / with warnings only / with errors, and problem totals."""

    n_cases: int
    ok: int
    with_warnings: int
    with_errors: int
    n_errors: int
    n_warnings: int

    def as_dict(self) -> dict[str, int]:
        """Plain dict for JSON output."""
        return asdict(self)


def summarize(manifest: Manifest, problems: Sequence[Problem]) -> ValidationSummary:
    """Per-case counts (``info`` does not count against a case)."""
    worst: dict[str, str] = {}
    for p in problems:
        if p.severity == "error" or (p.severity == "warning" and worst.get(p.case_id) != "error"):
            worst[p.case_id] = p.severity
    labels = [r.label for r in manifest.rows]
    with_errors = sum(worst.get(c) == "error" for c in labels)
    with_warnings = sum(worst.get(c) == "warning" for c in labels)
    return ValidationSummary(
        n_cases=len(labels), ok=len(labels) - with_errors - with_warnings, with_warnings=with_warnings,
        with_errors=with_errors, n_errors=sum(p.severity == "error" for p in problems),
        n_warnings=sum(p.severity == "warning" for p in problems),
    )


def problems_to_dict(manifest: Manifest, problems: Sequence[Problem]) -> dict[str, Any]:
    """JSON-ready ``{"manifest", "summary", "problems": [...]}``."""
    return {
        "manifest": str(manifest.path),
        "summary": summarize(manifest, problems).as_dict(),
        "problems": [asdict(p) for p in problems],
    }


_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


def problems_table(problems: Sequence[Problem]) -> "Table":
    """A rich table: one row per problem (case, severity, code, message)."""
    from rich.table import Table

    table = Table(title="Dataset problems", show_lines=False)
    for col in ("case", "severity", "code", "message"):
        table.add_column(col, overflow="fold")
    for p in problems:
        table.add_row(p.case_id, f"[{_STYLE[p.severity]}]{p.severity}[/]", p.code, p.message)
    return table


def print_validation(
    manifest: Manifest, problems: Sequence[Problem], console: "Console | None" = None
) -> ValidationSummary:
    """Print the problem table (if any) and the summary line; returns the summary."""
    from rich.console import Console

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)  # logs and pipes: do not fold the table to 80 columns
    summary = summarize(manifest, problems)
    if problems:
        console.print(problems_table(problems))
    console.print(
        f"{summary.n_cases} cases: {summary.ok} ok, {summary.with_warnings} with warnings, "
        f"{summary.with_errors} with errors ({summary.n_errors} errors, {summary.n_warnings} warnings)"
    )
    return summary
