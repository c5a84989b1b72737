"""rsuper.compare.table: GUI rows from real ``rsuper compare`` output, with centres and RECIST long axes in RAS."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import apply_orientation, io_orientation

from rsuper.compare.inputs import load_ai_tumours
from rsuper.compare.table import comparison_rows, tumour_geometry
from rsuper.data.phantom import TumourSpec, make_phantom
from rsuper.infer.recist import recist_diameters
from rsuper.jobs.background import BackgroundJob
from rsuper.jobs.commands import compare_command
from rsuper.report.schema import ReportFacts

ROOT = Path(__file__).resolve().parents[1]
TUMOURS = [TumourSpec("pancreas", "head", 22.0), TumourSpec("liver", "segment_6", 25.0),
           TumourSpec("kidney_left", None, 18.0)]


def _run_compare(*args) -> None:
    """``rsuper compare`` as the Slicer module runs it: a child process from compare_command."""
    job = BackgroundJob(compare_command(*args), env={"PYTHONPATH": str(ROOT)}).start()
    assert job.wait(120) == 0, job.log_tail()


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    # LPS: the file's axes are flipped against RAS, so positions must go through the affine.
    phantom = make_phantom(4, (80, 70, 48), (2.4, 2.4, 5.0), tumours=TUMOURS, orientation="LPS", case_id="c1")
    paths = phantom.save(root / "c1")
    _run_compare(paths["tumours"], paths["ct"], paths["organs"], paths["facts"], root / "cmp.json")
    return phantom, paths, json.loads((root / "cmp.json").read_text())


def test_rows_of_an_agreeing_case(case):
    phantom, paths, data = case
    img = nib.load(paths["tumours"])
    labels = np.asarray(img.dataobj)
    rows = comparison_rows(data, labels=labels, affine=img.affine)
    assert [r.flag for r in rows] == ["agrees"] * 3 and not any(r.is_disagreement for r in rows)
    assert {r.ai_id: (r.organ, r.subsegment) for r in rows} == {
        1: ("pancreas", "head"), 2: ("liver", "segment_6"), 3: ("kidney_left", None)}
    sentences = {t.evidence.text for t in phantom.facts.tumours}
    assert {r.report_sentence for r in rows} == sentences
    for row, finding in zip(rows, data["findings"]):
        assert row.ai_diameters_mm == finding["ai_diameters_mm"] and row.severity == 0.0
        assert row.report_diameters_mm == finding["report_diameters_mm"] and row.case_id == "c1"
        # The centre: mean world position of the tumour's voxels, computed here from the phantom.
        voxels = np.argwhere(phantom.tumours == row.ai_id)
        np.testing.assert_allclose(row.centroid_ras, phantom.world_mm(voxels).mean(axis=0), atol=1e-6)
    assert rows[0].place == "pancreas head" and rows[2].flag_text == "agrees"


def test_long_axis_is_the_recist_long_axis(case):
    phantom, paths, data = case
    img = nib.load(paths["tumours"])
    ornt = io_orientation(img.affine)
    ras_labels = apply_orientation(np.asarray(img.dataobj), ornt)
    spacing = np.array(img.header.get_zooms()[:3])[np.argsort(ornt[:, 0])]
    geometry = tumour_geometry(np.asarray(img.dataobj), img.affine)
    assert sorted(geometry) == [1, 2, 3]
    for ai_id, (centre, (p1, p2)) in geometry.items():
        recist = recist_diameters(np.argwhere(ras_labels == ai_id), spacing)
        p1, p2 = np.array(p1), np.array(p2)
        assert np.linalg.norm(p2 - p1) == pytest.approx(recist.long_axis_mm, abs=1e-6)
        assert p1[2] == pytest.approx(p2[2])  # an axial line
        # ... on the slice RECIST measured (canonical k -> world S).
        world = phantom.world_mm(np.argwhere(phantom.tumours == ai_id))
        slice_z = np.unique(np.round(world[:, 2], 6))
        assert np.round(p1[2], 6) in slice_z
        assert p1[2] == pytest.approx(slice_z.min() + recist.axial_slice * 5.0 - np.argwhere(
            ras_labels == ai_id)[:, 2].min() * 5.0)
        low, high = world.min(axis=0) - 2.4, world.max(axis=0) + 2.4
        assert np.all((p1 >= low) & (p1 <= high)) and np.all((p2 >= low) & (p2 <= high))
        rounded = [d for d in data["findings"] if d["ai_id"] == ai_id][0]["ai_diameters_mm"]
        assert min(abs(np.linalg.norm(p2 - p1) - d) for d in rounded) <= 0.051


def test_disagreements_and_centres_from_the_tumour_records(case, tmp_path):
    phantom, paths, _ = case
    img = nib.load(paths["tumours"])
    labels = np.asarray(img.dataobj).copy()
    labels[labels == 1] = 0  # the AI misses the pancreatic tumour
    nib.save(nib.Nifti1Image(labels, img.affine), tmp_path / "missed.nii.gz")
    facts = ReportFacts.from_dict(phantom.facts.to_dict())
    facts.tumours = [t for t in facts.tumours if t.organ != "kidney_left"]
    facts.normal_organs.append("kidney_left")
    (tmp_path / "facts.jsonl").write_text(facts.to_json() + "\n")
    _run_compare(tmp_path / "missed.nii.gz", None, paths["organs"], tmp_path / "facts.jsonl", tmp_path / "c.json")
    data = json.loads((tmp_path / "c.json").read_text())
    records = load_ai_tumours(tmp_path / "missed.nii.gz", paths["organs"]).records
    tumours_json = {"tumours": [r.to_dict() for r in records]}  # the records a tumours.json holds
    rows = comparison_rows(data, tumours=tumours_json)
    assert sorted(r.flag for r in rows) == ["agrees", "normal_organ", "report_only"]
    by_flag = {r.flag: r for r in rows}
    missed = by_flag["report_only"]
    assert missed.ai_id is None and missed.centroid_ras is None and missed.longest_axis_ras is None
    assert missed.organ == "pancreas" and missed.report_diameters_mm == [22.0, 22.0, 22.0]
    assert "pancreatic head" in missed.report_sentence and missed.severity >= 3
    normal = by_flag["normal_organ"]
    assert normal.ai_id == 3 and normal.report_sentence == "" and normal.is_disagreement
    for row in (normal, by_flag["agrees"]):
        voxels = np.argwhere(labels == row.ai_id)
        np.testing.assert_allclose(row.centroid_ras, phantom.world_mm(voxels).mean(axis=0), atol=0.006)
        assert row.longest_axis_ras is None  # records have no end points; labels give them
    with_labels = comparison_rows(data, tumours=tumours_json, labels=labels, affine=img.affine)
    assert all(r.longest_axis_ras is not None for r in with_labels if r.ai_id is not None)


def test_cohort_rows_carry_their_case(case, tmp_path):
    phantom, paths, _ = case
    img = nib.load(paths["tumours"])
    labels = np.asarray(img.dataobj)
    for d in ("preds", "cts", "organs"):
        (tmp_path / d).mkdir()
    lines = []
    for case_id, drop in (("good", None), ("bad", 2)):
        kept = np.where(labels == drop, 0, labels).astype(np.uint8) if drop else labels
        nib.save(nib.Nifti1Image(kept, img.affine), tmp_path / "preds" / f"{case_id}.nii.gz")
        for src, folder in ((paths["ct"], "cts"), (paths["organs"], "organs")):
            (tmp_path / folder / f"{case_id}.nii.gz").write_bytes(src.read_bytes())
        lines.append(ReportFacts.from_dict({**phantom.facts.to_dict(), "case_id": case_id}).to_json())
    (tmp_path / "facts.jsonl").write_text("\n".join(lines) + "\n")
    _run_compare(tmp_path / "preds", tmp_path / "cts", tmp_path / "organs", tmp_path / "facts.jsonl",
                 tmp_path / "cohort.json")
    rows = comparison_rows(json.loads((tmp_path / "cohort.json").read_text()))
    assert [r.case_id for r in rows] == ["bad"] * 3 + ["good"] * 3  # worst case first
    assert [r.flag for r in rows if r.case_id == "bad"].count("report_only") == 1


def test_bad_input():
    with pytest.raises(ValueError):
        comparison_rows({"format": "rsuper-tumours"})
    with pytest.raises(ValueError):
        comparison_rows({"format": "rsuper-comparison", "findings": []}, labels=np.zeros((2, 2, 2), int))
    assert comparison_rows({"format": "rsuper-comparison", "findings": []}) == []
