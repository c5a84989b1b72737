"""Compare one case or a cohort and write ``comparison.json`` and the HTML pages.

* :func:`compare_ai_tumours`: findings of one case (:func:`rsuper.compare.match.compare_case`).
* :func:`tumour_images`: the PNG snapshots of a case's AI tumours.
* :func:`write_case_html`: a case page.
* :func:`cohort_summary`: the cohort JSON, disagreements of all cases worst first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from rsuper.data.classes import DEFAULT_LESION_ORGANS
from rsuper.data.preprocess import tumour_instances
from rsuper.infer.volumes import read_ct_ras, read_labels_ras
from rsuper.report.schema import ReportFacts

from .inputs import AITumours
from .match import FLAGS, CaseComparison, CompareOptions, compare_case
from .pages import case_page
from .render import figure_png, png_data_uri, tumour_figure

FORMAT_CASE = "rsuper-comparison"
FORMAT_COHORT = "rsuper-comparison-cohort"
VERSION = 1


def compare_ai_tumours(ai: AITumours, facts: ReportFacts, options: CompareOptions = CompareOptions(),
                       assessed_organs: Sequence[str] | None = None) -> CaseComparison:
    """Findings of one case.

    ``assessed_organs`` defaults to the model's lesion organs from the sidecar,
    else :data:`rsuper.data.classes.DEFAULT_LESION_ORGANS`.
    """
    organs = assessed_organs or ai.lesion_organs or list(DEFAULT_LESION_ORGANS)
    return compare_case(ai.records, facts, organs, options)


def tumour_images(ct_path: str | Path, labels_path: str | Path, ids: Sequence[int]) -> dict[int, str]:
    """Tumour id -> ``data:image/png;base64,...`` axial + coronal snapshot (:mod:`rsuper.compare.render`).

    A binary label image is split into connected components first, numbered as
    :func:`rsuper.compare.inputs.load_ai_tumours` numbers them.

    Raises:
        rsuper.infer.volumes.InputError: the label image is not on the CT's grid.
    """
    ct = nib.load(str(ct_path))
    grid, hu_ras = read_ct_ras(ct)
    labels_ras = tumour_instances(read_labels_ras(nib.load(str(labels_path)), ct, grid, "tumour labels"))
    images = {}
    present = set(np.unique(labels_ras).tolist())
    for tumour_id in ids:
        if tumour_id in present:
            fig = tumour_figure(hu_ras, labels_ras, grid.ras_spacing_mm, tumour_id, title=f"tumour {tumour_id}")
            images[tumour_id] = png_data_uri(figure_png(fig))
    return images


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_case_html(path: str | Path, comparison: CaseComparison, ai: AITumours, ct_path: str | Path | None,
                    report_text: str | None) -> Path:
    """Write a case page; snapshots need the CT and the tumour label image (else the page has none)."""
    images: dict[int, str] = {}
    if ct_path is not None and ai.labels_path is not None and ai.labels_path.is_file():
        images = tumour_images(ct_path, ai.labels_path, [r.id for r in ai.records])
    path = Path(path)
    _write_text(path, case_page(comparison, ai.records, images, report_text))
    return path


def case_json(comparison: CaseComparison, sources: Mapping[str, Any]) -> dict[str, Any]:
    """The ``comparison.json`` of one case (``sources``: the input paths, for the record)."""
    return {"format": FORMAT_CASE, "version": VERSION, **comparison.to_dict(), "sources": dict(sources)}


def cohort_summary(comparisons: Sequence[CaseComparison], missing: Mapping[str, str],
                   options: CompareOptions) -> dict[str, Any]:
    """The cohort ``comparison.json``: totals, every disagreement worst first, then each case.

    Args:
        comparisons: one per compared case.
        missing: case id -> why it was not compared.
        options: the tolerances used.
    """
    disagreements = sorted(((c.case_id, f) for c in comparisons for f in c.disagreements),
                           key=lambda cf: (-cf[1].severity, cf[0]))
    totals = {flag: sum(c.counts()[flag] for c in comparisons) for flag in FLAGS}
    return {
        "format": FORMAT_COHORT,
        "version": VERSION,
        "options": {"size_tolerance_fraction": options.size_tolerance_fraction,
                    "size_tolerance_mm": options.size_tolerance_mm},
        "n_cases": len(comparisons),
        "n_disagreeing_cases": sum(c.status == "disagrees" for c in comparisons),
        "counts": totals,
        "disagreements": [{"case_id": case, **f.to_dict()} for case, f in disagreements],
        "cases": [c.to_dict() for c in sorted(comparisons, key=lambda c: (-c.severity, c.case_id))],
        "missing": dict(sorted(missing.items())),
    }
