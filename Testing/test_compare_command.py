"""``rsuper compare`` end to end: phantom masks vs their reports, JSON, HTML pages, cohort summary, exit codes."""

import argparse
import html
import json
import re

import nibabel as nib
import numpy as np
import pytest
from compare_inputs import comparison_phantom, missed_tumour_and_normal_kidney, predicted_case

from rsuper.compare import command_compare
from rsuper.compare.pages import highlight_sentence
from rsuper.report.schema import ReportFacts

IMG = re.compile(r'<img src="data:image/png;base64,[A-Za-z0-9+/]+=*"')


def _compare(*args) -> int:
    """``rsuper compare ARGS`` through the command module's own parser (as rsuper.cli registers it)."""
    parser = argparse.ArgumentParser()
    command_compare.add_parser(parser.add_subparsers())
    return command_compare.run(parser.parse_args(["compare", *map(str, args)]))


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    return comparison_phantom(tmp_path_factory.mktemp("phantom"))


def _flags(path):
    return sorted(f["flag"] for f in json.loads(path.read_text())["findings"])


def test_ground_truth_mask_agrees_with_its_report(phantom_dir, tmp_path):
    phantom, paths = phantom_dir
    out, page = tmp_path / "comparison.json", tmp_path / "page.html"
    rc = _compare("--tumours", paths["tumours"], "--ct", paths["ct"], "--organs", paths["organs"],
                  "--facts", paths["facts"], "--out", out, "--html", page, "--report", paths["report"])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["case_id"] == "c1" and data["status"] == "agrees" and data["n_ai"] == 3 and data["n_report"] == 3
    by_organ = {f["organ"]: f for f in data["findings"]}
    assert set(by_organ) == {"pancreas", "liver", "kidney_left"}
    assert by_organ["pancreas"]["subsegment"] == "head" and by_organ["liver"]["subsegment"] == "segment_6"
    for finding in data["findings"]:
        assert abs(finding["difference_mm"]) <= 5.0  # the mask's RECIST diameter vs the written size
    text = page.read_text()
    assert len(IMG.findall(text)) == 3
    sentence = phantom.facts.tumours[0].evidence.text
    assert html.escape(sentence) in text.replace("<strong>", "").replace("</strong>", "")


def test_each_disagreement_from_a_deliberate_change(phantom_dir, tmp_path):
    phantom, paths = phantom_dir
    # The AI misses the pancreatic tumour, the report calls the left kidney normal and the liver tumour twice
    # its size.
    changed = missed_tumour_and_normal_kidney(phantom, paths, tmp_path, liver_diameters_mm=[50.0])
    out = tmp_path / "cmp.json"
    assert _compare("--tumours", changed.labels_path, "--organs", paths["organs"], "--facts", changed.facts_path,
                    "--case-id", "c1", "--out", out) == 0
    assert _flags(out) == ["normal_organ", "report_only", "size_differs"]
    data = json.loads(out.read_text())
    assert data["findings"][0]["flag"] == "size_differs"  # AI tumours first, in id order
    assert data["severity"] >= 3.0 and data["status"] == "disagrees"


def test_tumours_json_from_predict_with_pictures_and_escaped_text(tmp_path):
    files = predicted_case(tmp_path / "pred")
    page = tmp_path / "syn.html"
    rc = _compare("--tumours", files["json"], "--ct", files["ct"], "--facts", files["facts"], "--out",
                  tmp_path / "cmp.json", "--html", page, "--report", files["report"])
    assert rc == 0 and _flags(tmp_path / "cmp.json") == ["agrees"]
    text = page.read_text()
    assert len(IMG.findall(text)) == 1
    assert "<script>" not in text and "<b>" not in text
    assert "Liver &lt;b&gt;lesion&lt;/b&gt; &amp; co: <mark>a <strong>2.0 x 1.4 cm</strong> mass in segment 5</mark>" \
        " &lt;script&gt;x&lt;/script&gt;." in text


def test_highlight_without_the_report_marks_the_evidence_alone():
    evidence = {"text": "A 3 cm <cyst>.", "start": 0, "end": 14}
    assert highlight_sentence(None, evidence) == "<mark>A <strong>3 cm</strong> &lt;cyst&gt;.</mark>"
    assert highlight_sentence("other text entirely", evidence).startswith("<mark>")  # span does not match
    assert highlight_sentence("x", None) == ""


def test_cohort_summary_sorts_disagreements(phantom_dir, tmp_path):
    phantom, paths = phantom_dir
    preds, cts, organs = (tmp_path / d for d in ("preds", "cts", "organs"))
    for d in (preds, cts, organs):
        d.mkdir()
    img = nib.load(paths["tumours"])
    labels = np.asarray(img.dataobj)
    facts_lines = []
    for case_id, drop in (("good", None), ("bad", 2)):
        kept = np.where(labels == drop, 0, labels).astype(np.uint8) if drop else labels
        nib.save(nib.Nifti1Image(kept, img.affine), preds / f"{case_id}.nii.gz")
        for src, folder in ((paths["ct"], cts), (paths["organs"], organs)):
            (folder / f"{case_id}.nii.gz").write_bytes(src.read_bytes())
        facts_lines.append(ReportFacts.from_dict({**phantom.facts.to_dict(), "case_id": case_id}).to_json())
    facts_lines.append(ReportFacts("no_prediction", []).to_json())
    (tmp_path / "facts.jsonl").write_text("\n".join(facts_lines) + "\n")
    summary_page = tmp_path / "html" / "cohort.html"
    rc = _compare("--tumours", preds, "--ct", cts, "--organs", organs, "--facts", tmp_path / "facts.jsonl",
                  "--out", tmp_path / "cohort.json", "--html", summary_page)
    assert rc == 0
    data = json.loads((tmp_path / "cohort.json").read_text())
    assert data["n_cases"] == 2 and data["n_disagreeing_cases"] == 1
    assert [c["case_id"] for c in data["cases"]] == ["bad", "good"]
    assert [(d["case_id"], d["flag"], d["organ"]) for d in data["disagreements"]] == [("bad", "report_only", "liver")]
    assert data["missing"] == {"no_prediction": "no prediction"}
    text = summary_page.read_text()
    assert 'href="cohort_cases/bad.html"' in text
    assert len(IMG.findall((tmp_path / "html" / "cohort_cases" / "good.html").read_text())) == 3


def test_exit_codes(phantom_dir, tmp_path):
    _, paths = phantom_dir
    out = tmp_path / "cmp.json"
    base = ("--facts", paths["facts"], "--out", out)
    assert _compare("--tumours", paths["tumours"], *base) == 2  # a NIfTI needs the organ mask
    assert _compare("--tumours", tmp_path / "none.json", *base) == 2
    assert _compare("--tumours", paths["tumours"], "--organs", paths["organs"], "--case-id", "other", *base) == 2
    assert _compare("--tumours", paths["tumours"], "--organs", paths["organs"], "--size-tolerance", "-1", *base) == 2
    assert _compare("--tumours", paths["tumours"], "--organs", paths["organs"], "--assessed-organs", "brain",
                    *base) == 2
    (tmp_path / "bad.json").write_text("{}")
    assert _compare("--tumours", tmp_path / "bad.json", *base) == 2
    assert not out.exists()
