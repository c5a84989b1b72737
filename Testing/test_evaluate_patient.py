"""Per-patient detection: the threshold sweep, its choice on a validation split, bootstrap intervals, the summary."""

import json
import math

import numpy as np
import pytest

from rsuper.evaluate.analysis import called_positive, summarise_cohort
from rsuper.evaluate.bootstrap import percentile_interval, resample_indices, resampled_mean
from rsuper.evaluate.patient import VOLUME_THRESHOLDS_MM3, choose_threshold, sweep


def test_sweep_is_the_reference_threshold_set():
    # The reference's four ranges as its notes list them (the middle two overlap the others), de-duplicated.
    ranges = [range(10, 91, 10), range(100, 991, 10), range(100, 9901, 100), range(1000, 99001, 1000)]
    expected = sorted({t for r in ranges for t in r})
    assert VOLUME_THRESHOLDS_MM3.tolist() == [float(t) for t in expected]
    assert len(VOLUME_THRESHOLDS_MM3) == 279 and np.all(np.diff(VOLUME_THRESHOLDS_MM3) > 0)


def test_sweep_counts_are_monotone_in_the_threshold():
    rng = np.random.default_rng(0)
    volumes, truth = rng.exponential(2000.0, 50), rng.random(50) < 0.5
    result = sweep(volumes, truth)
    assert np.all(np.diff(result.tp) <= 0) and np.all(np.diff(result.fp) <= 0)  # fewer calls as T grows
    assert np.all(result.tp + result.fn == truth.sum()) and np.all(result.tn + result.fp == (~truth).sum())
    big = sweep([5.0, 10.0], [True, True], [10.0])
    assert big.tp[0] == 1  # ">= T" is a positive call
    with pytest.raises(ValueError):
        sweep(volumes, truth, [0.0, 10.0])


def test_choose_threshold_takes_the_middle_of_the_best_f1_plateau():
    volumes = [0.0, 50.0, 80.0, 300.0, 900.0, 5000.0]
    truth = [False, False, False, True, True, True]
    result = sweep(volumes, truth)
    chosen = choose_threshold(result)
    perfect = [t for t in VOLUME_THRESHOLDS_MM3 if 80.0 < t <= 300.0]  # every T that separates the two
    assert chosen == perfect[len(perfect) // 2]
    assert sweep(volumes, truth, [chosen]).f1[0] == 1.0
    # an imperfect split: the chosen T has the highest F1 of the sweep
    volumes2 = [0.0, 400.0, 120.0, 300.0, 90.0, 5000.0]
    result2 = sweep(volumes2, truth)
    assert sweep(volumes2, truth, [choose_threshold(result2)]).f1[0] == np.nanmax(result2.f1)
    assert choose_threshold(sweep([], [])) is None  # nothing to choose on


def _record(case_id, positive, volume, *, dice=None, score=None, size=None, lesions=(0, 0, 0)):
    tp, fp, fn = lesions
    small, large = (tp, fn) if size == "small" else (0, 0), (tp, fn) if size == "large" else (0, 0)
    return {
        "case_id": case_id, "status": "ok", "error": "", "warning": "",
        "truth_has_tumour": positive, "pred_volume_mm3": volume, "dice": dice, "nsd": dice,
        "max_probability": score, "size_group": size if positive else None,
        "tp": tp, "fp": fp, "fn": fn, "tp_small": small[0], "fn_small": small[1],
        "tp_large": large[0], "fn_large": large[1],
    }


def _cohort(n, seed, prefix="c"):
    """``n`` cases: half with a tumour (larger predicted volume and score, DSC around 0.7)."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        positive = bool(i % 2)
        volume = float(rng.exponential(3000.0) if positive else rng.exponential(400.0))
        records.append(_record(
            f"{prefix}{i}", positive, volume, dice=float(np.clip(rng.normal(0.7, 0.15), 0, 1)) if positive else 0.0,
            score=float(np.clip(rng.normal(0.75 if positive else 0.4, 0.2), 0, 1)),
            size="small" if positive and rng.random() < 0.4 else ("large" if positive else None),
            lesions=(int(rng.integers(0, 2)), int(rng.integers(0, 2)), int(rng.integers(0, 2)))))
    return records


def test_threshold_chosen_on_validation_and_reported_on_the_rest():
    validation = [_record("v0", False, 0.0), _record("v1", False, 50.0), _record("v2", False, 80.0),
                  _record("v3", True, 300.0), _record("v4", True, 900.0), _record("v5", True, 5000.0)]
    test = [_record("t0", False, 20.0), _record("t1", False, 400.0), _record("t2", True, 150.0),
            _record("t3", True, 250.0), _record("t4", True, 60.0), _record("t5", True, 70000.0)]
    broken = {"case_id": "x", "status": "error", "error": "geometry mismatch", "warning": ""}
    summary = summarise_cohort([*validation, *test, broken], validation_ids=[r["case_id"] for r in validation],
                               n_resamples=50)
    expected_t = choose_threshold(sweep([0.0, 50.0, 80.0, 300.0, 900.0, 5000.0], [False] * 3 + [True] * 3))
    group = summary["groups"]["all"]
    assert group["threshold"]["value_mm3"] == expected_t and group["threshold"]["how"].startswith("best F1")
    assert summary["cases"] == {"found": 13, "scored": 12, "errors": 1, "validation": 6, "reported": 6,
                                "split_ids_not_scored": []}
    assert summary["errors"] == [{"case_id": "x", "reason": "geometry mismatch"}]
    called = np.array([r["pred_volume_mm3"] >= expected_t for r in test])
    truth = np.array([r["truth_has_tumour"] for r in test])
    assert group["n_cases"] == 6 and group["n_positive"] == 4
    assert group["sensitivity"]["value"] == pytest.approx(np.sum(called & truth) / 4)
    assert group["specificity"]["value"] == pytest.approx(np.sum(~called & ~truth) / 2)
    assert len(group["threshold"]["sweep_validation"]["f1"]) == 279 and len(group["sweep"]["f1"]) == 279
    # the test cases do not move the threshold
    shifted = [dict(r, pred_volume_mm3=r["pred_volume_mm3"] * 7) for r in test]
    again = summarise_cohort([*validation, *shifted], validation_ids=[r["case_id"] for r in validation],
                             n_resamples=0)
    assert again["groups"]["all"]["threshold"]["value_mm3"] == expected_t
    rows = called_positive([*validation, *test], summary, [r["case_id"] for r in validation])
    assert [r["split"] for r in rows] == ["validation"] * 6 + ["test"] * 6
    assert [r["called_positive"] for r in rows[6:]] == called.tolist()
    json.dumps(summary, allow_nan=False)


def test_without_a_split_no_threshold_is_chosen():
    records = _cohort(20, seed=1)
    summary = summarise_cohort(records, n_resamples=20)
    group = summary["groups"]["all"]
    assert group["threshold"]["value_mm3"] is None and "no threshold" in group["threshold"]["note"]
    assert group["sensitivity"]["value"] is None and group["f1"]["value"] is None
    assert group["dice"]["value"] is not None and group["auc"]["value"] is not None
    assert len(group["sweep"]["sensitivity"]) == len(VOLUME_THRESHOLDS_MM3)
    assert all(r["called_positive"] is None and r["split"] == "" for r in called_positive(records, summary))
    given = summarise_cohort(records, threshold_mm3=500.0, n_resamples=0)
    assert given["groups"]["all"]["threshold"] == {"value_mm3": 500.0, "how": "given",
                                                   "note": "threshold given on the command line"}
    assert given["groups"]["all"]["sensitivity"]["value"] is not None
    no_positive = summarise_cohort(records, validation_ids=[r["case_id"] for r in records if not r["truth_has_tumour"]],
                                   n_resamples=0)
    assert no_positive["groups"]["all"]["threshold"]["value_mm3"] is None
    assert "no case with a tumour" in no_positive["groups"]["all"]["threshold"]["note"]


def test_size_groups_keep_all_negatives():
    records = _cohort(40, seed=2)
    summary = summarise_cohort(records, threshold_mm3=300.0, n_resamples=0)
    negatives = sum(not r["truth_has_tumour"] for r in records)
    small = [r for r in records if r["size_group"] == "small"]
    for name, members in (("small", small), ("large", [r for r in records if r["size_group"] == "large"])):
        group = summary["groups"][name]
        assert group["n_negative"] == negatives and group["n_positive"] == len(members)
        assert group["specificity"]["value"] == summary["groups"]["all"]["specificity"]["value"]
        assert group["dice"]["value"] == pytest.approx(np.mean([r["dice"] for r in members]))
    lesion = summary["groups"]["small"]["lesion"]
    assert lesion["tp"] == sum(r["tp_small"] for r in records) and "precision" not in lesion


def test_bootstrap_interval_contains_the_estimate_and_shrinks_with_more_cases():
    widths = {}
    for n in (30, 300):
        summary = summarise_cohort(_cohort(n, seed=n), threshold_mm3=500.0, n_resamples=400, seed=0)
        group = summary["groups"]["all"]
        for name in ("dice", "nsd", "sensitivity", "specificity", "f1", "auc"):
            metric = group[name]
            assert metric["ci_low"] <= metric["value"] <= metric["ci_high"], (n, name, metric)
        widths[n] = {name: group[name]["ci_high"] - group[name]["ci_low"]
                     for name in ("dice", "sensitivity", "specificity", "f1", "auc")}
    for name, wide in widths[30].items():
        assert widths[300][name] < 0.7 * wide, (name, widths)


def test_bootstrap_is_seeded_and_vectorised_means_match_a_loop():
    values = np.random.default_rng(3).random(25)
    values[::5] = np.nan  # left out of each mean
    indices = resample_indices(25, 50, seed=11)
    assert np.array_equal(indices, resample_indices(25, 50, seed=11))
    assert not np.array_equal(indices, resample_indices(25, 50, seed=12))
    means = resampled_mean(values, indices)
    assert means == pytest.approx([np.nanmean(values[row]) for row in indices])
    assert math.isnan(resampled_mean(np.full(4, np.nan), resample_indices(4, 3))[0])
    assert all(math.isnan(v) for v in percentile_interval(np.array([np.nan, np.nan])))
    records = _cohort(30, seed=4)
    one = summarise_cohort(records, threshold_mm3=400.0, n_resamples=100, seed=5)
    two = summarise_cohort(records, threshold_mm3=400.0, n_resamples=100, seed=5)
    other = summarise_cohort(records, threshold_mm3=400.0, n_resamples=100, seed=6)
    assert one == two and one["groups"]["all"]["dice"] != other["groups"]["all"]["dice"]
