"""Inputs of the comparison tests (``rsuper compare``, its GUI table, the Slicer module's files).

* :func:`comparison_phantom`: a phantom with a pancreatic, a liver and a left-kidney tumour, saved as files;
* :func:`missed_tumour_and_normal_kidney`: the same case made to disagree on purpose: the AI misses tumour
  instance 1 (the pancreatic one) and the report calls the left kidney, which has a tumour, normal;
* :func:`predicted_case`: a real ``rsuper predict`` output (label NIfTI + ``tumours.json``) of a synthetic CT
  by a deterministic model, and the report facts that agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from infer_helpers import synthetic_case, threshold_checkpoint

from rsuper.data.phantom import Phantom, TumourSpec, make_phantom
from rsuper.report.schema import Evidence, ReportFacts, Tumour

#: The phantom's tumours, in instance order (instance 1 is the pancreatic one).
TUMOURS = [TumourSpec("pancreas", "head", 22.0), TumourSpec("liver", "segment_6", 25.0),
           TumourSpec("kidney_left", None, 18.0)]


def comparison_phantom(folder: Path) -> tuple[Phantom, dict[str, Path]]:
    """Case ``c1`` (80 x 70 x 48 voxels of 2.4 x 2.4 x 5 mm, LPS file axes) with :data:`TUMOURS`, saved under
    ``folder / "c1"``; returns the phantom and its files (``ct``, ``organs``, ``tumours``, ``facts``, ``report``)."""
    phantom = make_phantom(4, (80, 70, 48), (2.4, 2.4, 5.0), tumours=TUMOURS, orientation="LPS", case_id="c1")
    return phantom, phantom.save(folder / "c1")


@dataclass
class ChangedCase:
    """The files and arrays of :func:`missed_tumour_and_normal_kidney`.

    Attributes:
        img: the phantom's own tumour label image (its affine is the labels' affine).
        labels: its instance labels ``(I, J, K)`` without instance 1.
        labels_path: ``labels`` saved as ``missed.nii.gz``.
        facts: the changed report facts.
        facts_path: ``facts`` saved as ``facts.jsonl``.
    """

    img: nib.Nifti1Image
    labels: np.ndarray
    labels_path: Path
    facts: ReportFacts
    facts_path: Path

    @property
    def affine(self) -> np.ndarray:
        """The labels' ``(4, 4)`` voxel -> RAS mm matrix."""
        return self.img.affine


def missed_tumour_and_normal_kidney(phantom: Phantom, paths: dict[str, Path], folder: Path,
                                    liver_diameters_mm: list[float] | None = None) -> ChangedCase:
    """The phantom's case with two deliberate disagreements, written into ``folder``.

    The AI labels lose instance 1 (the pancreatic tumour); the report facts drop the left-kidney tumour and
    list the left kidney as normal; with ``liver_diameters_mm`` the report also states the liver tumour with
    those diameters (e.g. twice its size).
    """
    img = nib.load(paths["tumours"])
    labels = np.asarray(img.dataobj).copy()
    labels[labels == 1] = 0  # the AI misses the pancreatic tumour
    labels_path = folder / "missed.nii.gz"
    nib.save(nib.Nifti1Image(labels, img.affine), labels_path)
    facts = ReportFacts.from_dict(phantom.facts.to_dict())
    facts.tumours = [t for t in facts.tumours if t.organ != "kidney_left"]
    facts.normal_organs.append("kidney_left")  # the report calls the kidney with a tumour normal
    if liver_diameters_mm is not None:
        next(t for t in facts.tumours if t.organ == "liver").diameters_mm = list(liver_diameters_mm)
    facts_path = folder / "facts.jsonl"
    facts_path.write_text(facts.to_json() + "\n")
    return ChangedCase(img, labels, labels_path, facts, facts_path)


def predicted_case(folder: Path, labels_name: str = "syn.nii.gz", json_name: str | None = None,
                   case_id: str = "syn") -> dict[str, Path]:
    """``rsuper predict``'s files for a synthetic CT (LPS file axes) by a deterministic threshold model.

    Only the big liver lesion (20 x 14 x 16 mm, liver segment 5) is kept (``min_volume_mm3=100``). Writes
    ``ct.nii.gz``, ``organs.nii.gz``, the labels ``labels_name`` and its ``tumours.json`` (``json_name``, default:
    beside the labels with their name), and ``facts.jsonl`` with one report tumour that agrees (``report_text``:
    the report). Returns those paths by kind: ``ct``, ``organs``, ``labels``, ``json``, ``facts``, ``report``.
    """
    from rsuper.infer.model_io import load_model
    from rsuper.infer.output import write_prediction
    from rsuper.infer.pipeline import PredictOptions, predict_case

    folder.mkdir(parents=True, exist_ok=True)
    case = synthetic_case()
    model = load_model(threshold_checkpoint(folder / "model.pt", case))
    ct, organs, _ = case.oriented("LPS")
    nib.save(ct, folder / "ct.nii.gz")
    nib.save(organs, folder / "organs.nii.gz")
    prediction = predict_case(model, ct, organs, PredictOptions(min_volume_mm3=100.0))  # the big lesion only
    written = write_prediction(prediction, ct, folder / labels_name, case_id=case_id, model=model.describe(),
                               json_path=None if json_name is None else folder / json_name)
    report = "FINDINGS: Liver <b>lesion</b> & co: a 2.0 x 1.4 cm mass in segment 5 <script>x</script>. Spleen normal."
    start = report.index("a 2.0")
    span = report[start:report.index(" <script>")]
    tumour = Tumour("liver", "segment_5", [20.0, 14.0], evidence=Evidence(span, start, start + len(span)))
    (folder / "facts.jsonl").write_text(ReportFacts(case_id, [tumour], ["spleen"]).to_json() + "\n")
    (folder / "report.txt").write_text(report)
    return {"ct": folder / "ct.nii.gz", "organs": folder / "organs.nii.gz", "labels": written["labels"],
            "json": written["json"], "facts": folder / "facts.jsonl", "report": folder / "report.txt"}
