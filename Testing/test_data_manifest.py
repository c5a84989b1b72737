"""Dataset manifest reading / writing, the facts join, and the dataset integrity check (rsuper validate)."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS as LM
from rsuper.anatomy.labels import LabelMap, labels_for
from rsuper.data import command_validate
from rsuper.data.manifest import read_manifest, write_manifest
from rsuper.data.phantom import Phantom, TumourSpec, make_cohort, make_phantom
from rsuper.data.validate import print_validation, summarize, validate_manifest, validate_row
from rsuper.report.schema import ReportFacts, Tumour

SMALL = {"shape": (64, 56, 48), "spacing_mm": (3.0, 3.0, 5.0)}


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def _facts(case_id: str, *tumours: Tumour) -> dict:
    return ReportFacts(case_id, list(tumours)).to_dict()


def _write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _write_csv(path: Path, rows: list[dict]) -> Path:
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, cols)
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    make_cohort(3, 11, out, **SMALL)
    return out


# ------------------------------------------------------------------ reading
def test_phantom_cohort_manifest_reads_as_is(cohort: Path) -> None:
    m = read_manifest(cohort / "manifest.csv")
    assert m.case_ids() == ["phantom_000", "phantom_001", "phantom_002"]
    assert m.label_map is LM and not m.problems
    for row in m:
        assert not row.problems
        assert row.ct == (cohort / row.case_id / "ct.nii.gz").resolve() and row.ct.is_file()
        assert row.organs.is_file() and row.tumours.is_file() and row.facts_path.is_file()
        on_disk = json.loads(row.facts_path.read_text())
        assert row.facts == ReportFacts.from_dict(on_disk) and row.facts.case_id == row.case_id
        assert row.split == "train"
        assert row.extra == {"report": f"{row.case_id}/report.txt"}
    sub = m.subset(["phantom_002", "phantom_000", "other"])
    assert sub.case_ids() == ["phantom_000", "phantom_002"] and sub.label_map is m.label_map


def test_jsonl_manifest_relative_paths_alias_split_and_extras(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lines = [
        {"case_id": "a", "image": "imgs/a.nii.gz", "organs": None, "split": "VAL", "age": 61},
        {"case_id": "b", "ct": str(tmp_path / "abs" / "b.nii.gz"), "tumours": "../masks/b.nii.gz", "split": ""},
        "not an object",
        {"case_id": "c", "ct": "c.nii.gz", "split": "holdout"},
    ]
    data.mkdir()
    (data / "m.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    m = read_manifest(data / "m.jsonl")
    a, b, bad, c = m.rows
    assert a.ct == (data / "imgs" / "a.nii.gz").resolve() and a.organs is None and a.split == "val"
    assert a.extra == {"age": 61} and not a.problems
    assert b.ct == tmp_path / "abs" / "b.nii.gz" and b.tumours == (tmp_path / "masks" / "b.nii.gz").resolve()
    assert b.split == "train"
    assert [p.code for p in bad.problems] == ["bad_row"] and bad.label == "row 3"
    assert [p.code for p in c.problems] == ["bad_split"]


def test_row_problems_are_kept_and_never_stop_other_rows(tmp_path: Path) -> None:
    _write_json(tmp_path / "f" / "ok.json", _facts("ok", Tumour("liver", None, [20.0])))
    zero = _write_json(tmp_path / "f" / "zero.json", _facts("zero", Tumour("pancreas", "head", [0.0])))
    heart = _write_json(tmp_path / "f" / "heart.json", _facts("heart", Tumour("heart", None, [10.0])))
    (tmp_path / "f" / "broken.json").write_text("{not json", encoding="utf-8")
    _write_json(tmp_path / "f" / "odd.json", {"case_id": "odd", "tumours": [{"organ": "liver", "diameters_mm": ["x"]}]})
    rows = [
        {"case_id": "ok", "ct": "ok.nii.gz", "facts": "f/ok.json"},
        {"case_id": "", "ct": "x.nii.gz"},
        {"case_id": "ok", "ct": "dup.nii.gz"},
        {"case_id": "noct", "ct": ""},
        {"case_id": "a/b", "ct": "ab.nii.gz"},
        {"case_id": "zero", "ct": "z.nii.gz", "facts": str(zero)},
        {"case_id": "heart", "ct": "h.nii.gz", "facts": str(heart)},
        {"case_id": "broken", "ct": "b.nii.gz", "facts": "f/broken.json"},
        {"case_id": "gone", "ct": "g.nii.gz", "facts": "f/gone.json"},
        {"case_id": "other", "ct": "o.nii.gz", "facts": "f/ok.json"},
        {"case_id": "odd", "ct": "odd.nii.gz", "facts": "f/odd.json"},
    ]
    m = read_manifest(_write_csv(tmp_path / "m.csv", rows))
    assert [(r.label, [p.code for p in r.problems]) for r in m] == [
        ("ok", []), ("row 2", ["missing_case_id"]), ("ok", ["duplicate_case_id"]), ("noct", ["missing_ct"]),
        ("a/b", ["bad_case_id"]), ("zero", ["size_out_of_range"]), ("heart", ["facts_invalid"]),
        ("broken", ["facts_unreadable"]), ("gone", ["missing_file"]), ("other", ["facts_case_mismatch"]),
        ("odd", ["facts_invalid"]),
    ]
    assert m.rows[0].facts is not None and m.rows[0].facts.tumours[0].diameters_mm == [20.0]
    assert m.by_id("zero").facts is None and m.by_id("heart").facts is None
    assert m.by_id("other").facts is not None, "a case-id mismatch is a warning: the facts are kept"
    assert not m.rows[0].has_errors and m.by_id("zero").has_errors and not m.by_id("other").has_errors


def test_facts_jsonl_join_fills_only_empty_facts(tmp_path: Path) -> None:
    own = _write_json(tmp_path / "own.json", _facts("a", Tumour("liver", "segment_7", [30.0])))
    jsonl = tmp_path / "facts.jsonl"
    records = [
        _facts("a", Tumour("pancreas", "tail", [11.0])),
        _facts("b", Tumour("kidney_left", None, [14.0])),
        _facts("b", Tumour("kidney_right", None, [15.0])),  # a later record of the same case replaces it
        _facts("c", Tumour("pancreas", "nose", [9.0])),
    ]
    lines = [json.dumps(r) for r in records] + ["{broken"]
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = [{"case_id": k, "ct": f"{k}.nii.gz", "facts": "own.json" if k == "a" else ""} for k in "abcd"]
    m = read_manifest(_write_csv(tmp_path / "m.csv", rows), facts_jsonl=jsonl)
    a, b, c, d = m.rows
    assert a.facts.tumours[0].organ == "liver" and a.facts_path == own.resolve()
    assert b.facts.tumours[0].organ == "kidney_right" and b.facts_path is None and not b.problems
    assert c.facts is None and [p.code for p in c.problems] == ["facts_invalid"]
    assert d.facts is None and not d.problems
    assert [p.code for p in m.problems] == ["facts_unreadable"] and "facts.jsonl:5" in m.problems[0].message
    with pytest.raises(FileNotFoundError):
        read_manifest(tmp_path / "m.csv", facts_jsonl=tmp_path / "nope.jsonl")


def test_unusable_manifests_raise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_manifest(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="ct"):
        read_manifest(_write_csv(tmp_path / "m.csv", [{"case_id": "a", "organs": "o.nii.gz"}]))
    m = read_manifest(_write_csv(tmp_path / "m2.csv", [{"CASE_ID": "a", "Image": "a.nii.gz"}]))
    assert m.rows[0].ct == (tmp_path / "a.nii.gz").resolve(), "column names are case-insensitive"


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_write_manifest_round_trip(cohort: Path, tmp_path: Path, suffix: str) -> None:
    m = read_manifest(cohort / "manifest.csv")
    m.rows[1].split = "test"
    m.rows[2].organs = None
    out = write_manifest(m.rows, tmp_path / "sub" / f"copy{suffix}")
    back = read_manifest(out)
    for r, s in zip(m.rows, back.rows):
        assert (s.case_id, s.ct, s.organs, s.tumours, s.facts_path, s.split) == (
            r.case_id, r.ct, r.organs, r.tumours, r.facts_path, r.split)
        assert s.facts == r.facts
    text = out.read_text()
    assert str(cohort) not in text, "paths are written relative to the new manifest's folder"


def test_label_map_from_json(cohort: Path, tmp_path: Path) -> None:
    small = LabelMap({0: "background", 1: "liver_segment_1"}, {0: (0, 0, 0), 1: (200, 100, 50)}, name="tiny")
    path = _write_json(tmp_path / "labels.json", small.to_dict())
    m = read_manifest(cohort / "manifest.csv", label_map=path)
    assert m.label_map.labels == small.labels and m.label_map.name == "tiny"
    problems = validate_manifest(m)
    assert {p.code for p in problems if p.severity == "error"} == {"unknown_labels"}


# ------------------------------------------------------------------ validation
@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Phantom, dict[str, Path]]:
    ph = make_phantom(7, tumours=[TumourSpec("pancreas", "head", 18.0), TumourSpec("kidney_left", None, 15.0)],
                      **SMALL)
    paths = ph.save(tmp_path_factory.mktemp("base") / "base")
    return ph, paths


def _broken_dataset(root: Path, ph: Phantom, paths: dict[str, Path]) -> tuple[Path, list[set[str]]]:
    """A manifest of cases broken one way each, and the problem codes each row must produce (exactly)."""
    ct, organs, tumours = (str(paths[k]) for k in ("ct", "organs", "tumours"))
    aff = ph.affine
    pancreas = Tumour("pancreas", "head", [18.0])

    def fj(case_id: str, *t: Tumour) -> str:
        data = ReportFacts(case_id, list(t) or ph.facts.tumours).to_dict()  # no tumours given: the phantom's own
        return str(_write_json(root / "facts" / f"{case_id}.json", data))

    def nii(name: str, data: np.ndarray, affine: np.ndarray = aff) -> str:
        return str(_save(root / "nii" / f"{name}.nii.gz", data, affine))

    garbage = root / "nii" / "garbage.nii.gz"
    garbage.parent.mkdir(parents=True, exist_ok=True)
    garbage.write_bytes(b"this is not a NIfTI file at all" * 20)
    no_pancreas = ph.organs.copy()
    no_pancreas[np.isin(no_pancreas, labels_for("pancreas", None, LM))] = 0
    with_99 = ph.organs.copy()
    with_99[0, 0, 0] = 99
    outside = ph.tumours.copy()
    outside[1:3, 1:3, 1:3] = 9  # a corner of the field of view: air, no organ
    shifted, nudged = aff.copy(), aff.copy()
    shifted[0, 3] += 0.5
    nudged[0, 3] += 1e-4
    twelve = [Tumour("liver", f"segment_{k % 8 + 1}", [8.0]) for k in range(12)]
    cases: list[tuple[dict, set[str]]] = [
        ({"case_id": "good_mask", "ct": ct, "organs": organs, "tumours": tumours}, set()),
        ({"case_id": "good_report", "ct": ct, "organs": organs, "facts": fj("good_report")}, set()),
        ({"case_id": "good_both", "ct": ct, "organs": organs, "tumours": tumours, "facts": fj("good_both")},
         {"mask_and_facts"}),
        ({"case_id": "good_nudged", "ct": ct, "organs": nii("nudged", ph.organs, nudged)}, {"no_tumour_supervision"}),
        ({"case_id": "other_organ", "ct": ct, "facts": fj("other_organ", Tumour("spleen", None, [20.0]))}, set()),
        ({"case_id": "missing", "ct": str(root / "nope.nii.gz"), "tumours": tumours}, {"missing_file"}),
        ({"case_id": "unreadable", "ct": str(garbage), "tumours": tumours}, {"unreadable"}),
        ({"case_id": "four_d", "ct": nii("4d", ph.ct[..., None].repeat(2, axis=3)), "tumours": tumours}, {"not_3d"}),
        ({"case_id": "bad_shape", "ct": ct, "organs": nii("crop", ph.organs[:-2]), "tumours": tumours},
         {"geometry_mismatch"}),
        ({"case_id": "bad_affine", "ct": ct, "organs": organs, "tumours": nii("shifted", ph.tumours, shifted)},
         {"geometry_mismatch"}),
        ({"case_id": "bad_labels", "ct": ct, "organs": nii("with99", with_99), "tumours": tumours},
         {"unknown_labels"}),
        ({"case_id": "bad_tumour_values", "ct": ct, "organs": organs,
          "tumours": nii("half", ph.tumours.astype(np.float32) * 0.5)}, {"unknown_labels"}),
        ({"case_id": "no_organs", "ct": ct, "facts": fj("no_organs", pancreas)}, {"no_organ_mask"}),
        ({"case_id": "absent", "ct": ct, "organs": nii("nopanc", no_pancreas), "facts": fj("absent", pancreas)},
         {"organ_absent"}),
        ({"case_id": "unknown_size", "ct": ct, "organs": organs,
          "facts": fj("unknown_size", pancreas, Tumour("kidney_left", None, []))}, {"unknown_size"}),
        ({"case_id": "multiple", "ct": ct, "organs": organs,
          "facts": fj("multiple", Tumour("pancreas", "head", [9.0], count=2, count_is_lower_bound=True))},
         {"unknown_size"}),
        ({"case_id": "huge", "ct": ct, "organs": organs, "facts": fj("huge", Tumour("pancreas", "head", [350.0]))},
         {"size_out_of_range"}),
        ({"case_id": "zero", "ct": ct, "organs": organs, "facts": fj("zero", Tumour("pancreas", "head", [0.0]))},
         {"size_out_of_range"}),
        ({"case_id": "many", "ct": ct, "organs": organs, "facts": fj("many", *twelve)}, {"too_many_tumours"}),
        ({"case_id": "organs_only", "ct": ct, "organs": organs}, {"no_tumour_supervision"}),
        ({"case_id": "outside", "ct": ct, "organs": organs, "tumours": nii("outside", outside)},
         {"tumour_outside_organs"}),
        ({"case_id": "whole_liver", "ct": ct, "organs": organs,
          "facts": fj("whole_liver", Tumour("liver", None, [20.0]))}, {"segment_too_large"}),
        ({"case_id": "wrong_facts", "ct": ct, "organs": organs, "facts": str(paths["facts"])},
         {"facts_case_mismatch"}),
        ({"case_id": "good_mask", "ct": ct, "tumours": tumours}, {"duplicate_case_id"}),
    ]
    return _write_csv(root / "manifest.csv", [c for c, _ in cases]), [codes for _, codes in cases]


ERRORS = {"missing_file", "unreadable", "not_3d", "geometry_mismatch", "unknown_labels", "no_organ_mask",
          "organ_absent", "size_out_of_range", "duplicate_case_id"}
WARNINGS = {"unknown_size", "too_many_tumours", "no_tumour_supervision", "tumour_outside_organs",
            "segment_too_large", "facts_case_mismatch"}


def test_every_problem_from_its_broken_case_and_none_from_good_cases(base, tmp_path: Path) -> None:
    ph, paths = base
    manifest_path, expected = _broken_dataset(tmp_path, ph, paths)
    m = read_manifest(manifest_path)
    per_row = [validate_row(r, m.label_map, patch_size_mm=96) for r in m.rows]
    assert [(r.label, {p.code for p in found}) for r, found in zip(m.rows, per_row)] == [
        (r.label, codes) for r, codes in zip(m.rows, expected)]
    problems = validate_manifest(m, patch_size_mm=96)
    assert problems == [p for found in per_row for p in found]
    for p in problems:
        want = "error" if p.code in ERRORS else "warning" if p.code in WARNINGS else "info"
        assert p.severity == want, p
    # the summary counts by case id: both rows of a duplicated id count as cases with errors
    by_id: dict[str, set[str]] = {}
    for r, codes in zip(m.rows, expected):
        by_id.setdefault(r.label, set()).update(codes)
    worst = [by_id[r.label] for r in m.rows]
    s = summarize(m, problems)
    assert s.n_cases == len(expected)
    assert s.with_errors == sum(bool(codes & ERRORS) for codes in worst)
    assert s.with_warnings == sum(bool(codes & WARNINGS) and not codes & ERRORS for codes in worst)
    assert s.ok == sum(codes <= {"mask_and_facts"} for codes in worst) == 3


def test_options_change_what_is_reported(base, tmp_path: Path) -> None:
    ph, paths = base
    facts = _write_json(tmp_path / "f.json", _facts("c", Tumour("liver", None, [20.0]),
                                                    *[Tumour("pancreas", "tail", [5.0])] * 4))
    row = {"case_id": "c", "ct": str(paths["ct"]), "organs": str(paths["organs"]), "facts": str(facts)}
    m = read_manifest(_write_csv(tmp_path / "m.csv", [row]))
    assert {p.code for p in validate_manifest(m)} == set(), "no patch size: no segment check"
    assert {p.code for p in validate_manifest(m, patch_size_mm=(200, 200, 200))} == set()
    assert {p.code for p in validate_manifest(m, patch_size_mm=(200, 200, 40))} == {"segment_too_large"}
    assert {p.code for p in validate_manifest(m, max_tumours=3)} == {"too_many_tumours"}
    assert {p.code for p in validate_manifest(m, lesion_organs=("kidney",))} == set()
    no_organs = read_manifest(_write_csv(tmp_path / "m2.csv", [{k: v for k, v in row.items() if k != "organs"}]))
    assert {p.code for p in validate_manifest(no_organs, lesion_organs=("kidney",))} == set()
    assert {p.code for p in validate_manifest(no_organs, lesion_organs=("liver",))} == {"no_organ_mask"}


def test_validation_reads_no_ct_voxels(base, tmp_path: Path, monkeypatch) -> None:
    ph, paths = base
    m = read_manifest(_write_csv(tmp_path / "m.csv", [{"case_id": "a", "ct": str(paths["ct"])}]))
    loaded: list[str] = []
    real = nib.load

    def spy(path, *a, **k):
        img = real(path, *a, **k)
        loaded.append(Path(path).name)
        return img

    def no_voxels(*a, **k):
        pytest.fail("CT voxels were read")

    monkeypatch.setattr(nib, "load", spy)
    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "__array__", no_voxels)
    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "__getitem__", no_voxels)
    assert {p.code for p in validate_manifest(m)} == {"no_tumour_supervision"}
    assert loaded == ["ct.nii.gz"]


def test_print_validation_summary_line(cohort: Path) -> None:
    from rich.console import Console

    m = read_manifest(cohort / "manifest.csv")
    console = Console(record=True, width=200)
    summary = print_validation(m, validate_manifest(m), console)
    text = console.export_text()
    assert "3 cases: 3 ok, 0 with warnings, 0 with errors" in text and "mask_and_facts" in text
    assert summary.ok == 3


# ------------------------------------------------------------------ command
def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rsuper")
    sub = parser.add_subparsers()
    command_validate.add_parser(sub).set_defaults(_run=command_validate.run)
    args = parser.parse_args(argv)
    return args._run(args)


def test_validate_command_exit_codes_and_json(cohort: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "p.json"
    assert _cli(["validate", "--manifest", str(cohort / "manifest.csv"), "--json", str(out), "--progress", "none"]) == 0
    report = json.loads(out.read_text())
    assert report["summary"]["ok"] == 3 and {p["code"] for p in report["problems"]} == {"mask_and_facts"}
    rows = list(csv.DictReader(open(cohort / "manifest.csv", encoding="utf-8")))
    rows[1]["ct"] = "missing.nii.gz"
    rows[2]["tumours"] = ""  # warnings only do not fail
    rows[2]["facts"] = ""
    broken = _write_csv(cohort / "broken.csv", rows)
    assert _cli(["validate", "--manifest", str(broken), "--progress", "none"]) == 1
    assert "missing_file" in capsys.readouterr().out
    rows[1]["ct"] = rows[0]["ct"]
    assert _cli(["validate", "--manifest", str(_write_csv(cohort / "warn.csv", rows)), "--progress", "none"]) == 0
    assert _cli(["validate", "--manifest", str(tmp_path / "none.csv")]) == 2
    assert _cli(["validate", "--manifest", str(broken), "--lesion-organs", "heart"]) == 2
