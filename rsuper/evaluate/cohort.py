"""Find, read and score the cases of a prediction folder against a truth folder.

A folder holds one NIfTI per case, ``<case>.nii.gz`` (or ``.nii``), or one
sub-folder per case with a fixed file name inside, ``<case>/tumours.nii.gz``
(the layout of ``rsuper predict`` outputs and of phantom cohorts). Case ids
are the file or folder names; cases are matched by id.

:func:`score_case` turns one case's files into a record (the columns of the
per-case CSV); any failure of that case (a missing or unreadable file, a
geometry mismatch) becomes the record's ``error`` instead of an exception, so
one bad case never stops the others.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsuper.evaluate.metrics import evaluate_case
from rsuper.evaluate.organs import DEFAULT_MARGIN_MM, organ_codes, split_by_organ
from rsuper.infer.postprocess import instances

#: File name inside ``<case>/`` for each kind of input folder.
CASE_FILE_NAMES: dict[str, str] = {
    "pred": "tumours.nii.gz",
    "truth": "tumours.nii.gz",
    "organs": "organs.nii.gz",
    "probabilities": "probabilities.nii.gz",
}
_SUFFIXES = (".nii.gz", ".nii")
#: Largest difference (mm) between two affines that still counts as the same grid.
AFFINE_TOLERANCE_MM = 1e-3
#: Slices of a probability map read at once (bounds memory on a full CT).
_SLAB = 32


class CaseError(ValueError):
    """A problem with one case's files; its message is reported for that case."""


def find_case_files(folder: Path, inner_name: str) -> tuple[dict[str, Path], dict[str, str]]:
    """Case files of ``folder``: ``<case>.nii.gz`` / ``<case>.nii`` and ``<case>/<inner_name>``.

    Returns:
        ``(paths, problems)``: case id -> file, and case id -> why it was left
        out (two files for one case).
    """
    paths: dict[str, Path] = {}
    problems: dict[str, str] = {}
    for entry in sorted(Path(folder).iterdir()):
        if entry.is_dir() and (entry / inner_name).is_file():
            case_id, path = entry.name, entry / inner_name
        else:
            suffix = next((s for s in _SUFFIXES if entry.name.endswith(s)), None)
            if suffix is None or not entry.is_file():
                continue
            case_id, path = entry.name[: -len(suffix)], entry
        if case_id in paths:
            problems[case_id] = f"two files in {folder}: {paths[case_id].name} and {path.relative_to(folder)}"
        else:
            paths[case_id] = path
    for case_id in problems:
        paths.pop(case_id, None)
    return paths, problems


@dataclass(frozen=True)
class Grid:
    """Voxel grid of a volume: ``shape`` (I, J, K), ``affine`` 4x4 (mm), ``spacing_mm`` (3,)."""

    shape: tuple[int, int, int]
    affine: np.ndarray
    spacing_mm: tuple[float, float, float]


def _read_errors() -> tuple[type[BaseException], ...]:
    """What nibabel raises on a missing, corrupt or truncated file."""
    from nibabel.filebasedimages import ImageFileError

    return OSError, EOFError, ValueError, zlib.error, ImageFileError


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (nibabel's span several)."""
    return " ".join(str(exc).split())


def _open(path: Path, what: str) -> Any:
    import nibabel as nib

    try:
        return nib.load(str(path), keep_file_open=True)
    except _read_errors() as exc:
        raise CaseError(f"cannot read the {what} {path}: {_one_line(exc)}") from None


def _grid(image: Any, what: str, path: Path, allow_4d: bool = False) -> Grid:
    shape = tuple(int(n) for n in image.shape)
    if len(shape) != 3 and not (allow_4d and len(shape) == 4):
        raise CaseError(f"the {what} {path} has shape {shape}; expected a 3-D volume")
    affine = np.asarray(image.affine, dtype=np.float64)
    spacing = tuple(float(z) for z in image.header.get_zooms()[:3])
    return Grid(shape[:3], affine, spacing)  # type: ignore[arg-type]


def _same_grid(reference: Grid, other: Grid, what: str) -> None:
    if other.shape != reference.shape:
        raise CaseError(f"geometry mismatch: the {what} has shape {other.shape}, the truth {reference.shape}")
    difference = float(np.max(np.abs(other.affine - reference.affine)))
    if difference > AFFINE_TOLERANCE_MM:
        raise CaseError(f"geometry mismatch: the {what}'s affine differs from the truth's by up to {difference:.4g} "
                        f"mm (same shape {reference.shape}); resample it onto the truth grid")


def _read(image: Any, what: str, path: Path) -> np.ndarray:
    try:
        return np.asanyarray(image.dataobj)
    except _read_errors() as exc:  # a truncated or corrupt file fails only when its data are read
        raise CaseError(f"cannot read the {what} {path}: {_one_line(exc)}") from None


def _integer_volume(data: np.ndarray, what: str, path: Path) -> np.ndarray:
    if np.issubdtype(data.dtype, np.integer) or data.dtype == bool:
        return data
    if not np.array_equal(np.rint(data), data):
        raise CaseError(f"the {what} {path} holds non-integer values (a probability map?); expected a mask "
                        f"(probabilities go to --probabilities)")
    return data.astype(np.int32)


def truth_instances(data: np.ndarray) -> np.ndarray:
    """Tumour instance map from a truth volume: values ``{0, 1}`` are a binary mask, split into
    26-connected components; other values are instance ids, kept as they are."""
    if data.dtype == bool or int(data.max(initial=0)) <= 1:
        return instances(data > 0)[0]
    if int(data.min(initial=0)) < 0:
        raise CaseError("the truth holds negative values; expected 0 = background and positive tumour ids")
    return data


def max_probability(image: Any, path: Path) -> float:
    """Largest finite value of a probability map, read a slab of slices at a time (any of the map's channels)."""
    proxy = image.dataobj
    best = -np.inf
    for start in range(0, image.shape[2], _SLAB):
        try:
            slab = np.asarray(proxy[:, :, start:start + _SLAB])
        except _read_errors() as exc:
            raise CaseError(f"cannot read the probability map {path}: {_one_line(exc)}") from None
        finite = slab[np.isfinite(slab)]
        if finite.size:
            best = max(best, float(finite.max()))
    if not np.isfinite(best):
        raise CaseError(f"the probability map {path} holds no finite value")
    return best


def _foreground_box(mask: np.ndarray, spacing_mm: Sequence[float], margin_mm: float) -> tuple[slice, ...]:
    """Bounding box of ``mask`` grown by ``margin_mm`` (clipped to the grid); one voxel when it is empty."""
    box = []
    for axis, (size, spacing) in enumerate(zip(mask.shape, spacing_mm)):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(mask.any(axis=others))
        if present.size == 0:
            return (slice(0, 1),) * mask.ndim
        grow = int(np.ceil(margin_mm / spacing))
        box.append(slice(max(int(present[0]) - grow, 0), min(int(present[-1]) + 1 + grow, size)))
    return tuple(box)


def _prefixed(record: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {f"{prefix}{k}": v for k, v in record.items() if k != "case_id"}


def score_case(
    case_id: str,
    pred_path: Path | None,
    truth_path: Path | None,
    *,
    organs_path: Path | None = None,
    probabilities_path: Path | None = None,
    organs: Sequence[str] = (),
    nsd_tolerance_mm: float = 2.0,
    min_overlap_voxels: int = 1,
) -> dict[str, Any]:
    """One case's record: :func:`rsuper.evaluate.metrics.evaluate_case` plus the files' status.

    Args:
        case_id: the case.
        pred_path: predicted tumour mask (non-zero = tumour); ``None`` if missing.
        truth_path: truth tumour instance map (or binary mask); ``None`` if missing.
        organs_path: organ label map (``--organs``), needed when ``organs`` is not empty.
        probabilities_path: tumour probability map (3-D, or 4-D with channels
            last); its maximum is the case's ``max_probability``. A problem with
            it is a ``warning`` (the case is scored, without ``max_probability``).
        organs: organs to split the metrics by (columns ``<organ>_<metric>``).
        nsd_tolerance_mm: NSD tolerance (mm).
        min_overlap_voxels: see :func:`rsuper.evaluate.metrics.detection`.

    Returns:
        ``{"case_id", "status": "ok" | "error", "error", "warning",
        **evaluate_case(...), "max_probability", **{<organ>_<key>: ...}}``;
        with ``status == "error"`` only the first four are filled.
    """
    record: dict[str, Any] = {"case_id": case_id, "status": "ok", "error": "", "warning": ""}
    try:
        if truth_path is None:
            raise CaseError("no truth file for this prediction")
        if pred_path is None:
            raise CaseError("no prediction file for this case")
        truth_image = _open(truth_path, "truth")
        grid = _grid(truth_image, "truth", truth_path)
        pred_image = _open(pred_path, "prediction")
        _same_grid(grid, _grid(pred_image, "prediction", pred_path), "prediction")
        truth = truth_instances(_integer_volume(_read(truth_image, "truth", truth_path), "truth", truth_path))
        pred = _integer_volume(_read(pred_image, "prediction", pred_path), "prediction", pred_path) != 0
        organ_labels = None
        if organs:
            if organs_path is None:
                raise CaseError("no organ mask for this case (--organs)")
            organ_image = _open(organs_path, "organ mask")
            _same_grid(grid, _grid(organ_image, "organ mask", organs_path), "organ mask")
            organ_labels = _integer_volume(_read(organ_image, "organ mask", organs_path), "organ mask", organs_path)
    except CaseError as exc:
        record.update(status="error", error=str(exc))
        return record
    score = None
    if probabilities_path is not None:
        try:
            prob_image = _open(probabilities_path, "probability map")
            _same_grid(grid, _grid(prob_image, "probability map", probabilities_path, allow_4d=True),
                       "probability map")
            score = max_probability(prob_image, probabilities_path)
        except CaseError as exc:
            record["warning"] = f"{exc}; the case is left out of the AUC"
    # Every metric depends only on the voxels near the tumours: work in their bounding box (plus the
    # organ-search margin), not on the whole CT.
    box = _foreground_box(pred | (truth != 0), grid.spacing_mm, DEFAULT_MARGIN_MM + max(grid.spacing_mm))
    pred, truth = pred[box], truth[box]
    codes = None if organ_labels is None else organ_codes(organ_labels[box], organs)
    record.update(_prefixed(evaluate_case(pred, grid.spacing_mm, truth, case_id=case_id,
                                          nsd_tolerance_mm=nsd_tolerance_mm,
                                          min_overlap_voxels=min_overlap_voxels), ""))
    record["max_probability"] = score
    if codes is not None:
        for organ, (pred_o, truth_o) in split_by_organ(pred, truth, codes, organs, grid.spacing_mm).items():
            record.update(_prefixed(evaluate_case(pred_o, grid.spacing_mm, truth_o, case_id=case_id,
                                                  nsd_tolerance_mm=nsd_tolerance_mm,
                                                  min_overlap_voxels=min_overlap_voxels), f"{organ}_"))
    return record


def score_folders(
    pred_dir: Path,
    truth_dir: Path,
    *,
    organs_dir: Path | None = None,
    probabilities_dir: Path | None = None,
    organs: Sequence[str] = (),
    nsd_tolerance_mm: float = 2.0,
    min_overlap_voxels: int = 1,
    progress: str = "none",
) -> list[dict[str, Any]]:
    """Score every case found in ``pred_dir`` or ``truth_dir`` (:func:`score_case`), in case id order.

    A case with a file on one side only, or two files on one side, is an
    ``error`` record; a case without probability map (when
    ``probabilities_dir`` is given) is scored with a ``warning``.

    Args:
        pred_dir, truth_dir, organs_dir, probabilities_dir: the input folders.
        organs, nsd_tolerance_mm, min_overlap_voxels: see :func:`score_case`.
        progress: :class:`rsuper.progress.Progress` mode.
    """
    from rsuper.progress import Progress

    found = {kind: find_case_files(folder, CASE_FILE_NAMES[kind]) if folder is not None else ({}, {})
             for kind, folder in (("pred", pred_dir), ("truth", truth_dir), ("organs", organs_dir),
                                  ("probabilities", probabilities_dir))}
    paths = {kind: value[0] for kind, value in found.items()}
    problems = {case_id: reason for _, value in found.items() for case_id, reason in value[1].items()}
    case_ids = sorted(set(paths["pred"]) | set(paths["truth"]) | set(problems))
    records = []
    bar = Progress(len(case_ids), mode=progress, desc="evaluate")
    for case_id in case_ids:
        if case_id in problems:
            record = {"case_id": case_id, "status": "error", "error": problems[case_id], "warning": ""}
        else:
            record = score_case(
                case_id, paths["pred"].get(case_id), paths["truth"].get(case_id),
                organs_path=paths["organs"].get(case_id), probabilities_path=paths["probabilities"].get(case_id),
                organs=organs, nsd_tolerance_mm=nsd_tolerance_mm, min_overlap_voxels=min_overlap_voxels,
            )
            if probabilities_dir is not None and case_id not in paths["probabilities"] and record["status"] == "ok":
                record["warning"] = "no probability map; the case is left out of the AUC"
        if record["status"] == "error":
            bar.event("error", case_id=case_id, reason=record["error"])
        records.append(record)
        bar.update(case_id=case_id)
    bar.close(scored=sum(r["status"] == "ok" for r in records), errors=sum(r["status"] == "error" for r in records))
    return records
