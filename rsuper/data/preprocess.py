"""Preprocess the cases of a manifest into the cache (rsuper.data.cache), resumably and in parallel.

Per case (as the reference R-Super pipeline, with RAS instead of RAI):

1. load the CT and its masks with nibabel; the masks must share the CT's
   grid (shape, affine within :data:`~rsuper.data.validate.AFFINE_TOL_MM`);
2. reorient to canonical RAS+ (``nib.as_closest_canonical``);
3. resample to ``spacing_mm`` (default 1 mm isotropic) keeping the field of
   view: the new grid's outer voxel edges coincide with the old ones, the new
   shape is ``round(n * old / new)`` per axis. The image is interpolated with
   ``scipy.ndimage.affine_transform`` of ``image_order`` 1 (trilinear; default:
   no overshoot, no spline prefilter memory) or 3 (cubic B-spline, as the
   reference's in-plane resampling); label images with order 0 (nearest);
4. clip the HU to ``hu_clip`` (default [-991, 500]) and z-score with the
   volume's own mean and standard deviation;
5. organs -> uint8; tumours -> uint16 instances: a binary mask (at most one
   non-zero value) is split into connected components (26-connectivity,
   ``scipy.ndimage.label``), an instance map keeps its values.

A case is skipped when its ``meta.json`` holds the same source fingerprint
(paths, sizes and modification times of the NIfTI files; a hash of the facts,
label map and split) and options. When only the facts, label map or split
changed, only ``meta.json`` is rewritten. A broken case goes to
``errors.jsonl`` and never stops the others.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from rsuper.anatomy.labels import LabelMap
from rsuper.progress import Progress

from . import cache
from .manifest import Manifest, ManifestRow
from .validate import AFFINE_TOL_MM, geometry_mismatch, integer_labels, open_nifti

#: 26-connectivity: voxels touching by a corner belong to the same tumour.
INSTANCE_STRUCTURE = np.ones((3, 3, 3), bool)


class CaseError(ValueError):
    """A case that cannot be preprocessed (the message is the reason)."""


@dataclass(frozen=True)
class PreprocessOptions:
    """How cases are preprocessed (all of it is part of the cache fingerprint).

    Attributes:
        spacing_mm: target voxel size along R, A, S in mm.
        hu_clip: HU range kept before z-scoring.
        image_order: spline order of the image interpolation, 1 (trilinear) or 3 (cubic).
    """

    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    hu_clip: tuple[float, float] = (-991.0, 500.0)
    image_order: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "spacing_mm", tuple(float(v) for v in self.spacing_mm))
        object.__setattr__(self, "hu_clip", tuple(float(v) for v in self.hu_clip))
        if len(self.spacing_mm) != 3 or min(self.spacing_mm) <= 0:
            raise ValueError(f"spacing_mm must be 3 positive values, got {self.spacing_mm}")
        if len(self.hu_clip) != 2 or not self.hu_clip[0] < self.hu_clip[1]:
            raise ValueError(f"hu_clip must be (low, high) with low < high, got {self.hu_clip}")
        if self.image_order not in (1, 3):
            raise ValueError(f"image_order must be 1 or 3, got {self.image_order}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (stored in ``meta.json`` and ``index.json`` as ``preprocess``)."""
        return {"spacing_mm": list(self.spacing_mm), "hu_clip": list(self.hu_clip), "image_order": self.image_order}


@dataclass
class PreprocessSummary:
    """Outcome of :func:`preprocess_manifest`.

    Attributes:
        done: cases written (or whose ``meta.json`` was updated) in this run.
        skipped: cases already cached with the same fingerprint.
        failed: ``(case_id, reason)`` of the cases that could not be preprocessed.
        elapsed_s: wall time in seconds.
    """

    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {"done": self.done, "skipped": self.skipped, "failed": [list(f) for f in self.failed],
                "elapsed_s": round(self.elapsed_s, 3)}


# ------------------------------------------------------------------ geometry and intensities
def target_grid(
    shape: Sequence[int], affine: np.ndarray, spacing_mm: Sequence[float]
) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray, np.ndarray]:
    """The resampled grid that keeps the field of view.

    Args:
        shape: source grid size (I, J, K).
        affine: ``(4, 4)`` source voxel -> world mm.
        spacing_mm: target voxel size along I, J, K in mm.

    Returns:
        ``(new_shape, scale (3,), offset (3,), new_affine (4, 4))`` with
        source index = ``scale * new index + offset``.
    """
    old = np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)
    new = np.asarray(spacing_mm, float)
    n = np.asarray(shape, float)
    new_shape = tuple(int(v) for v in np.maximum(1, np.rint(n * old / new)))
    scale = new / old
    offset = 0.5 * scale - 0.5
    step = np.eye(4)
    step[:3, :3] = np.diag(scale)
    step[:3, 3] = offset
    return new_shape, scale, offset, np.asarray(affine, float) @ step  # type: ignore[return-value]


def resample(data: np.ndarray, shape: Sequence[int], scale: np.ndarray, offset: np.ndarray, order: int,
             dtype: np.dtype | type) -> np.ndarray:
    """Resample ``data`` (I, J, K) onto ``shape`` (source index = scale * index + offset) as ``dtype``."""
    return ndi.affine_transform(data, scale, offset, output_shape=tuple(shape), output=dtype, order=order,
                                mode="nearest", prefilter=order > 1)


def normalise(hu: np.ndarray, hu_clip: Sequence[float]) -> np.ndarray:
    """Clip HU to ``hu_clip`` and z-score with the volume's own mean/std; float32 (I, J, K)."""
    img = np.clip(hu, hu_clip[0], hu_clip[1]).astype(np.float32, copy=False)
    mean = float(img.mean(dtype=np.float64))
    # np.std(dtype=float64) makes full-size float64 temporaries (8 bytes/voxel, ~10x slower on a CT);
    # the same two-pass sum of squares over float64 chunks.
    flat = img.reshape(-1)
    sq = 0.0
    for start in range(0, flat.size, 1 << 22):
        chunk = flat[start:start + (1 << 22)].astype(np.float64)
        chunk -= mean
        sq += float(np.dot(chunk, chunk))
    std = (sq / max(flat.size, 1)) ** 0.5
    img -= mean
    if std > 0:
        img /= std
    return img


def tumour_instances(mask: np.ndarray) -> np.ndarray:
    """uint16 instance map (I, J, K) of a non-negative integer mask with values < 65536.

    A binary mask (at most one distinct non-zero value) is split into connected
    components (26-connectivity) numbered 1..N; an instance map keeps its values.
    """
    values = np.unique(mask)
    values = values[values != 0]
    if values.size == 1:
        labelled, _ = ndi.label(mask != 0, structure=INSTANCE_STRUCTURE)
        return labelled.astype(np.uint16)
    return mask.astype(np.uint16)


# ------------------------------------------------------------------ one case
def _label_data(img: Any, kind: str) -> np.ndarray:
    data, why = integer_labels(np.asanyarray(img.dataobj))
    if why:
        raise CaseError(f"{kind} mask: {why}")
    return data


def preprocess_case(
    row: ManifestRow, options: PreprocessOptions
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """Preprocess one case in memory.

    Returns:
        ``(image float32, organs uint8 | None, tumours uint16 | None, affine (4, 4))``
        on the canonical RAS+ grid of spacing ``options.spacing_mm``.

    Raises:
        CaseError: missing or unreadable file, not 3D, geometry mismatch, bad label values.
    """
    images: dict[str, Any] = {}
    for kind in ("ct", "organs", "tumours"):
        path = getattr(row, kind)
        if path is None:
            continue
        img, _, reason = open_nifti(path)
        if img is None:
            raise CaseError(f"{kind}: {reason}")
        images[kind] = img
    if "ct" not in images:
        raise CaseError("no ct path")
    for kind in ("organs", "tumours"):
        if kind in images:
            why = geometry_mismatch(images["ct"], images[kind], AFFINE_TOL_MM)
            if why:
                raise CaseError(f"geometry mismatch: {kind}: {why}")
    try:
        canon = {k: nib.as_closest_canonical(v) for k, v in images.items()}
        # nibabel gives Fortran-ordered arrays; scipy's resampling runs faster on C order
        hu = np.ascontiguousarray(canon["ct"].get_fdata(dtype=np.float32))
        labels = {k: np.ascontiguousarray(_label_data(canon[k], k)) for k in ("organs", "tumours") if k in canon}
    except CaseError:
        raise
    except Exception as exc:  # corrupt compressed data surfaces only when the voxels are read
        raise CaseError(f"cannot read the voxels: {exc}") from exc
    shape, scale, offset, affine = target_grid(hu.shape, canon["ct"].affine, options.spacing_mm)
    image = normalise(resample(hu, shape, scale, offset, options.image_order, np.float32), options.hu_clip)
    organs = tumours = None
    if "organs" in labels:
        data = labels["organs"]
        if data.size and int(data.max()) > np.iinfo(np.uint8).max:
            raise CaseError(f"organ label {int(data.max())} does not fit in uint8")
        organs = resample(data.astype(np.uint8, copy=False), shape, scale, offset, 0, np.uint8)
    if "tumours" in labels:
        data = labels["tumours"]
        if data.size and int(data.max()) > np.iinfo(np.uint16).max:
            raise CaseError(f"tumour mask value {int(data.max())} does not fit in uint16")
        tumours = tumour_instances(resample(data.astype(np.uint16, copy=False), shape, scale, offset, 0, np.uint16))
    return image, organs, tumours, affine


def _stamp(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return {"path": str(path), "size": None, "mtime_ns": None}
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _sha1(data: Any) -> str | None:
    if data is None:
        return None
    return hashlib.sha1(json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def source_fingerprint(row: ManifestRow, label_map: LabelMap) -> dict[str, Any]:
    """What the cached case was made from: file stamps (path, size, mtime) and hashes of facts / label map."""
    return {
        "ct": _stamp(row.ct),
        "organs": _stamp(row.organs),
        "tumours": _stamp(row.tumours),
        "facts_sha1": _sha1(row.facts.to_dict() if row.facts is not None else None),
        "label_map_sha1": _sha1(label_map.to_dict()),
        "split": row.split,
    }


def _annotations_meta(row: ManifestRow, label_map: LabelMap) -> dict[str, Any]:
    kind = "mask" if row.tumours is not None else "report" if row.facts is not None else "unlabelled"
    return {
        "kind": kind,
        "facts": row.facts.to_dict() if row.facts is not None else None,
        "label_map": label_map.to_dict(),
        "split": row.split,
    }


_FILE_KEYS = ("ct", "organs", "tumours")


def process_row(
    row: ManifestRow, cache_dir: str | Path, options: PreprocessOptions, label_map: LabelMap
) -> tuple[str, str | None]:
    """Bring one case of the cache up to date: ``("done" | "skipped" | "failed", reason | None)``.

    Never raises for a broken case (the reason says what is wrong).
    """
    errors = [p.message for p in row.problems if p.severity == "error"]
    if errors:
        return "failed", "; ".join(f"row {row.row}: {m}" if not row.case_id else m for m in errors)
    source = source_fingerprint(row, label_map)
    prep = options.to_dict()
    meta = cache.read_meta(cache_dir, row.case_id)
    if meta is not None and meta.get("preprocess") == prep:
        if meta.get("source") == source:
            return "skipped", None
        old = meta.get("source") or {}
        if all(old.get(k) == source[k] for k in _FILE_KEYS):
            cache.write_meta(cache_dir, row.case_id, {**meta, "source": source, **_annotations_meta(row, label_map)})
            return "done", None
    try:
        image, organs, tumours, affine = preprocess_case(row, options)
    except CaseError as exc:
        return "failed", str(exc)
    except Exception as exc:  # anything else (memory, a library error): this case fails, the others go on
        return "failed", f"{type(exc).__name__}: {exc}"
    meta = {
        "case_id": row.case_id,
        "shape": list(image.shape),
        "spacing_mm": list(options.spacing_mm),
        "affine": np.asarray(affine).tolist(),
        "source": source,
        "preprocess": prep,
        **_annotations_meta(row, label_map),
        "has_organs": organs is not None,
        "has_tumours": tumours is not None,
    }
    try:
        cache.write_case(cache_dir, row.case_id, {"image": image, "organs": organs, "tumours": tumours}, meta)
    except OSError as exc:  # e.g. disk full: the case stays incomplete (no meta.json) and is redone next time
        return "failed", f"cannot write the cache: {exc}"
    return "done", None


# ------------------------------------------------------------------ the whole manifest
def preprocess_manifest(
    manifest: Manifest,
    cache_dir: str | Path,
    options: PreprocessOptions | None = None,
    workers: int = 1,
    progress: str = "auto",
) -> PreprocessSummary:
    """Preprocess every case of ``manifest`` into ``cache_dir`` (resumable; broken cases never stop the others).

    Args:
        manifest: from :func:`rsuper.data.manifest.read_manifest`.
        cache_dir: the cache folder (created).
        options: preprocessing options (default :class:`PreprocessOptions`).
        workers: processes (``1`` runs in this process).
        progress: :class:`rsuper.progress.Progress` mode (one update per case).

    Writes ``errors.jsonl`` (this run's failures, in completion order) and
    ``index.json`` (the cached cases in manifest order).
    """
    if workers < 1:
        raise ValueError("workers must be >= 1")
    options = options or PreprocessOptions()
    cache_dir = Path(cache_dir)
    (cache_dir / "cases").mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    summary = PreprocessSummary()
    status: dict[int, str] = {}
    bar = Progress(len(manifest.rows), mode=progress, desc="preprocess")
    with open(cache_dir / "errors.jsonl", "w", encoding="utf-8") as errors:

        def record(i: int, outcome: tuple[str, str | None]) -> None:
            row = manifest.rows[i]
            state, reason = outcome
            status[i] = state
            if state == "failed":
                summary.failed.append((row.label, reason or "unknown error"))
                errors.write(json.dumps({"case_id": row.case_id, "reason": reason}, ensure_ascii=False) + "\n")
                errors.flush()
                bar.event("error", case_id=row.label, reason=reason)
            elif state == "skipped":
                summary.skipped += 1
            else:
                summary.done += 1
            bar.update(1, case_id=row.label, status=state)

        if workers == 1:
            for i, row in enumerate(manifest.rows):
                record(i, process_row(row, cache_dir, options, manifest.label_map))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(process_row, row, cache_dir, options, manifest.label_map): i
                           for i, row in enumerate(manifest.rows)}
                for fut in as_completed(futures):
                    try:
                        outcome = fut.result()
                    except Exception as exc:  # a worker died (e.g. killed for memory)
                        outcome = ("failed", f"worker failed: {exc!r}")
                    record(futures[fut], outcome)
    ok = [r.case_id for i, r in enumerate(manifest.rows) if status.get(i) in ("done", "skipped")]
    cache.write_index(cache_dir, ok, options.to_dict())
    summary.elapsed_s = time.monotonic() - t0
    bar.close(cached=summary.done, skipped=summary.skipped, failed=len(summary.failed))
    return summary


__all__ = [
    "CaseError", "PreprocessOptions", "PreprocessSummary", "preprocess_manifest", "preprocess_case", "process_row",
    "target_grid", "resample", "normalise", "tumour_instances", "source_fingerprint", "INSTANCE_STRUCTURE",
]
