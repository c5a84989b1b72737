"""The preprocessed-case cache on disk: layout, atomic writes, and the reader.

Layout (docs/dataset-manifest.md)::

    <cache>/cases/<case_id>/image.npy     float32 (I, J, K) clipped, z-scored intensities
    <cache>/cases/<case_id>/organs.npy    uint8 (I, J, K) organ labels (optional)
    <cache>/cases/<case_id>/tumours.npy   uint16 (I, J, K) tumour instances 0, 1..N (optional)
    <cache>/cases/<case_id>/meta.json     written last, atomically (tmp + os.replace)
    <cache>/index.json                    {"cases": [ids in manifest order], "preprocess": {...}, "version": 1}
    <cache>/errors.jsonl                  one {"case_id", "reason"} per case that failed in the latest run

All arrays share the canonical RAS+ grid described by ``meta.json``
(``affine`` voxel -> world mm, ``spacing_mm``). A case folder without
``meta.json`` is incomplete and is never read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS, LabelMap
from rsuper.report.schema import ReportFacts

from .case import CachedCase

#: Version of the cache format (``meta.json`` and ``index.json``).
CACHE_VERSION = 1
ARRAYS: tuple[str, ...] = ("image", "organs", "tumours")


def case_dir(cache_dir: str | Path, case_id: str) -> Path:
    """Folder of one case: ``<cache>/cases/<case_id>``."""
    return Path(cache_dir) / "cases" / case_id


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see either the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _save_array_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array))
    os.replace(tmp, path)


def read_meta(cache_dir: str | Path, case_id: str) -> dict[str, Any] | None:
    """The case's ``meta.json``, or ``None`` when absent, unreadable or of another version."""
    path = case_dir(cache_dir, case_id) / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("version") == CACHE_VERSION else None


def write_case(cache_dir: str | Path, case_id: str, arrays: dict[str, np.ndarray | None], meta: dict[str, Any]) -> Path:
    """Write a case: remove its old ``meta.json``, write the arrays, then ``meta.json`` last.

    Args:
        arrays: ``image`` (required), ``organs`` and ``tumours`` (``None``:
            absent; a stale file of an earlier run is removed).
        meta: the ``meta.json`` content (``version`` is set here).

    Returns the case folder.
    """
    folder = case_dir(cache_dir, case_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").unlink(missing_ok=True)
    for name in ARRAYS:
        array = arrays.get(name)
        if array is None:
            (folder / f"{name}.npy").unlink(missing_ok=True)
        else:
            _save_array_atomic(folder / f"{name}.npy", array)
    write_meta(cache_dir, case_id, meta)
    return folder


def write_meta(cache_dir: str | Path, case_id: str, meta: dict[str, Any]) -> None:
    """Write (or replace) only ``meta.json`` of a case, atomically."""
    write_json_atomic(case_dir(cache_dir, case_id) / "meta.json", {**meta, "version": CACHE_VERSION})


def write_index(cache_dir: str | Path, case_ids: list[str], preprocess: dict[str, Any]) -> None:
    """Write ``index.json`` (the cached cases in manifest order)."""
    write_json_atomic(Path(cache_dir) / "index.json",
                      {"cases": list(case_ids), "preprocess": preprocess, "version": CACHE_VERSION})


def cached_case_ids(cache_dir: str | Path) -> list[str]:
    """Ids of the complete cases: ``index.json`` order, else every folder with a ``meta.json`` (sorted)."""
    cache_dir = Path(cache_dir)
    try:
        ids = json.loads((cache_dir / "index.json").read_text(encoding="utf-8"))["cases"]
    except (OSError, ValueError, KeyError, TypeError):
        ids = sorted(p.parent.name for p in (cache_dir / "cases").glob("*/meta.json"))
    return [c for c in ids if (case_dir(cache_dir, c) / "meta.json").is_file()]


def load_cached_case(cache_dir: str | Path, case_id: str, mmap: bool = True) -> CachedCase:
    """Read one case of the cache.

    Args:
        mmap: map the arrays read-only (``np.load(mmap_mode="r")``) instead of reading them into memory.

    Raises:
        FileNotFoundError: the case is not (completely) in the cache, or is of another cache version.
    """
    meta = read_meta(cache_dir, case_id)
    if meta is None:
        raise FileNotFoundError(f"case {case_id!r} is not in the cache {cache_dir} (no valid meta.json)")
    folder = case_dir(cache_dir, case_id)
    mode = "r" if mmap else None

    def load(name: str, present: bool) -> np.ndarray | None:
        return np.load(folder / f"{name}.npy", mmap_mode=mode) if present else None

    facts = meta.get("facts")
    label_map = meta.get("label_map")
    return CachedCase(
        case_id=meta["case_id"],
        image=load("image", True),
        organs=load("organs", bool(meta.get("has_organs"))),
        tumours=load("tumours", bool(meta.get("has_tumours"))),
        spacing_mm=tuple(float(v) for v in meta["spacing_mm"]),  # type: ignore[arg-type]
        facts=ReportFacts.from_dict(facts) if facts else None,
        label_map=LabelMap.from_dict(label_map) if label_map else RSUPER_ORGAN_LABELS,
        affine=np.asarray(meta["affine"], float),
    )
