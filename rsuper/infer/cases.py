"""Find the cases of a folder of NIfTI files (``rsuper predict`` / ``rsuper compare`` folder modes).

Two layouts are recognised, in this order:

* flat: ``<folder>/<case_id>.nii.gz`` (or ``.nii``);
* one folder per case: ``<folder>/<case_id>/<name>.nii.gz``, e.g. ``ct.nii.gz``
  or ``organs.nii.gz`` (the layout of :meth:`rsuper.data.phantom.Phantom.save`).
"""

from __future__ import annotations

from pathlib import Path

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def nifti_case_id(path: Path) -> str | None:
    """``case7`` for ``case7.nii.gz`` / ``case7.nii``; ``None`` for other files."""
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)]
    return None


def find_case_files(folder: str | Path, name: str) -> dict[str, Path]:
    """Case id -> NIfTI path, sorted by case id (see the module docstring for the layouts).

    Args:
        folder: the folder to list.
        name: file stem looked for inside per-case folders (``"ct"``, ``"organs"``).
    """
    folder = Path(folder)
    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        case_id = nifti_case_id(entry) if entry.is_file() else None
        if case_id is not None:
            found[case_id] = entry
    if found:
        return found
    for entry in sorted(p for p in folder.iterdir() if p.is_dir()):
        for suffix in NIFTI_SUFFIXES:
            candidate = entry / f"{name}{suffix}"
            if candidate.is_file():
                found[entry.name] = candidate
                break
    return found
