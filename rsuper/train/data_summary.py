"""What a training data folder holds: mask / report / unlabelled cases, tumours per organ, and its problems.

Shown by the training module before a run starts, so that the user sees at
once how much supervision of each kind there is and what is wrong. Two
inputs are understood:

* a **data folder** (the layout the 3D Slicer training module documents)::

      <folder>/images/<case>.nii.gz     CT in HU (an nnU-Net channel suffix "_0000" is dropped from the id)
      <folder>/labels/<case>.nii.gz     tumour mask (binary, or instances 1..N) -> a mask case
      <folder>/organs/<case>.nii.gz     organ / sub-segment mask (R-Super label map)
      <folder>/facts.jsonl              report facts, one ReportFacts per line (rsuper extract)

  A case with a tumour mask is a mask case; a case with facts but no mask a
  report case; a CT with neither is unlabelled (organ supervision only);
* a **manifest** (``.csv`` / ``.jsonl``, docs/dataset-manifest.md), or a folder
  holding ``manifest.csv`` / ``manifest.jsonl`` and no ``images/``.

Tumours per organ: report cases count the facts' tumours (``count`` of each
record); mask cases, the instances of the tumour mask (connected components of
a binary mask) assigned to the organ label under most of their voxels. Paired
organs count under their family (``kidney_left`` -> ``kidney``), as the lesion
channels do. Only mask and organ voxels are read (never the CT's); pass
``read_masks=False`` for a header-only look.

This is a quick overview, not the full check: ``rsuper validate`` lists every
problem with its code. :func:`write_folder_manifest` turns the same inputs into
what ``rsuper train`` reads (a manifest, and the facts file to join), finding
the cases with the same rules. No torch here.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsuper.anatomy.labels import RSUPER_IMPORT_LABELS, LabelMap, organ_of
from rsuper.report.schema import PAIRED_ORGANS, ReportFacts

__all__ = ["DataSummary", "summarize_folder", "write_folder_manifest", "organ_family", "HEADER", "MANIFEST_NAMES",
           "MANIFEST_COLUMNS"]

#: Column names of :meth:`DataSummary.as_rows`.
HEADER: tuple[str, ...] = ("organ", "mask cases", "report cases", "tumours in masks", "tumours in reports")
#: Manifest file names looked for in a folder without ``images/``.
MANIFEST_NAMES: tuple[str, ...] = ("manifest.csv", "manifest.jsonl", "manifest.ndjson")
#: Columns of the manifest :func:`write_folder_manifest` writes (docs/dataset-manifest.md).
MANIFEST_COLUMNS: tuple[str, ...] = ("case_id", "ct", "organs", "tumours")
#: The report facts of a data folder (one ``ReportFacts`` per line, as ``rsuper extract`` writes them).
FACTS_NAME = "facts.jsonl"
_NIFTI = (".nii.gz", ".nii")
_UNKNOWN_ORGAN = "unknown organ"
_SIDES = {side: family for family, sides in PAIRED_ORGANS.items() for side in sides}


def organ_family(organ: str) -> str:
    """A paired organ's family (``kidney_left`` -> ``kidney``); other organs unchanged."""
    return _SIDES.get(organ, organ)


@dataclass
class DataSummary:
    """Counts of one data folder or manifest.

    Attributes:
        source: the folder or manifest summarised.
        mask_cases: cases with a CT and a tumour mask.
        report_cases: cases with a CT and report facts but no tumour mask.
        unlabelled_cases: cases with a CT only.
        per_organ: organ family -> ``{"mask_cases", "report_cases", "mask_tumours", "report_tumours"}``
            (cases with at least one tumour in that organ, and tumours).
        problems: one sentence each, starting with the case id (or the file) it concerns.
        cases: case id -> ``"mask"``, ``"report"`` or ``"unlabelled"``.
    """

    source: Path
    mask_cases: int = 0
    report_cases: int = 0
    unlabelled_cases: int = 0
    per_organ: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    cases: dict[str, str] = field(default_factory=dict)

    @property
    def total_cases(self) -> int:
        """All usable cases (mask + report + unlabelled)."""
        return self.mask_cases + self.report_cases + self.unlabelled_cases

    def as_rows(self) -> list[tuple[str, int, int, int, int]]:
        """Table rows in :data:`HEADER` order: one per organ (sorted), then ``"all"`` (case counts of the
        folder, tumour sums)."""
        rows = [(organ, c["mask_cases"], c["report_cases"], c["mask_tumours"], c["report_tumours"])
                for organ, c in sorted(self.per_organ.items())]
        rows.append(("all", self.mask_cases, self.report_cases, sum(r[3] for r in rows), sum(r[4] for r in rows)))
        return rows

    def text(self) -> str:
        """One line for a status label: ``"12 mask cases, 140 report cases, 3 unlabelled; 2 problems"``."""
        return (f"{self.mask_cases} mask cases, {self.report_cases} report cases, {self.unlabelled_cases} "
                f"unlabelled; {len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}")

    def _count(self, organ: str, kind: str, tumours: int) -> None:
        entry = self.per_organ.setdefault(
            organ, {"mask_cases": 0, "report_cases": 0, "mask_tumours": 0, "report_tumours": 0})
        entry[f"{kind}_cases"] += 1
        entry[f"{kind}_tumours"] += tumours


@dataclass
class _Case:
    case_id: str
    ct: Path | None = None
    tumours: Path | None = None
    organs: Path | None = None
    facts: ReportFacts | None = None


def summarize_folder(folder: str | Path, read_masks: bool = True,
                     label_map: LabelMap = RSUPER_IMPORT_LABELS) -> DataSummary:
    """Summarise a data folder or a manifest (see the module docstring).

    Args:
        folder: the data folder, a manifest file, or a folder holding a manifest.
        read_masks: read tumour and organ mask voxels to count the masks' tumours per organ (else only
            headers are read and mask tumours go uncounted).
        label_map: the organ masks' label map (default: R-Super's, with whole liver / pancreas).

    Raises:
        FileNotFoundError: ``folder`` does not exist.
    """
    path = Path(folder)
    if not path.exists():
        raise FileNotFoundError(f"no such data folder or manifest: {path}")
    summary = DataSummary(source=path)
    manifest = _manifest_in(path)
    if manifest is not None:
        cases = _manifest_cases(manifest, summary.problems)
    else:
        cases = _folder_cases(path, summary.problems)
    for case in cases:
        _summarize_case(case, summary, read_masks, label_map)
    return summary


def write_folder_manifest(folder: str | Path, out_path: str | Path) -> tuple[Path, Path | None]:
    """What ``rsuper train`` reads for a data folder or manifest: ``(manifest, facts JSON Lines or None)``.

    A manifest (a file, or a folder holding one and no ``images/``) is returned as it is, without facts
    (its rows name their own). A data folder (see the module docstring) is listed into ``out_path``: a CSV
    with :data:`MANIFEST_COLUMNS`, one row per CT in ``images/`` (absolute paths; ``organs`` / ``tumours``
    empty where the case has none), found by the same rules as :func:`summarize_folder`; its
    ``facts.jsonl`` is returned for the trainer to join on the case id (``data.facts_jsonl``).

    Args:
        folder: the data folder, a manifest file, or a folder holding a manifest.
        out_path: the manifest to write for a data folder (its parent folder must exist).

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        ValueError: a folder with neither ``images/`` nor a manifest.
    """
    path = Path(folder)
    if not path.exists():
        raise FileNotFoundError(f"no such data folder or manifest: {path}")
    manifest = _manifest_in(path)
    if manifest is not None:
        return manifest, None
    if not (path / "images").is_dir():
        raise ValueError(f"{path} has neither images/ nor a manifest ({', '.join(MANIFEST_NAMES)})")
    images, labels, organs = _folder_files(path, [])
    out = Path(out_path)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(MANIFEST_COLUMNS)
        for case_id, ct in images.items():
            writer.writerow([case_id, ct.resolve()] + [found[case_id].resolve() if case_id in found else ""
                                                       for found in (organs, labels)])
    facts = path / FACTS_NAME
    return out, (facts.resolve() if facts.is_file() else None)


# -- inputs ------------------------------------------------------------------------------------------


def _manifest_in(path: Path) -> Path | None:
    if path.is_file():
        return path
    if (path / "images").is_dir():
        return None
    return next((path / n for n in MANIFEST_NAMES if (path / n).is_file()), None)


def _case_id(path: Path, strip_channel: bool) -> str | None:
    for suffix in _NIFTI:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            stem = path.name[: -len(suffix)]
            return stem[:-5] if strip_channel and stem.endswith("_0000") and len(stem) > 5 else stem
    return None


def _list_niftis(folder: Path, strip_channel: bool, problems: list[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for entry in sorted(folder.iterdir()):
        case_id = _case_id(entry, strip_channel) if entry.is_file() else None
        if case_id is None:
            continue
        if case_id in found:
            problems.append(f"{case_id}: two files in {folder.name}/ ({found[case_id].name}, {entry.name}); "
                            f"using {found[case_id].name}")
            continue
        found[case_id] = entry
    return found


def _read_facts_file(path: Path, problems: list[str]) -> dict[str, ReportFacts]:
    out: dict[str, ReportFacts] = {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                facts = ReportFacts.from_dict(json.loads(line))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                problems.append(f"{path.name}:{number}: unreadable facts ({exc})")
                continue
            out[facts.case_id] = facts  # a later line of a case replaces an earlier one (a re-extraction)
    return out


def _folder_files(root: Path, problems: list[str]) -> tuple[dict[str, Path], dict[str, Path], dict[str, Path]]:
    """Case id -> file of ``images/`` (nnU-Net channel suffix dropped), ``labels/`` and ``organs/``."""
    return (_list_niftis(root / "images", True, problems), _list_niftis(root / "labels", False, problems),
            _list_niftis(root / "organs", False, problems))


def _folder_cases(root: Path, problems: list[str]) -> list[_Case]:
    images, labels, organs = _folder_files(root, problems)
    facts_path = root / FACTS_NAME
    facts = _read_facts_file(facts_path, problems) if facts_path.is_file() else {}
    if not images:
        problems.append(f"{root}: no CTs found (expected images/<case>.nii.gz, or a manifest)")
    for kind, found in (("tumour mask", labels), ("organ mask", organs)):
        for case_id in sorted(set(found) - set(images)):
            problems.append(f"{case_id}: {kind} {found[case_id].parent.name}/{found[case_id].name} has no CT "
                            "in images/")
    orphans = sorted(set(facts) - set(images))
    if orphans:
        shown = ", ".join(orphans[:5]) + (", ..." if len(orphans) > 5 else "")
        problems.append(f"facts.jsonl: {len(orphans)} case(s) without a CT in images/ ({shown})")
    return [_Case(case_id, ct, labels.get(case_id), organs.get(case_id), facts.get(case_id))
            for case_id, ct in images.items()]


def _manifest_cases(path: Path, problems: list[str]) -> list[_Case]:
    from rsuper.data.manifest import read_manifest

    try:
        manifest = read_manifest(path)
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name}: {exc}")
        return []
    problems.extend(f"{p.case_id}: {p.message}" for p in manifest.problems)
    cases = []
    for row in manifest:
        problems.extend(f"{p.case_id}: {p.message}" for p in row.problems if p.severity != "info")
        if row.has_errors or row.ct is None:
            continue
        cases.append(_Case(row.case_id, row.ct, row.tumours, row.organs, row.facts))
    return cases


# -- one case ----------------------------------------------------------------------------------------


def _summarize_case(case: _Case, summary: DataSummary, read_masks: bool, label_map: LabelMap) -> None:
    problems = summary.problems
    import nibabel as nib

    try:
        ct_shape = tuple(nib.load(str(case.ct)).shape)
    except Exception as exc:  # nibabel raises many types for missing / unreadable files
        problems.append(f"{case.case_id}: CT {case.ct} cannot be read ({exc}); case left out")
        return
    organs = _load_mask(case.case_id, "organ mask", case.organs, ct_shape, read_masks, problems)
    if case.organs is not None and organs is False:
        case.organs = None
    if case.tumours is not None:
        tumours = _load_mask(case.case_id, "tumour mask", case.tumours, ct_shape, read_masks, problems)
        if tumours is not False:
            summary.mask_cases += 1
            summary.cases[case.case_id] = "mask"
            if read_masks:
                per_organ = _mask_tumours(tumours, organs if organs is not False else None, label_map)
                if case.organs is None and per_organ:
                    problems.append(f"{case.case_id}: tumour mask without an organ mask; its tumours are "
                                    f"counted under '{_UNKNOWN_ORGAN}'")
                for organ, n in sorted(per_organ.items()):
                    summary._count(organ, "mask", n)
            return
    if case.facts is not None:
        summary.report_cases += 1
        summary.cases[case.case_id] = "report"
        counts: Counter[str] = Counter()
        for tumour in case.facts.tumours:
            counts[organ_family(tumour.organ)] += tumour.count
            if not tumour.diameters_mm:
                problems.append(f"{case.case_id}: a {tumour.organ} tumour of the report has no size; that organ "
                                "gives no report supervision")
        for organ, n in sorted(counts.items()):
            summary._count(organ, "report", n)
        if case.organs is None and case.facts.tumours:
            problems.append(f"{case.case_id}: report facts but no organ mask; report supervision needs the "
                            "organ mask (organs/)")
        return
    summary.unlabelled_cases += 1
    summary.cases[case.case_id] = "unlabelled"


def _load_mask(case_id: str, what: str, path: Path | None, ct_shape: tuple[int, ...], read: bool,
               problems: list[str]) -> Any:
    """The mask's integer voxels (or ``None`` when not read / not given); ``False`` if unusable (problem noted)."""
    if path is None:
        return None
    import nibabel as nib
    import numpy as np

    try:
        img = nib.load(str(path))
        if tuple(img.shape) != ct_shape:
            problems.append(f"{case_id}: {what} shape {tuple(img.shape)} differs from the CT's {ct_shape}; "
                            "not used")
            return False
        if not read:
            return None
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # unreadable header or voxels
        problems.append(f"{case_id}: {what} {path.name} cannot be read ({exc}); not used")
        return False
    if data.dtype.kind == "f":
        if np.any(data != np.round(data)) or np.any(data < 0):
            problems.append(f"{case_id}: {what} holds non-integer or negative values; not used")
            return False
        data = data.astype(np.int32)
    elif data.dtype.kind == "i" and data.size and data.min() < 0:
        problems.append(f"{case_id}: {what} holds negative values; not used")
        return False
    return data


def _mask_tumours(tumours: Any, organs: Any, label_map: LabelMap) -> Counter[str]:
    """Organ family -> number of tumour instances (binary masks split into 26-connected components)."""
    import numpy as np
    from scipy import ndimage as ndi

    values = np.unique(tumours[tumours > 0])
    if values.size == 1:
        instances, _ = ndi.label(tumours > 0, structure=np.ones((3, 3, 3), bool))
    else:
        instances = tumours
    counts: Counter[str] = Counter()
    for index, box in enumerate(ndi.find_objects(instances), start=1):
        if box is None:
            continue
        inside = instances[box] == index
        organ = _UNKNOWN_ORGAN
        if organs is not None:
            under = organs[box][inside]
            under = under[under > 0]
            if under.size:
                label = int(np.bincount(under.astype(np.int64)).argmax())
                mapped = organ_of(label_map.labels[label]) if label in label_map.labels else None
                organ = organ_family(mapped[0]) if mapped else _UNKNOWN_ORGAN
        counts[organ] += 1
    return counts
