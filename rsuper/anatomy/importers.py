"""Organ masks made elsewhere, converted to the R-Super label map.

:func:`import_masks` reads

* a folder of one binary NIfTI per structure (TotalSegmentator's
  ``segmentations/`` output, or R-Super's own ``split_labels`` output):
  ``liver.nii.gz``, ``kidney_left.nii.gz`` ...; each file name is looked up
  in the R-Super names, then TotalSegmentator's
  (:mod:`rsuper.anatomy.label_maps`); or
* a single multi-label NIfTI with its label map: an nnU-Net ``dataset.json``,
  a :meth:`LabelMap.to_dict` JSON file, a :class:`LabelMap`, or by default
  the R-Super map itself.

The result uses :data:`~rsuper.anatomy.labels.RSUPER_IMPORT_LABELS`: the
R-Super map plus ``liver`` (35) and ``pancreas`` (36) for whole organs
without sub-segments. A whole pancreas is the caller's cue to run
:func:`rsuper.anatomy.pancreas_split.split_pancreas`
(:attr:`ImportedMasks.has_whole_pancreas`); a whole liver stays whole (it
still counts as liver; it has no Couinaud segments).

Unknown structure names are listed in ``unknown_names`` and skipped, never
guessed. Known structures without an R-Super label (vertebrae, ribs ...) are
skipped with a message. An empty organ gives a message, not an error. Where
one-file-per-structure masks overlap, the later file (sorted by name) wins
and the overlap is reported; whole-organ files are painted first, so a
``liver.nii.gz`` next to ``liver_segment_*.nii.gz`` never hides the segments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from rsuper.anatomy.label_maps import is_known_name, read_label_map, rsuper_name_of
from rsuper.anatomy.labels import RSUPER_IMPORT_LABELS, WHOLE_LIVER_LABEL, WHOLE_PANCREAS_LABEL, LabelMap

#: Largest allowed difference between two affines, in mm.
AFFINE_TOLERANCE_MM = 1e-3
_NIFTI_SUFFIXES = (".nii.gz", ".nii")
_WHOLE_ORGANS = {WHOLE_LIVER_LABEL: "liver_segment_", WHOLE_PANCREAS_LABEL: "pancreas_"}


class GeometryError(ValueError):
    """A mask whose shape or affine differs from its reference image."""


@dataclass
class ImportedMasks:
    """Organ masks in the R-Super import map.

    Attributes:
        labels: uint8 ``(I, J, K)`` labels of ``label_map``.
        affine: ``(4, 4)`` voxel -> world RAS+ mm.
        label_map: :data:`RSUPER_IMPORT_LABELS`.
        unknown_names: structure names that were not recognised (skipped).
        messages: what else was noticed (empty organs, overlaps, skipped structures).
    """

    labels: np.ndarray
    affine: np.ndarray
    label_map: LabelMap = field(default_factory=lambda: RSUPER_IMPORT_LABELS)
    unknown_names: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    @property
    def has_whole_pancreas(self) -> bool:
        """Whether some pancreas still needs splitting into head / body / tail."""
        return bool((self.labels == WHOLE_PANCREAS_LABEL).any())


def import_masks(
    path: str | Path,
    reference_ct: str | Path | None = None,
    label_map: LabelMap | str | Path | None = None,
) -> ImportedMasks:
    """Read a mask folder or a multi-label NIfTI and convert it to the R-Super import map.

    Args:
        path: a folder of one NIfTI per structure, or one multi-label NIfTI.
        reference_ct: the CT the masks belong to; every mask must share its
            shape and affine (within :data:`AFFINE_TOLERANCE_MM`). Without
            it, the files of a folder are checked against the first one.
        label_map: only for a multi-label file: a :class:`LabelMap`, or the
            path of an nnU-Net ``dataset.json`` or a LabelMap JSON file;
            ``None`` means the values already follow :data:`RSUPER_IMPORT_LABELS`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        GeometryError: a mask's shape or affine differs from the reference (names both files).
        ValueError: a folder without NIfTI files, a non-3D image, a
            multi-label file with non-integer values or values missing from
            its label map, or ``label_map`` given with a folder.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    reference = _load_3d(Path(reference_ct)) if reference_ct is not None else None
    if path.is_dir():
        if label_map is not None:
            raise ValueError(f"{path}: a label map applies to a single multi-label file, not to a folder")
        return _import_folder(path, reference, Path(reference_ct) if reference_ct else None)
    img = _load_3d(path)
    if reference is not None:
        check_geometry(img, path, reference, Path(reference_ct))
    source = _as_label_map(label_map)
    data = np.asanyarray(img.dataobj)
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise ValueError(f"{path}: a multi-label mask must hold whole numbers, found fractions")
        data = data.astype(np.int64)
    try:
        labels, unknown, unused = _convert(data, source)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    result = ImportedMasks(labels, img.affine.copy(), unknown_names=unknown)
    _report_names(result, unknown, unused)
    return result


def to_rsuper_labels(array: np.ndarray, source_label_map: LabelMap) -> tuple[np.ndarray, list[str]]:
    """Translate a label array of any map to :data:`RSUPER_IMPORT_LABELS`.

    Each label's name goes through :func:`~rsuper.anatomy.label_maps.rsuper_name_of`
    (e.g. TotalSegmentator ``inferior_vena_cava`` -> ``postcava``, ``pancreas``
    -> the whole-pancreas label 36). Value 0 stays background.

    Args:
        array: non-negative integer ``(I, J, K)`` labels of ``source_label_map``.
        source_label_map: meaning of ``array``.

    Returns:
        ``(labels, unknown_names)``: uint8 labels (unrecognised and unused
        structures become 0) and the unrecognised names present in ``array``.

    Raises:
        ValueError: ``array`` holds values that ``source_label_map`` lacks.
    """
    labels, unknown, _ = _convert(np.asarray(array), source_label_map)
    return labels, unknown


def check_geometry(img: nib.spatialimages.SpatialImage, path: Path, reference: nib.spatialimages.SpatialImage,
                   reference_path: Path | None) -> None:
    """Raise :class:`GeometryError` unless ``img`` has the reference's shape and affine."""
    ref_name = str(reference_path) if reference_path is not None else "the reference"
    if tuple(img.shape[:3]) != tuple(reference.shape[:3]):
        raise GeometryError(
            f"{path}: shape {tuple(img.shape[:3])} differs from {ref_name} {tuple(reference.shape[:3])}"
        )
    gap = float(np.abs(img.affine - reference.affine).max())
    if gap > AFFINE_TOLERANCE_MM:
        raise GeometryError(f"{path}: affine differs from {ref_name} by up to {gap:.4g} mm "
                            "(another position, spacing or orientation); resample the mask onto the CT first")


def _load_3d(path: Path) -> nib.spatialimages.SpatialImage:
    """A NIfTI image with 3 dimensions (trailing singleton dimensions dropped)."""
    try:
        img = nib.load(str(path))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except Exception as exc:  # nibabel raises several types for unreadable files
        raise ValueError(f"{path}: not a readable image ({exc})") from None
    shape = img.shape
    if len(shape) > 3 and all(s == 1 for s in shape[3:]):
        img = nib.funcs.squeeze_image(img)
    if len(img.shape) != 3:
        raise ValueError(f"{path}: not a 3D image (shape {shape})")
    return img


def _as_label_map(label_map: LabelMap | str | Path | None) -> LabelMap:
    if label_map is None:
        return RSUPER_IMPORT_LABELS
    return label_map if isinstance(label_map, LabelMap) else read_label_map(label_map)


def _target_of(name: str) -> int | None:
    target = rsuper_name_of(name)
    return None if target is None else RSUPER_IMPORT_LABELS.label_of(target)


def _convert(array: np.ndarray, source: LabelMap) -> tuple[np.ndarray, list[str], list[str]]:
    """``(uint8 labels, unknown names, known-but-unused names)`` of the values present in ``array``."""
    if array.size and array.min() < 0:
        raise ValueError("negative label values")
    present = np.flatnonzero(np.bincount(array.ravel())) if array.size else np.zeros(0, int)
    missing = sorted(int(v) for v in present if int(v) not in source.labels and v != 0)
    if missing:
        raise ValueError(f"label values {missing[:10]} are not in label map {source.name!r}")
    lut = np.zeros(int(present.max()) + 1 if present.size else 1, np.uint8)
    unknown, unused = [], []
    for value in (int(v) for v in present if v != 0):
        name = source.name_of(value)
        target = _target_of(name)
        if target is not None:
            lut[value] = target
        elif is_known_name(name):
            unused.append(name)
        else:
            unknown.append(name)
    return lut[array], unknown, unused


def _report_names(result: ImportedMasks, unknown: list[str], unused: list[str]) -> None:
    if unknown:
        result.messages.append(f"unknown structures skipped: {', '.join(unknown)}")
    if unused:
        result.messages.append(f"structures without an R-Super label skipped: {', '.join(unused)}")


def _structure_name(path: Path) -> str:
    return next(path.name[: -len(s)] for s in _NIFTI_SUFFIXES if path.name.endswith(s))


def _import_folder(folder: Path, reference: nib.spatialimages.SpatialImage | None,
                   reference_path: Path | None) -> ImportedMasks:
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.name.endswith(_NIFTI_SUFFIXES))
    if not files:
        raise ValueError(f"{folder}: no NIfTI files (.nii.gz / .nii) in the folder")
    targets: list[tuple[Path, int]] = []
    unknown, unused = [], []
    for file in files:
        name = _structure_name(file)
        target = _target_of(name)
        if target is not None and target != 0:
            targets.append((file, target))
        elif target is None and not is_known_name(name):
            unknown.append(name)
        else:
            unused.append(name)
    # Whole organs first: their own sub-segment files then overwrite them without an overlap report.
    targets.sort(key=lambda item: (item[1] not in _WHOLE_ORGANS, item[0].name))
    if reference is None:
        reference, reference_path = _load_3d(files[0]), files[0]
    labels = np.zeros(reference.shape[:3], np.uint8)
    result = ImportedMasks(labels, reference.affine.copy(), unknown_names=unknown)
    _report_names(result, unknown, unused)
    for file, target in targets:
        img = _load_3d(file)
        check_geometry(img, file, reference, reference_path)
        mask = np.asanyarray(img.dataobj) >= 0.5
        if not mask.any():
            result.messages.append(f"{file.name}: empty (no voxels)")
            continue
        _paint(labels, mask, target, file.name, result.messages)
    return result


def _paint(labels: np.ndarray, mask: np.ndarray, target: int, file_name: str, messages: list[str]) -> None:
    """``labels[mask] = target``, reporting voxels taken from other structures."""
    previous = labels[mask]
    target_name = RSUPER_IMPORT_LABELS.name_of(target)
    taken = (previous != 0) & (previous != target)
    for value in _WHOLE_ORGANS:  # a whole organ giving way to its own sub-segment is expected
        if target_name.startswith(_WHOLE_ORGANS[value]):
            taken &= previous != value
    if taken.any():
        counts = np.bincount(previous[taken])
        lost = ", ".join(f"{RSUPER_IMPORT_LABELS.name_of(v)} ({counts[v]} voxels)" for v in np.nonzero(counts)[0])
        messages.append(f"{file_name} overlaps {lost}: the later file wins")
    labels[mask] = target
