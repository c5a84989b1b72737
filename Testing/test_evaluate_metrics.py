"""Evaluation metrics (rsuper.evaluate.metrics) and figures (rsuper.evaluate.plots)."""

import json
import math
import struct

import numpy as np
import pytest

from rsuper.evaluate.metrics import (
    CaseLevelCounts,
    DetectionCounts,
    case_level,
    detection,
    dice,
    evaluate_case,
    f1,
    precision,
    recall,
    sensitivity,
    specificity,
    summarise,
    surface_dice,
)
from rsuper.evaluate.plots import plot_loss_curves, plot_metric_bars, read_progress

SHAPE = (32, 32, 24)


def _box(lo, hi, shape=SHAPE):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return mask


# -- voxel overlap ---------------------------------------------------------------------------------


def test_dice_of_known_overlaps():
    a = _box((2, 2, 2), (12, 12, 12))  # 1000 voxels
    b = _box((7, 2, 2), (17, 12, 12))  # shifted by half: 500 shared
    assert dice(a, b) == pytest.approx(2 * 500 / 2000)
    c = _box((2, 2, 2), (12, 12, 7))  # half of a, inside it
    assert dice(a, c) == pytest.approx(2 * 500 / 1500)
    assert dice(a, a) == 1.0
    assert dice(a, np.zeros(SHAPE, bool)) == 0.0
    assert dice(np.zeros(SHAPE, bool), np.zeros(SHAPE, np.uint16)) == 1.0  # both empty
    assert dice(a.astype(np.uint8) * 5, b.astype(np.uint16) * 2) == pytest.approx(0.5)  # non-zero = foreground
    with pytest.raises(ValueError):
        dice(a, a[:-1])


def test_surface_dice_tolerance_in_mm():
    a = _box((8, 8, 8), (18, 18, 16))
    shifted = np.roll(a, 1, axis=0)
    assert surface_dice(a, a, (1.0, 1.0, 1.0), 1.0) == pytest.approx(1.0)
    assert surface_dice(a, shifted, (1.0, 1.0, 1.0), 1.0) == pytest.approx(1.0)
    partial = surface_dice(a, shifted, (1.0, 1.0, 1.0), 0.5)
    assert 0.3 < partial < 1.0
    assert surface_dice(a, shifted, (0.4, 1.0, 1.0), 0.5) == pytest.approx(1.0)  # the shift is 0.4 mm
    empty = np.zeros(SHAPE, bool)
    assert surface_dice(empty, empty, (1, 1, 1)) == 1.0
    assert surface_dice(a, empty, (1, 1, 1)) == 0.0 and surface_dice(empty, a, (1, 1, 1)) == 0.0


# -- detection -------------------------------------------------------------------------------------


def test_detection_two_tumours_one_found_one_spurious():
    truth = np.zeros(SHAPE, np.uint16)
    truth[_box((2, 2, 2), (8, 8, 8))] = 1
    truth[_box((20, 20, 14), (26, 26, 20))] = 2
    pred = _box((5, 5, 5), (10, 10, 10)) | _box((2, 25, 2), (5, 28, 5))  # finds 1; a spurious blob
    counts = detection(pred, truth)
    assert counts == DetectionCounts(tp=1, fp=1, fn=1)
    assert precision(counts) == 0.5 and recall(counts) == 0.5 and f1(counts) == pytest.approx(0.5)


def test_detection_merged_split_and_minimum_overlap():
    truth = np.zeros(SHAPE, np.uint16)
    truth[_box((2, 2, 2), (6, 6, 6))] = 3
    truth[_box((8, 2, 2), (12, 6, 6))] = 9  # instance values need not be consecutive
    bridge = _box((4, 3, 3), (10, 4, 4))  # one component touching both tumours
    assert detection(bridge, truth) == DetectionCounts(tp=2, fp=0, fn=0)
    split = _box((2, 2, 2), (3, 3, 3)) | _box((5, 5, 5), (6, 6, 6))  # two components on tumour 3
    assert detection(split, truth) == DetectionCounts(tp=1, fp=0, fn=1)
    graze = _box((5, 5, 5), (7, 7, 7))  # 8 voxels, 1 inside tumour 3
    assert detection(graze, truth, min_overlap_voxels=1) == DetectionCounts(1, 0, 1)
    assert detection(graze, truth, min_overlap_voxels=2) == DetectionCounts(0, 1, 2)
    binary_truth = truth != 0  # labelled into components first
    assert detection(bridge, binary_truth) == DetectionCounts(tp=2, fp=0, fn=0)
    assert detection(np.zeros(SHAPE, bool), np.zeros(SHAPE, np.uint16)) == DetectionCounts(0, 0, 0)


def test_ratios_are_nan_when_undefined():
    nothing = DetectionCounts()
    assert math.isnan(precision(nothing)) and math.isnan(recall(nothing)) and math.isnan(f1(nothing))
    missed = DetectionCounts(tp=0, fp=0, fn=3)
    assert math.isnan(precision(missed)) and recall(missed) == 0.0 and f1(missed) == 0.0
    assert DetectionCounts(1, 2, 3) + DetectionCounts(4, 5, 6) == DetectionCounts(5, 7, 9)


def test_case_level_sensitivity_and_specificity():
    volumes = [0.0, 50.0, 150.0, 500.0, 1000.0]
    truth = [False, True, True, False, True]
    counts = case_level(volumes, truth, threshold_mm3=100.0)
    assert counts == CaseLevelCounts(tp=2, fp=1, tn=1, fn=1)
    assert sensitivity(counts) == pytest.approx(2 / 3) and specificity(counts) == pytest.approx(1 / 2)
    assert case_level(volumes, truth, threshold_mm3=150.0).tp == 2  # ">=" the threshold
    strict = case_level(volumes, truth, threshold_mm3=2000.0)
    assert sensitivity(strict) == 0.0 and specificity(strict) == 1.0
    assert math.isnan(specificity(case_level([10.0], [True], 5.0)))
    with pytest.raises(ValueError):
        case_level(volumes, truth, threshold_mm3=0.0)
    with pytest.raises(ValueError):
        case_level(volumes, truth[:-1], threshold_mm3=1.0)


def test_evaluate_case_and_summarise():
    spacing = (1.0, 1.0, 2.0)  # 2 mm³ per voxel
    truth = np.zeros(SHAPE, np.uint16)
    truth[_box((2, 2, 2), (8, 8, 8))] = 1  # 216 voxels
    truth[_box((20, 20, 14), (26, 26, 20))] = 2
    pred = _box((2, 2, 2), (8, 8, 5)) | _box((28, 28, 2), (30, 30, 4))  # half of tumour 1 + 8 spurious voxels
    tumour_case = evaluate_case(pred, spacing, truth, case_id="a", nsd_tolerance_mm=1.0)
    assert tumour_case["case_id"] == "a" and tumour_case["truth_has_tumour"] is True
    assert tumour_case["pred_volume_mm3"] == pytest.approx((108 + 8) * 2.0)
    assert tumour_case["truth_volume_mm3"] == pytest.approx(432 * 2.0)
    assert tumour_case["dice"] == pytest.approx(dice(pred, truth))
    assert (tumour_case["tp"], tumour_case["fp"], tumour_case["fn"]) == (1, 1, 1)
    assert 0.0 < tumour_case["nsd"] < 1.0

    clean_pred = _box((2, 2, 2), (8, 8, 8))
    healthy_case = evaluate_case(clean_pred, spacing, np.zeros(SHAPE, np.uint16), case_id="b")
    assert healthy_case["truth_has_tumour"] is False and healthy_case["dice"] == 0.0
    assert (healthy_case["tp"], healthy_case["fp"], healthy_case["fn"]) == (0, 1, 0)
    assert healthy_case["nsd"] is None

    report_case = evaluate_case(np.zeros(SHAPE, bool), spacing, truth_has_tumour=True, case_id="c")
    assert report_case["dice"] is None and report_case["tp"] is None and report_case["pred_volume_mm3"] == 0.0

    unknown_case = evaluate_case(clean_pred, spacing, case_id="d")
    assert unknown_case["truth_has_tumour"] is None

    summary = summarise([tumour_case, healthy_case, report_case, unknown_case], volume_threshold_mm3=100.0)
    assert summary["n_cases"] == 4
    assert summary["dice_cases"] == 1 and summary["dice_mean"] == pytest.approx(tumour_case["dice"])
    assert summary["nsd_cases"] == 1 and summary["nsd_mean"] == pytest.approx(tumour_case["nsd"])
    assert (summary["detection_tp"], summary["detection_fp"], summary["detection_fn"]) == (1, 2, 1)
    assert summary["detection_cases"] == 2
    assert summary["detection_precision"] == pytest.approx(1 / 3)
    assert summary["detection_recall"] == pytest.approx(1 / 2)
    assert summary["detection_f1"] == pytest.approx(2 / (2 + 2 + 1))
    # case level over a (positive, 232 mm³), b (negative, 432 mm³), c (positive, 0 mm³)
    assert (summary["case_tp"], summary["case_fp"], summary["case_tn"], summary["case_fn"]) == (1, 1, 0, 1)
    assert summary["case_cases"] == 3 and summary["case_threshold_mm3"] == 100.0
    assert summary["case_sensitivity"] == 0.5 and summary["case_specificity"] == 0.0
    json.dumps(summary)  # plain types only

    empty = summarise([])
    assert empty["n_cases"] == 0 and math.isnan(empty["dice_mean"]) and math.isnan(empty["case_sensitivity"])


# -- figures ---------------------------------------------------------------------------------------


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return len(data), width, height


def _events(n, start_loss, seed, with_terms=True):
    rng = np.random.default_rng(seed)
    events = [{"event": "start", "total": n}]
    for step in range(1, n + 1):
        loss = start_loss * math.exp(-step / 40) + 0.05 * rng.random()
        event = {"event": "progress", "step": step, "global_step": step, "loss": loss}
        if with_terms:
            event["terms"] = {"segmentation": 0.7 * loss, "volume": 0.2 * loss, "ball": 0.1 * loss}
        events.append(event)
    events.append({"event": "end", "done": n})
    return events


def test_loss_curves_png(tmp_path):
    runs = {"masks only": _events(120, 1.0, 0, with_terms=False), "masks + reports": _events(150, 1.4, 1)}
    out = plot_loss_curves(runs, tmp_path / "figs" / "loss.png")
    size, width, height = _png_size(out)
    assert size > 10_000
    assert width == 700 and height == 700  # 7 x (4 + 3) inches at 100 dpi: overlay + one terms panel
    single = plot_loss_curves(_events(30, 1.0, 2), tmp_path / "single.png", show_terms=False, log_y=True)
    assert _png_size(single)[1:] == (700, 400)
    with pytest.raises(ValueError):
        plot_loss_curves({"empty": [{"event": "start"}]}, tmp_path / "none.png")


def test_read_progress_skips_a_partial_last_line(tmp_path):
    path = tmp_path / "progress.jsonl"
    events = _events(5, 1.0, 3)
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + '{"event": "progr', encoding="utf-8")
    assert read_progress(path) == events
    path.write_text('{"event": "start"}\nnot json\n{"event": "end"}\n', encoding="utf-8")
    with pytest.raises(ValueError):
        read_progress(path)


def test_resumed_steps_keep_the_last_event(tmp_path):
    events = _events(20, 1.0, 4) + [{"event": "progress", "global_step": 10, "loss": 50.0}]
    plot_loss_curves(events, tmp_path / "a.png", show_terms=False)
    plot_loss_curves(events[:-1], tmp_path / "b.png", show_terms=False)
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()


def test_metric_bars_png(tmp_path):
    results = {
        "masks only": {"DSC": 0.41, "F1": 0.55, "sensitivity": 0.7},
        "masks + reports": {"DSC": 0.52, "F1": 0.63, "sensitivity": math.nan},
    }
    out = plot_metric_bars(results, tmp_path / "bars.png", title="Phantom test set")
    size, width, height = _png_size(out)
    assert size > 5_000 and height == 400 and width >= 500
    with pytest.raises(ValueError):
        plot_metric_bars({"run": {}}, tmp_path / "none.png")
