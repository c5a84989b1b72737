"""rsuper.compare.table: GUI rows from real ``rsuper compare`` output, with centres and RECIST long axes in RAS."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from compare_inputs import comparison_phantom, missed_tumour_and_normal_kidney, predicted_case
from nibabel.orientations import apply_orientation, io_orientation

from rsuper.compare.inputs import load_ai_tumours
from rsuper.compare.table import comparison_rows, compared_tumour_files, read_comparison_rows, tumour_geometry
from rsuper.infer.recist import recist_diameters
from rsuper.jobs.background import BackgroundJob
from rsuper.jobs.commands import compare_command
from rsuper.report.schema import ReportFacts

ROOT = Path(__file__).resolve().parents[1]


def _run_compare(*args) -> None:
    """``rsuper compare`` as the Slicer module runs it: a child process from compare_command."""
    job = BackgroundJob(compare_command(*args), env={"PYTHONPATH": str(ROOT)}).start()
    assert job.wait(120) == 0, job.log_tail()


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    # LPS: the file's axes are flipped against RAS, so positions must go through the affine.
    phantom, paths = comparison_phantom(root)
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
    changed = missed_tumour_and_normal_kidney(phantom, paths, tmp_path)  # AI misses 1, report: kidney normal
    labels, img = changed.labels, changed.img
    _run_compare(changed.labels_path, None, paths["organs"], changed.facts_path, tmp_path / "c.json")
    data = json.loads((tmp_path / "c.json").read_text())
    records = load_ai_tumours(changed.labels_path, paths["organs"]).records
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
    assert read_comparison_rows(tmp_path / "cohort.json") == rows  # a cohort: no positions
    with pytest.raises(ValueError, match="cohort"):
        compared_tumour_files(json.loads((tmp_path / "cohort.json").read_text()))


def test_rows_of_a_comparison_of_predicted_tumours(tmp_path):
    """The module's files: rsuper predict's labels and records (named apart, so only the records' ``labels``
    entry finds the image), rsuper compare on the records; the rows take their positions from that image."""
    files = predicted_case(tmp_path / "work", labels_name="pred.nii.gz", json_name="records.json")
    out = tmp_path / "work" / "comparison.json"
    _run_compare(files["json"], files["ct"], None, files["facts"], out)
    data = json.loads(out.read_text())
    assert compared_tumour_files(data) == (files["labels"], files["json"])
    rows = read_comparison_rows(out)
    assert [(r.ai_id, r.flag) for r in rows] == [(1, "agrees")]
    img = nib.load(files["labels"])
    labels = np.asarray(img.dataobj)
    centre, axis = tumour_geometry(labels, img.affine)[1]
    voxels = np.argwhere(labels == 1)
    world = voxels @ img.affine[:3, :3].T + img.affine[:3, 3]
    np.testing.assert_allclose(rows[0].centroid_ras, world.mean(axis=0), atol=1e-6)
    assert rows[0].centroid_ras == centre and rows[0].longest_axis_ras == axis
    record = json.loads(files["json"].read_text())["tumours"][0]
    assert float(np.linalg.norm(np.subtract(*axis))) == pytest.approx(record["long_axis_mm"], abs=1e-6)


def test_rows_of_a_comparison_of_a_label_image(case):
    """A comparison of a label NIfTI: that image gives the positions, and there are no records."""
    _, paths, data = case
    root = paths["tumours"].parent.parent
    assert compared_tumour_files(data) == (paths["tumours"], None)
    img = nib.load(paths["tumours"])
    assert read_comparison_rows(root / "cmp.json") == comparison_rows(data, labels=np.asarray(img.dataobj),
                                                                      affine=img.affine)


def test_compared_files_that_moved_or_are_not_named(tmp_path):
    files = predicted_case(tmp_path / "work")
    data = {"format": "rsuper-comparison", "findings": [], "sources": {"tumours": files["json"].name}}
    # relative to the comparison's folder when not found from the current one
    assert compared_tumour_files(data, tmp_path / "work") == (files["labels"], files["json"])
    with pytest.raises(FileNotFoundError):
        compared_tumour_files(data, tmp_path)
    with pytest.raises(ValueError, match="sources.tumours"):
        compared_tumour_files({"format": "rsuper-comparison", "findings": []})
    (tmp_path / "other.json").write_text(json.dumps({"format": "rsuper-comparison"}))
    with pytest.raises(ValueError, match="rsuper-tumours"):
        compared_tumour_files({"sources": {"tumours": str(tmp_path / "other.json")}})
    files["labels"].rename(tmp_path / "elsewhere.nii.gz")
    with pytest.raises(FileNotFoundError, match=files["labels"].name):
        compared_tumour_files(data, tmp_path / "work")


def test_bad_input():
    with pytest.raises(ValueError):
        comparison_rows({"format": "rsuper-tumours"})
    with pytest.raises(ValueError):
        comparison_rows({"format": "rsuper-comparison", "findings": []}, labels=np.zeros((2, 2, 2), int))
    assert comparison_rows({"format": "rsuper-comparison", "findings": []}) == []
