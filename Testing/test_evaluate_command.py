"""``rsuper evaluate`` on a tiny folder of NIfTIs: broken cases are reported, the others scored."""

import argparse
import csv
import gzip
import json

import nibabel as nib
import numpy as np
import pytest

from rsuper.evaluate import command_evaluate
from rsuper.evaluate.metrics import dice

SHAPE = (24, 22, 16)
AFFINE = np.diag([1.5, 1.5, 2.5, 1.0])


def _evaluate(argv):
    parser = argparse.ArgumentParser()
    command_evaluate.add_parser(parser.add_subparsers())
    return command_evaluate.run(parser.parse_args(["evaluate", *argv]))


def _save(path, data, affine=AFFINE):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))


def _box(lo, hi, value=1, dtype=np.uint8):
    out = np.zeros(SHAPE, dtype)
    out[tuple(slice(a, b) for a, b in zip(lo, hi))] = value
    return out


@pytest.fixture()
def folders(tmp_path):
    pred, truth, probs = tmp_path / "pred", tmp_path / "truth", tmp_path / "probs"
    # three good cases with tumours, two without
    cases = {
        "a": (_box((4, 4, 4), (12, 12, 10)), _box((5, 4, 4), (12, 12, 10))),  # found, 20 mm long: large
        "b": (_box((2, 2, 2), (5, 5, 5)), np.zeros(SHAPE, np.uint8)),  # small tumour missed
        "c": (_box((14, 14, 8), (22, 20, 14), 3), _box((15, 14, 8), (22, 20, 14))),  # found, instance id 3
        "n1": (np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)),
        "n2": (np.zeros(SHAPE, np.uint8), _box((0, 0, 0), (6, 6, 6))),  # a false positive of 216 voxels, 1215 mm³
    }
    for i, (case, (truth_data, pred_data)) in enumerate(cases.items()):
        truth_path = truth / case / "tumours.nii.gz" if case == "c" else truth / f"{case}.nii.gz"
        _save(truth_path, truth_data)
        _save(pred / f"{case}.nii.gz", pred_data)
        _save(probs / f"{case}.nii.gz", (0.1 + 0.2 * i + 0.5 * (truth_data > 0)).clip(0, 1).astype(np.float32))
    # broken cases
    _save(truth / "broken.nii.gz", _box((1, 1, 1), (3, 3, 3)))
    data = (truth / "broken.nii.gz").read_bytes()
    (truth / "broken.nii.gz").write_bytes(gzip.compress(gzip.decompress(data)[:-2000]))  # truncated volume
    _save(pred / "broken.nii.gz", np.zeros(SHAPE, np.uint8))
    _save(truth / "shape.nii.gz", _box((1, 1, 1), (3, 3, 3)))
    _save(pred / "shape.nii.gz", np.zeros((24, 22, 15), np.uint8))
    _save(truth / "moved.nii.gz", _box((1, 1, 1), (3, 3, 3)))
    moved = AFFINE.copy()
    moved[0, 3] = 4.0
    _save(pred / "moved.nii.gz", np.zeros(SHAPE, np.uint8), moved)
    _save(pred / "lonely.nii.gz", np.zeros(SHAPE, np.uint8))  # no truth
    _save(pred / "soft.nii.gz", np.full(SHAPE, 0.3, np.float32))  # a probability map given as a mask
    _save(truth / "soft.nii.gz", np.zeros(SHAPE, np.uint8))
    return {"pred": pred, "truth": truth, "probs": probs, "truth_a": cases["a"][0], "pred_a": cases["a"][1]}


def _rows(path):
    with path.open(newline="", encoding="utf-8") as fh:
        return {row["case_id"]: row for row in csv.DictReader(fh)}


def test_cli_scores_good_cases_and_reports_broken_ones(folders, tmp_path, capsys):
    out = tmp_path / "results" / "metrics.csv"
    split = tmp_path / "val.txt"
    split.write_text("# validation cases\ncase_id\na\nn1\n\n", encoding="utf-8")
    code = _evaluate(["--pred", str(folders["pred"]), "--truth", str(folders["truth"]),
                      "--probabilities", str(folders["probs"]), "--split", str(split), "--out", str(out),
                      "--bootstrap", "50", "--progress", "none"])
    assert code == 0
    rows = _rows(out)
    assert sorted(rows) == ["a", "b", "broken", "c", "lonely", "moved", "n1", "n2", "shape", "soft"]
    assert {c for c, r in rows.items() if r["status"] == "ok"} == {"a", "b", "c", "n1", "n2"}
    assert "cannot read the truth" in rows["broken"]["error"]
    assert "geometry mismatch" in rows["shape"]["error"] and "(24, 22, 15)" in rows["shape"]["error"]
    assert "affine differs" in rows["moved"]["error"] and "4 mm" in rows["moved"]["error"]
    assert rows["lonely"]["error"] == "no truth file for this prediction"
    assert "non-integer" in rows["soft"]["error"]
    a = rows["a"]
    assert float(a["dice"]) == pytest.approx(dice(folders["pred_a"], folders["truth_a"]))
    assert a["split"] == "validation" and rows["b"]["split"] == "test"
    assert a["size_group"] == "large" and rows["b"]["size_group"] == "small"
    assert (rows["b"]["tp_small"], rows["b"]["fn_small"], rows["b"]["pred_volume_mm3"]) == ("0", "1", "0.0")
    assert float(a["max_probability"]) == pytest.approx(0.6) and float(a["nsd"]) > 0.5
    assert rows["c"]["tp"] == "1" and rows["n1"]["dice"] == "1.0" and rows["n1"]["size_group"] == ""

    summary = json.loads(out.with_suffix(".summary.json").read_text(encoding="utf-8"))
    assert summary["cases"]["scored"] == 5 and summary["cases"]["errors"] == 5
    assert summary["cases"]["validation"] == 2 and summary["cases"]["reported"] == 3
    assert {e["case_id"] for e in summary["errors"]} == {"broken", "shape", "moved", "lonely", "soft"}
    threshold = summary["groups"]["all"]["threshold"]["value_mm3"]
    assert threshold is not None and threshold <= float(a["pred_volume_mm3"])  # a is found on validation
    assert {r["called_positive"] for r in rows.values() if r["status"] == "error"} == {""}
    assert summary["options"]["nsd_mm"] == 2.0 and summary["options"]["bootstrap"] == 50
    printed = capsys.readouterr()
    assert "Evaluation (3 cases reported" in printed.out and "broken" in printed.out
    assert "geometry mismatch" in printed.out


def test_cli_without_split_or_probabilities(folders, tmp_path):
    out = tmp_path / "m.csv"
    assert _evaluate(["--pred", str(folders["pred"]), "--truth", str(folders["truth"]), "--out", str(out),
                      "--bootstrap", "0", "--nsd-mm", "1", "--progress", "none"]) == 0
    summary = json.loads((tmp_path / "m.summary.json").read_text(encoding="utf-8"))
    group = summary["groups"]["all"]
    assert group["threshold"]["value_mm3"] is None and group["sensitivity"]["value"] is None
    assert group["auc"]["value"] is None and group["dice"]["ci_low"] is None
    assert group["n_cases"] == 5 and len(group["sweep"]["f1"]) == 279


def test_cli_splits_by_organ(folders, tmp_path):
    organs = tmp_path / "organs"
    for case in ("a", "b", "c", "n1", "n2"):
        labels = np.zeros(SHAPE, np.uint8)
        labels[:13] = 32  # pancreas head on the low I half (tumours a, b and the false positive of n2)
        labels[13:] = 3  # left kidney (tumour c)
        _save(organs / case / "organs.nii.gz", labels)
    out = tmp_path / "o.csv"
    assert _evaluate(["--pred", str(folders["pred"]), "--truth", str(folders["truth"]), "--organs", str(organs),
                      "--lesion-organs", "pancreas,kidney", "--out", str(out), "--bootstrap", "0",
                      "--threshold-mm3", "100", "--progress", "none"]) == 0
    rows = _rows(out)
    assert rows["c"]["kidney_truth_has_tumour"] == "True" and rows["c"]["pancreas_truth_has_tumour"] == "False"
    assert rows["n2"]["pancreas_called_positive"] == "True" and rows["n2"]["kidney_called_positive"] == "False"
    assert "liver_dice" not in rows["a"]
    assert "no organ mask" in rows["broken"]["error"] or "cannot read" in rows["broken"]["error"]
    summary = json.loads(out.with_suffix(".summary.json").read_text(encoding="utf-8"))
    assert summary["groups"]["kidney"]["n_positive"] == 1 and summary["groups"]["pancreas"]["n_positive"] == 2


def test_cli_usage_errors_and_nothing_scored(folders, tmp_path, capsys):
    base = ["--truth", str(folders["truth"]), "--out", str(tmp_path / "x.csv"), "--progress", "none"]
    assert _evaluate(["--pred", str(tmp_path / "missing"), *base]) == 2
    assert "is not a folder" in capsys.readouterr().err
    split = tmp_path / "v.txt"
    split.write_text("a\n", encoding="utf-8")
    assert _evaluate(["--pred", str(folders["pred"]), *base, "--split", str(split), "--threshold-mm3", "50"]) == 2
    assert _evaluate(["--pred", str(folders["pred"]), *base, "--lesion-organs", "brain",
                      "--organs", str(folders["truth"])]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _evaluate(["--pred", str(empty), *base, "--bootstrap", "0"]) == 1  # every case lacks a prediction
