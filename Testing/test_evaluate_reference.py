"""Our metric values against independent implementations: MONAI (DSC, NSD, AUC) and scikit-learn (AUC, rates).

Agreement to 1e-6 on random masks and on the edge cases: empty prediction,
empty truth, both empty, one voxel. Where MONAI's convention differs (``nan``
for an empty truth), the test states ours explicitly.
"""

import math
import warnings

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice, compute_roc_auc, compute_surface_dice
from scipy import ndimage as ndi
from sklearn.metrics import f1_score, recall_score, roc_auc_score

from rsuper.evaluate.bootstrap import resample_indices, resampled_auc, resampled_rates
from rsuper.evaluate.metrics import case_level, dice, f1, sensitivity, specificity, surface_dice
from rsuper.evaluate.patient import roc_auc, sweep

SHAPE = (20, 18, 16)


def _t(mask):
    return torch.from_numpy(np.asarray(mask, dtype=np.float32))[None, None]  # (1, 1, I, J, K)


def _monai_dice(pred, truth, ignore_empty):
    return float(compute_dice(_t(pred), _t(truth), include_background=True, ignore_empty=ignore_empty).item())


def _monai_nsd(pred, truth, spacing, tolerance):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about empty masks and its own deprecated argument
        value = compute_surface_dice(_t(pred), _t(truth), [tolerance], include_background=True, spacing=list(spacing))
    return float(value.item())


def _blobs(rng, fraction):
    """Smooth random blobs (some touching the border) covering about ``fraction`` of the grid."""
    field = ndi.gaussian_filter(rng.standard_normal(SHAPE), 2.0)
    return field > np.quantile(field, 1.0 - fraction)


def _one_voxel(index):
    mask = np.zeros(SHAPE, bool)
    mask[index] = True
    return mask


EMPTY = np.zeros(SHAPE, bool)
VOXEL_A, VOXEL_B = _one_voxel((5, 6, 7)), _one_voxel((5, 6, 9))


@pytest.mark.parametrize("seed", range(4))
def test_dice_matches_monai_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    for pred, truth in ((rng.random(SHAPE) < 0.3, rng.random(SHAPE) < 0.5), (_blobs(rng, 0.1), _blobs(rng, 0.2))):
        assert dice(pred, truth) == pytest.approx(_monai_dice(pred, truth, ignore_empty=True), abs=1e-6)


@pytest.mark.parametrize("pred, truth", [
    (EMPTY, VOXEL_A),  # empty prediction
    (VOXEL_A, EMPTY),  # empty truth
    (EMPTY, EMPTY),  # both empty
    (VOXEL_A, VOXEL_A), (VOXEL_A, VOXEL_B), (VOXEL_A | VOXEL_B, VOXEL_A),  # one voxel
])
def test_dice_edge_cases_match_monai_without_ignore_empty(pred, truth):
    ours = dice(pred, truth)
    assert ours == pytest.approx(_monai_dice(pred, truth, ignore_empty=False), abs=1e-6)
    monai_default = _monai_dice(pred, truth, ignore_empty=True)
    if truth.any():
        assert ours == pytest.approx(monai_default, abs=1e-6)
    else:  # MONAI's default: nan for any empty truth; ours: 1 when nothing is predicted, else 0
        assert math.isnan(monai_default) and ours == (0.0 if pred.any() else 1.0)


@pytest.mark.parametrize("seed", range(3))
def test_nsd_matches_monai_on_random_masks(seed):
    rng = np.random.default_rng(100 + seed)
    spacing = tuple(rng.uniform(0.6, 3.0, size=3))
    for pred, truth in ((_blobs(rng, 0.1), _blobs(rng, 0.15)), (rng.random(SHAPE) < 0.2, _blobs(rng, 0.3))):
        for tolerance in (0.5, 2.0, 4.0):
            expected = _monai_nsd(pred, truth, spacing, tolerance)
            assert surface_dice(pred, truth, spacing, tolerance) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("pred, truth", [
    (EMPTY, VOXEL_A), (VOXEL_A, EMPTY), (EMPTY, EMPTY),
    (VOXEL_A, VOXEL_A), (VOXEL_A, VOXEL_B), (VOXEL_A | VOXEL_B, VOXEL_A),
])
@pytest.mark.parametrize("tolerance", [1.0, 2.5])
def test_nsd_edge_cases_match_monai(pred, truth, tolerance):
    spacing = (1.0, 1.0, 1.0)
    ours = surface_dice(pred, truth, spacing, tolerance)
    expected = _monai_nsd(pred, truth, spacing, tolerance)
    if pred.any() or truth.any():
        assert ours == pytest.approx(expected, abs=1e-6)
    else:  # both empty: MONAI gives nan, ours 1.0 (as DSC)
        assert math.isnan(expected) and ours == 1.0


def _scores(rng, n):
    truth = rng.random(n) < 0.4
    scores = np.round(np.clip(0.3 * truth + rng.normal(0.4, 0.25, n), 0, 1), 2)  # rounding makes ties
    return scores, truth


@pytest.mark.parametrize("seed", range(3))
def test_auc_matches_sklearn_and_monai(seed):
    scores, truth = _scores(np.random.default_rng(seed), 60)
    ours = roc_auc(scores, truth)
    assert ours == pytest.approx(roc_auc_score(truth, scores), abs=1e-6)
    monai = float(compute_roc_auc(torch.from_numpy(scores), torch.from_numpy(truth.astype(np.float32))))
    assert ours == pytest.approx(monai, abs=1e-6)
    assert math.isnan(roc_auc(scores[truth], truth[truth]))  # one class only: undefined


def test_vectorised_bootstrap_auc_matches_sklearn_per_resample():
    scores, truth = _scores(np.random.default_rng(7), 25)
    indices = resample_indices(len(scores), 200, seed=3)
    aucs = resampled_auc(scores, truth, indices)
    checked = 0
    for row, value in zip(indices, aucs):
        if truth[row].all() or not truth[row].any():
            assert math.isnan(value)
        else:
            assert value == pytest.approx(roc_auc_score(truth[row], scores[row]), abs=1e-9)
            checked += 1
    assert checked > 150


def test_sensitivity_specificity_f1_on_constructed_cases():
    # 6 cases with a tumour, 4 without; predicted tumour volumes in mm³
    volumes = np.array([0.0, 30.0, 120.0, 480.0, 900.0, 2500.0, 0.0, 15.0, 200.0, 40.0])
    truth = np.array([True] * 6 + [False] * 4)
    at_100 = sweep(volumes, truth, [100.0])  # called: 120, 480, 900, 2500 (all positives), 200 (negative)
    assert (at_100.tp[0], at_100.fn[0], at_100.fp[0], at_100.tn[0]) == (4, 2, 1, 3)
    assert at_100.sensitivity[0] == pytest.approx(4 / 6) and at_100.specificity[0] == pytest.approx(3 / 4)
    assert at_100.f1[0] == pytest.approx(8 / 11)
    rng = np.random.default_rng(0)
    for _ in range(5):  # random cohorts and thresholds: scikit-learn's recall / F1 on the same calls
        volumes = rng.exponential(500.0, 40)
        truth = rng.random(40) < 0.5
        threshold = float(rng.choice([10.0, 150.0, 700.0, 3000.0]))
        called = volumes >= threshold
        result = sweep(volumes, truth, [threshold])
        assert result.sensitivity[0] == pytest.approx(recall_score(truth, called), abs=1e-12)
        assert result.specificity[0] == pytest.approx(recall_score(~truth, ~called), abs=1e-12)
        assert result.f1[0] == pytest.approx(f1_score(truth, called), abs=1e-12)
        counts = case_level(volumes, truth, threshold)  # the one-threshold function agrees with the sweep
        assert (sensitivity(counts), specificity(counts), f1(counts)) == pytest.approx(
            (result.sensitivity[0], result.specificity[0], result.f1[0]))
        rates = resampled_rates(called, truth, resample_indices(40, 5, seed=1))
        row = resample_indices(40, 5, seed=1)[2]
        assert rates["f1"][2] == pytest.approx(f1_score(truth[row], called[row]), abs=1e-12)
