"""rsuper.train.data_summary on folders and manifests built from phantoms: case kinds, tumours per organ, problems."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from rsuper.data.phantom import TumourSpec, make_phantom
from rsuper.report.schema import ReportFacts, Tumour
from rsuper.train.data_summary import HEADER, MANIFEST_COLUMNS, organ_family, summarize_folder, write_folder_manifest

SHAPE, SPACING = (64, 56, 48), (3.0, 3.0, 5.0)


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


@pytest.fixture(scope="module")
def phantoms():
    a = make_phantom(21, SHAPE, SPACING, case_id="mask_a",
                     tumours=[TumourSpec("liver", "segment_6", 18.0), TumourSpec("kidney_left", None, 15.0)])
    b = make_phantom(22, SHAPE, SPACING, case_id="mask_b",
                     tumours=[TumourSpec("pancreas", "head", 15.0), TumourSpec("liver", "segment_7", 18.0)])
    return a, b


REPORT_C = ReportFacts("report_c", [Tumour("liver", "segment_7", [22.0]),
                                    Tumour("kidney_right", None, [15.0], count=2)])
REPORT_D = ReportFacts("report_d", [Tumour("pancreas", "head", [])])  # no size


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory, phantoms):
    """images/ labels/ organs/ facts.jsonl with every kind of case and a few problems."""
    root = tmp_path_factory.mktemp("data")
    a, b = phantoms
    _save(root / "images" / "mask_a.nii.gz", a.ct, a.affine)
    _save(root / "labels" / "mask_a.nii.gz", a.tumours, a.affine)  # instances 1, 2
    _save(root / "organs" / "mask_a.nii.gz", a.organs, a.affine)
    _save(root / "images" / "mask_b_0000.nii.gz", b.ct, b.affine)  # nnU-Net channel suffix
    _save(root / "labels" / "mask_b.nii.gz", (b.tumours > 0).astype(np.uint8), b.affine)  # binary: 2 components
    _save(root / "organs" / "mask_b.nii.gz", b.organs, b.affine)
    for case in ("report_c", "report_d", "plain_e", "wrong_f"):
        _save(root / "images" / f"{case}.nii.gz", a.ct, a.affine)
    _save(root / "organs" / "report_c.nii.gz", a.organs, a.affine)
    _save(root / "labels" / "wrong_f.nii.gz", np.zeros((10, 10, 10), np.uint8), a.affine)  # not the CT's grid
    _save(root / "labels" / "orphan.nii.gz", a.tumours, a.affine)  # no CT
    lines = [REPORT_C.to_json(), REPORT_D.to_json(), "{not json",
             ReportFacts("no_ct_case", [Tumour("liver", None, [10.0])]).to_json(),
             ReportFacts("mask_a", [Tumour("liver", None, [99.0])]).to_json()]  # the mask wins
    (root / "facts.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


# Expected from the phantoms' tumour specs and the facts above (not from the code under test).
EXPECTED = {
    "liver": {"mask_cases": 2, "report_cases": 1, "mask_tumours": 2, "report_tumours": 1},
    "kidney": {"mask_cases": 1, "report_cases": 1, "mask_tumours": 1, "report_tumours": 2},
    "pancreas": {"mask_cases": 1, "report_cases": 1, "mask_tumours": 1, "report_tumours": 1},
}


def _has(problems: list[str], *words: str) -> bool:
    return any(all(w in p for w in words) for p in problems)


def test_folder_counts_cases_and_tumours_per_organ(data_folder):
    summary = summarize_folder(data_folder)
    assert summary.cases == {"mask_a": "mask", "mask_b": "mask", "report_c": "report", "report_d": "report",
                             "plain_e": "unlabelled", "wrong_f": "unlabelled"}
    assert (summary.mask_cases, summary.report_cases, summary.unlabelled_cases) == (2, 2, 2)
    assert summary.total_cases == 6
    assert summary.per_organ == EXPECTED
    rows = summary.as_rows()
    assert len(HEADER) == len(rows[0]) == 5
    assert rows[:3] == [("kidney", 1, 1, 1, 2), ("liver", 2, 1, 2, 1), ("pancreas", 1, 1, 1, 1)]
    assert rows[-1] == ("all", 2, 2, 4, 4)
    assert summary.text().startswith("2 mask cases, 2 report cases, 2 unlabelled;")


def test_folder_problems_are_named(data_folder):
    problems = summarize_folder(data_folder).problems
    assert _has(problems, "orphan", "no CT")
    assert _has(problems, "facts.jsonl:3", "unreadable")
    assert _has(problems, "facts.jsonl", "1 case(s) without a CT", "no_ct_case")
    assert _has(problems, "report_d", "no organ mask")
    assert _has(problems, "report_d", "pancreas", "no size")
    assert _has(problems, "wrong_f", "tumour mask", "differs from the CT")
    assert not any(p.startswith(("mask_a", "mask_b", "report_c", "plain_e")) for p in problems), problems
    assert len(problems) == 6, problems


def test_headers_only(data_folder):
    summary = summarize_folder(data_folder, read_masks=False)
    assert (summary.mask_cases, summary.report_cases, summary.unlabelled_cases) == (2, 2, 2)
    assert {o: (c["mask_tumours"], c["report_tumours"]) for o, c in summary.per_organ.items()} == {
        "liver": (0, 1), "kidney": (0, 2), "pancreas": (0, 1)}


def test_manifest_file_and_folder_with_a_manifest(tmp_path, phantoms):
    a, b = phantoms
    pa = a.save(tmp_path / "mask_a")
    pb = b.save(tmp_path / "report_b")
    rows = [
        {"case_id": "mask_a", "ct": "mask_a/ct.nii.gz", "organs": "mask_a/organs.nii.gz",
         "tumours": "mask_a/tumours.nii.gz", "facts": ""},
        {"case_id": "report_b", "ct": "report_b/ct.nii.gz", "organs": "report_b/organs.nii.gz", "tumours": "",
         "facts": "report_b/facts.json"},
        {"case_id": "gone", "ct": "gone/ct.nii.gz", "organs": "", "tumours": "", "facts": ""},
    ]
    with open(tmp_path / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["case_id", "ct", "organs", "tumours", "facts"])
        writer.writeheader()
        writer.writerows(rows)
    assert pa["tumours"].is_file() and pb["facts"].is_file()
    for source in (tmp_path / "manifest.csv", tmp_path):
        summary = summarize_folder(source)
        assert summary.cases == {"mask_a": "mask", "report_b": "report"}
        assert summary.per_organ["liver"] == {"mask_cases": 1, "report_cases": 1, "mask_tumours": 1,
                                              "report_tumours": 1}
        assert summary.per_organ["kidney"]["mask_tumours"] == 1
        assert summary.per_organ["pancreas"] == {"mask_cases": 0, "report_cases": 1, "mask_tumours": 0,
                                                 "report_tumours": 1}
        assert _has(summary.problems, "gone", "cannot be read")


def test_empty_and_missing(tmp_path):
    summary = summarize_folder(tmp_path)
    assert summary.total_cases == 0 and _has(summary.problems, "no CTs found")
    with pytest.raises(FileNotFoundError):
        summarize_folder(tmp_path / "nowhere")


def test_data_folder_becomes_a_manifest_rsuper_reads(data_folder, tmp_path):
    """The manifest written for a data folder lists the cases the summary found, with the same files; rsuper's
    manifest reader (with the facts joined) gives each case the kind the summary gives it."""
    from rsuper.data.manifest import read_manifest

    manifest, facts = write_folder_manifest(data_folder, tmp_path / "manifest.csv")
    assert manifest == tmp_path / "manifest.csv" and facts == (data_folder / "facts.jsonl").resolve()
    with open(manifest, newline="", encoding="utf-8") as fh:
        assert tuple(next(csv.reader(fh))) == MANIFEST_COLUMNS
    rows = {row.case_id: row for row in read_manifest(manifest, facts_jsonl=facts)}
    summary = summarize_folder(data_folder)
    assert set(rows) == set(summary.cases)
    assert Path(rows["mask_b"].ct) == (data_folder / "images" / "mask_b_0000.nii.gz").resolve()
    assert Path(rows["report_c"].organs) == (data_folder / "organs" / "report_c.nii.gz").resolve()
    assert rows["plain_e"].organs is None and rows["plain_e"].tumours is None
    kinds = {case: "mask" if row.tumours else "report" if row.facts else "unlabelled" for case, row in rows.items()}
    # The one difference: a tumour mask on the wrong grid is listed (rsuper validate reports it), the summary
    # has already left it out.
    assert kinds.pop("wrong_f") == "mask" and summary.cases.get("wrong_f") == "unlabelled"
    assert kinds == {case: kind for case, kind in summary.cases.items() if case != "wrong_f"}
    assert kinds == {"mask_a": "mask", "mask_b": "mask", "report_c": "report", "report_d": "report",
                     "plain_e": "unlabelled"}


def test_manifests_are_used_as_they_are(tmp_path):
    manifest = tmp_path / "given" / "manifest.jsonl"
    manifest.parent.mkdir()
    manifest.write_text('{"case_id": "a", "ct": "a.nii.gz"}\n', encoding="utf-8")
    out = tmp_path / "written.csv"
    assert write_folder_manifest(manifest, out) == (manifest, None)
    assert write_folder_manifest(manifest.parent, out) == (manifest, None)
    assert not out.exists()
    with pytest.raises(ValueError, match="neither images/ nor a manifest"):
        write_folder_manifest(tmp_path, out)  # holds neither images/ nor a manifest of its own
    with pytest.raises(FileNotFoundError):
        write_folder_manifest(tmp_path / "nowhere", out)


def test_organ_family():
    assert organ_family("kidney_left") == "kidney" and organ_family("liver") == "liver"
    assert json.loads(REPORT_C.to_json())["tumours"][1]["count"] == 2
