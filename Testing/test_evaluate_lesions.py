"""Tumour-level evaluation: matching, largest diameters, size groups, and the per-organ split."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS
from rsuper.evaluate.lesions import SMALL_TUMOUR_MM, largest_diameters_mm, match_lesions, size_group
from rsuper.evaluate.metrics import detection, evaluate_case
from rsuper.evaluate.organs import organ_codes, split_by_organ

SHAPE = (40, 40, 30)


def _ellipsoid(shape, centre, semi_axes_mm, spacing, rotation=None):
    """Voxels whose centre lies in an ellipsoid (mm), optionally rotated."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1) * np.asarray(spacing)
    offset = grid - np.asarray(centre) * np.asarray(spacing)
    if rotation is not None:
        offset = offset @ rotation.as_matrix()  # into the ellipsoid's own axes
    return np.sum((offset / np.asarray(semi_axes_mm)) ** 2, axis=-1) <= 1.0


def test_largest_diameter_of_simple_shapes():
    labels = np.zeros(SHAPE, np.uint16)
    labels[5, 5, 5] = 3  # one voxel: its largest side
    labels[10, 2:14, 20] = 7  # a row of 12 voxels along J
    labels[20:23, 20:23, 2:4] = 9  # a 3 x 3 x 2 block: its space diagonal
    spacing = (0.8, 1.5, 2.5)
    diameters = largest_diameters_mm(labels, spacing)
    assert set(diameters) == {3, 7, 9}
    assert diameters[3] == pytest.approx(2.5)
    assert diameters[7] == pytest.approx(12 * 1.5)
    block = np.array([2 * 0.8, 2 * 1.5, 1 * 2.5])  # centre-to-centre, plus one voxel along that direction
    u = block / np.linalg.norm(block)
    assert diameters[9] == pytest.approx(np.linalg.norm(block) + np.linalg.norm(u * spacing))
    assert largest_diameters_mm(np.zeros(SHAPE, np.uint8), spacing) == {}


@pytest.mark.parametrize("angles", [(0, 0, 0), (35, 20, 10), (0, 45, 0)])
def test_largest_diameter_of_a_rotated_ellipsoid_is_its_long_axis(angles):
    spacing = (1.0, 1.0, 1.0)
    rotation = Rotation.from_euler("xyz", angles, degrees=True)
    mask = _ellipsoid(SHAPE, (20, 20, 15), (13.0, 6.0, 5.0), spacing, rotation)
    diameter = largest_diameters_mm(mask.astype(np.uint8), spacing)[1]
    assert 26.0 - 1.5 <= diameter <= 26.0 + 1.8  # 26 mm long axis, within a voxel diagonal
    assert size_group(diameter) == "large" and size_group(SMALL_TUMOUR_MM - 0.01) == "small"
    assert size_group(SMALL_TUMOUR_MM) == "large"


def test_match_lesions_per_tumour():
    truth = np.zeros(SHAPE, np.uint16)
    truth[2:6, 2:6, 2:6] = 4
    truth[20:24, 20:24, 10:14] = 2
    truth[30:33, 5:8, 5:8] = 11
    pred = np.zeros(SHAPE, bool)
    pred[3:5, 3:5, 3:5] = True  # finds 4
    pred[29:31, 6:7, 6:7] = True  # grazes 11: only (30, 6, 6) is inside
    pred[10:12, 30:32, 20:22] = True  # spurious
    match = match_lesions(pred, truth)
    assert match.truth_ids.tolist() == [2, 4, 11]
    assert match.truth_found.tolist() == [False, True, True]
    assert (match.tp, match.fp, match.fn) == (2, 1, 1)
    strict = match_lesions(pred, truth, min_overlap_voxels=2)
    assert strict.truth_found.tolist() == [False, True, False] and strict.fp == 2
    assert detection(pred, truth, 2).fn == 2  # detection() counts the same matching


def test_evaluate_case_splits_lesion_counts_by_size():
    spacing = (1.0, 1.0, 1.0)
    truth = np.zeros(SHAPE, np.uint16)
    truth[_ellipsoid(SHAPE, (10, 10, 10), (4.0, 4.0, 4.0), spacing)] = 1  # ~8 mm: small
    truth[_ellipsoid(SHAPE, (28, 28, 15), (12.0, 11.0, 10.0), spacing)] = 2  # ~24 mm: large
    truth[2:4, 35:37, 2:4] = 3  # 2 mm: small
    pred = truth == 2  # finds only the large one
    record = evaluate_case(pred, spacing, truth, case_id="a")
    assert record["n_truth_tumours"] == 3 and record["size_group"] == "large"
    assert record["largest_diameter_mm"] == pytest.approx(max(largest_diameters_mm(truth, spacing).values()))
    assert (record["tp_small"], record["fn_small"], record["tp_large"], record["fn_large"]) == (0, 2, 1, 0)
    small_only = evaluate_case(truth == 1, spacing, np.where(truth == 2, 0, truth), case_id="b")
    assert small_only["size_group"] == "small" and (small_only["tp_small"], small_only["fn_small"]) == (1, 1)
    healthy = evaluate_case(np.zeros(SHAPE, bool), spacing, np.zeros(SHAPE, np.uint8))
    assert healthy["size_group"] is None and healthy["largest_diameter_mm"] is None and healthy["tp_small"] == 0


def test_split_by_organ_assigns_each_lesion_to_its_organ():
    spacing = (2.0, 2.0, 2.0)
    organs = np.zeros(SHAPE, np.uint8)
    liver = RSUPER_ORGAN_LABELS.label_of("liver_segment_5")
    organs[0:18, :, :] = liver
    organs[22:40, 0:20, :] = RSUPER_ORGAN_LABELS.label_of("kidney_left")
    organs[22:40, 20:40, :] = RSUPER_ORGAN_LABELS.label_of("spleen")  # not a listed organ
    truth = np.zeros(SHAPE, np.uint16)
    truth[4:8, 4:8, 4:8] = 1  # in the liver
    truth[26:30, 4:8, 4:8] = 2  # in the left kidney
    organs[26:30, 4:8, 4:8] = 0  # ... with the tumour cut out of the organ mask: the nearest organ decides
    truth[26:30, 26:30, 4:8] = 3  # in the spleen: no listed organ
    pred = np.zeros(SHAPE, bool)
    pred[5:7, 5:7, 5:7] = True  # on tumour 1
    pred[18:20, 30:32, 20:22] = True  # between organs: 2 mm from the liver, 6 mm from the spleen
    pred[26:30, 4:8, 4:8] = True  # on tumour 2
    listed = ("liver", "pancreas", "kidney")
    codes = organ_codes(organs, listed)
    assert codes[1, 1, 1] == 0 and codes[30, 2, 2] == 2 and codes[30, 30, 2] == -1 and codes[20, 0, 0] == -2
    split = split_by_organ(pred, truth, codes, listed, spacing)
    assert set(split) == set(listed)
    liver_pred, liver_truth = split["liver"]
    assert np.unique(liver_truth).tolist() == [0, 1]
    assert liver_pred[5:7, 5:7, 5:7].all() and liver_pred[18:20, 30:32, 20:22].all()
    kidney_pred, kidney_truth = split["kidney"]
    assert np.unique(kidney_truth).tolist() == [0, 2] and kidney_pred.sum() == 64
    assert not split["pancreas"][0].any() and not split["pancreas"][1].any()
    assert (liver_truth != 0).sum() + (kidney_truth != 0).sum() == (truth != 0).sum() - 64  # spleen tumour dropped
    with pytest.raises(ValueError):
        organ_codes(organs + 0.5, listed)
