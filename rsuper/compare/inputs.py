"""Read what a comparison needs: the AI's tumours, the report facts, the report texts.

The AI's tumours come from a ``tumours.json`` written by ``rsuper predict``
(its records are used as they are), or from any tumour label NIfTI (an
instance map, or a binary mask split into connected components), which is
measured here (:func:`rsuper.infer.records.measure_tumours`) with the organ
mask naming each tumour's organ.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS, LabelMap
from rsuper.data.preprocess import tumour_instances
from rsuper.infer.cases import nifti_case_id
from rsuper.infer.grid import CanonicalGrid
from rsuper.infer.records import OrganLookup, TumourRecord, measure_tumours
from rsuper.infer.tumours_file import read_tumours_json, sidecar_path
from rsuper.infer.volumes import InputError, read_ct_ras, read_labels_ras
from rsuper.report.batch import read_facts_jsonl, read_reports
from rsuper.report.schema import ReportFacts


@dataclass
class AITumours:
    """The AI's tumours of one case.

    Attributes:
        case_id: the case named by the file (sidecar ``case_id`` or file name).
        records: one per tumour.
        lesion_organs: organs the model looked at (from the sidecar), or ``None`` when unknown.
        labels_path: the tumour label NIfTI (for pictures), or ``None``.
    """

    case_id: str
    records: list[TumourRecord]
    lesion_organs: list[str] | None
    labels_path: Path | None


def load_ai_tumours(path: str | Path, organs_path: str | Path | None = None, ct_path: str | Path | None = None,
                    label_map: LabelMap | None = None, margin_mm: float = 3.0) -> AITumours:
    """The AI's tumours from a ``tumours.json`` or a tumour label NIfTI.

    Args:
        path: ``.json`` sidecar, or ``.nii(.gz)`` label image.
        organs_path: organ mask on the label image's grid (required for a NIfTI: it names the organs).
        ct_path: CT on the same grid (for the mean HU of a NIfTI's tumours), optional.
        label_map: meaning of the organ labels (default: the R-Super map).
        margin_mm: how far around a tumour to look for its organ when no organ label lies under it.

    Raises:
        InputError: a NIfTI without organ mask, or volumes on different grids.
        ValueError: a malformed ``tumours.json``.
        OSError: unreadable files.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        sidecar = read_tumours_json(path)
        return AITumours(sidecar.case_id, sidecar.records, sidecar.lesion_organs, sidecar.labels_path)
    if nifti_case_id(path) is None:
        raise InputError(f"{path}: expected a tumours .json or a .nii/.nii.gz label image")
    if organs_path is None:
        raise InputError("measuring tumours from a label image needs the organ mask (--organs) to name their organs")
    image = nib.load(str(path))
    if len(image.shape) != 3:
        raise InputError(f"{path} is not a 3D label image (shape {tuple(image.shape)})")
    ct = nib.load(str(ct_path)) if ct_path is not None else None
    if ct is not None:
        grid, hu_ras = read_ct_ras(ct)
        labels_ras = read_labels_ras(image, ct, grid, "tumour mask")
    else:
        grid, hu_ras = CanonicalGrid.of(image.shape, image.affine), None
        labels_ras = read_labels_ras(image, image, grid, "tumour mask")
    organs_ras = read_labels_ras(nib.load(str(organs_path)), image, grid, "organ mask")
    lookup = OrganLookup(organs_ras, label_map or RSUPER_ORGAN_LABELS, margin_mm)
    records = measure_tumours(tumour_instances(labels_ras), grid, hu_ras=hu_ras, organs=lookup)
    lesion_organs = None
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        try:
            lesion_organs = read_tumours_json(sidecar).lesion_organs
        except ValueError:  # a .json of another kind next to the image: the organs stay unknown
            lesion_organs = None
    return AITumours(nifti_case_id(path) or path.stem, records, lesion_organs, path)


def read_facts(path: str | Path) -> dict[str, ReportFacts]:
    """Case id -> facts, from a ``facts.jsonl`` (many cases) or a ``facts.json`` (one case).

    Raises:
        ValueError: a malformed record (the message names the line).
        OSError: unreadable file.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        facts = [ReportFacts.from_dict(json.loads(path.read_text(encoding="utf-8")))]
    else:
        facts = read_facts_jsonl(path)
    return {f.case_id: f for f in facts}


def read_report_texts(path: str | Path, case_id: str | None = None) -> dict[str, str]:
    """Case id -> report text: a reports CSV/JSONL (``case_id``, ``report``), or a ``.txt`` of ``case_id``.

    Raises:
        ValueError: a ``.txt`` without ``case_id``, or a reports file without the expected columns.
        OSError: unreadable file.
    """
    path = Path(path)
    if path.suffix.lower() == ".txt":
        if case_id is None:
            raise ValueError(f"{path}: a single report text needs the case id")
        return {case_id: path.read_text(encoding="utf-8")}
    return {row.case_id: row.text for row in read_reports(path) if row.problem is None}
