"""Flat facts CSV and the reference per-tumour CSV."""

import csv

import pytest

from rsuper.report.reference_csv import read_reference_csv, write_reference_csv
from rsuper.report.rules import RulesExtractor
from rsuper.report.table import read_facts_csv, write_facts_csv

REPORTS = {
    "a": "A 2.3 x 1.9 cm hypodense mass in the pancreatic head. The spleen is normal.",
    "b": "No focal hepatic lesion. The kidneys are unremarkable.",
    "c": "Multiple hepatic cysts, the largest 1.5 cm in segment 7. A 12 mm right renal cyst.",
    "d": "Two pancreatic cysts measuring 8 and 5 mm in the tail.",
}


@pytest.fixture()
def facts():
    ex = RulesExtractor()
    return [ex.extract(cid, text) for cid, text in REPORTS.items()]


def test_flat_csv_round_trip_is_lossless(facts, tmp_path):
    path = tmp_path / "facts.csv"
    rows = write_facts_csv(facts, path)
    assert rows == sum(max(1, len(f.tumours)) for f in facts)
    assert read_facts_csv(path) == facts


def test_flat_csv_with_missing_columns_is_refused(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("case_id,organ\na,liver\n")
    with pytest.raises(ValueError, match="missing columns"):
        read_facts_csv(path)


def test_reference_csv_export_and_import(facts, tmp_path):
    path = tmp_path / "per_tumor.csv"
    write_reference_csv(facts, path, REPORTS)
    rows = list(csv.DictReader(open(path, newline="")))
    by_case = {}
    for r in rows:
        by_case.setdefault(r["BDMAP ID"], []).append(r)
    # case b has no tumour: one "no lesion" row
    assert [r["no lesion"] for r in by_case["b"]] == ["True"]
    # a lower-bound group adds a "multiple" row and marks the organ's sizes as unknown
    liver_rows = [r for r in by_case["c"] if r["Standardized Organ"] == "liver"]
    assert [r["Tumor Size (mm)"] for r in liver_rows] == ["15.0", "multiple"]
    assert {r["Unknow Tumor Size"] for r in liver_rows} == {"yes"}
    kidney = [r for r in by_case["c"] if r["Standardized Organ"] == "kidney"]
    assert kidney[0]["Standardized Location"] == "right" and kidney[0]["Unknow Tumor Size"] == "no"
    assert by_case["a"][0]["Standardized Location"] == "head" and by_case["a"][0]["Tumor Size (mm)"] == "23.0 x 19.0"

    back, problems = read_reference_csv(path)
    assert problems == []
    back = {f.case_id: f for f in back}
    for f in facts:
        got = back[f.case_id]
        assert got.total_count() == f.total_count()
        assert sorted((t.organ, tuple(t.diameters_mm)) for t in got.tumours if t.diameters_mm) == sorted(
            (t.organ, tuple(t.diameters_mm)) for t in f.tumours if t.diameters_mm
        )
    assert back["a"].tumours[0].subsegment == "head"
    assert back["c"].tumours[0].subsegment == "segment_7"


def test_reference_csv_import_reports_unknown_organs(tmp_path):
    path = tmp_path / "ref.csv"
    path.write_text(
        "BDMAP_ID,Tumor ID,Standardized Organ,Standardized Location,Tumor Size (mm),no lesion\n"
        "X1,tumor 1,pancreas,head / body,26.0 x 25.0,False\n"
        "X1,tumor 2,thyroid,u,10.0,False\n"
        "X2,,,,,True\n"
    )
    facts, problems = read_reference_csv(path)
    assert len(problems) == 1 and "thyroid" in problems[0] and ":3:" in problems[0]
    x1 = facts[0]
    assert x1.tumours[0].subsegment == "head/body" and x1.tumours[0].diameters_mm == [26.0, 25.0]
    assert facts[1].case_id == "X2" and facts[1].tumours == []
