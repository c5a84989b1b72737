"""Pancreas head/body/tail split along the centre line, checked against the phantoms' true parts."""

from __future__ import annotations

import numpy as np
import pytest
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform

from rsuper.anatomy.labels import RSUPER_IMPORT_LABELS, RSUPER_ORGAN_LABELS, WHOLE_PANCREAS_LABEL
from rsuper.anatomy.pancreas_split import MIN_LENGTH_MM, split_pancreas
from rsuper.data.phantom import make_phantom

PARTS = [RSUPER_IMPORT_LABELS.label_of(n) for n in ("pancreas_head", "pancreas_body", "pancreas_tail")]
LM = RSUPER_IMPORT_LABELS


def reorient(labels: np.ndarray, affine: np.ndarray, codes: str) -> tuple[np.ndarray, np.ndarray]:
    """The same anatomy stored with array axes ``codes`` (e.g. "LPS"); world positions unchanged."""
    ornt = ornt_transform(axcodes2ornt("RAS"), axcodes2ornt(tuple(codes)))
    return apply_orientation(labels, ornt), affine @ inv_ornt_aff(ornt, labels.shape)


def merged(labels: np.ndarray) -> np.ndarray:
    out = labels.copy()
    out[np.isin(out, PARTS)] = WHOLE_PANCREAS_LABEL
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def part_dice(result: np.ndarray, truth: np.ndarray) -> list[float]:
    return [dice(result == v, truth == v) for v in PARTS]


def test_split_reproduces_the_phantom_parts_in_ras_and_lps() -> None:
    scores = []
    for seed in range(10):
        ph = make_phantom(seed, n_tumours=0)
        ras = split_pancreas(merged(ph.organs), ph.affine)
        assert not (ras.labels == WHOLE_PANCREAS_LABEL).any()
        lps_truth, lps_affine = reorient(ph.organs, ph.affine, "LPS")
        lps = split_pancreas(merged(lps_truth), lps_affine)
        for result, truth in ((ras.labels, ph.organs), (lps.labels, lps_truth)):
            scores.append(part_dice(result, truth))
        # Same anatomy, other array order: the same voxels get the same parts.
        np.testing.assert_array_equal(reorient(ras.labels, ph.affine, "LPS")[0], lps.labels)
        # Everything but the pancreas is untouched.
        outside = ~np.isin(ph.organs, PARTS)
        np.testing.assert_array_equal(ras.labels[outside], ph.organs[outside])
    scores = np.array(scores)
    assert scores.min() >= 0.85, f"per-part minimum Dice {scores.min(0)}"
    assert scores.mean(0).min() >= 0.9


def test_head_is_found_by_the_duodenum_and_spleen_when_the_anatomy_is_mirrored() -> None:
    ph = make_phantom(4, n_tumours=0)
    mirrored = ph.organs[::-1].copy()  # same affine: the anatomy now has its head at the patient's left
    result = split_pancreas(merged(mirrored), ph.affine)
    assert min(part_dice(result.labels, mirrored)) >= 0.85
    assert any("check the mask's sides" in m for m in result.messages)
    assert result.centreline_mm[0, 0] < result.centreline_mm[-1, 0]

    no_landmarks = merged(mirrored)
    no_landmarks[np.isin(no_landmarks, [LM.label_of("duodenum"), LM.label_of("spleen")])] = 0
    by_side = split_pancreas(no_landmarks, ph.affine)
    # Without landmarks the patient's right decides: the true tail now becomes the head.
    assert by_side.centreline_mm[0, 0] > by_side.centreline_mm[-1, 0]
    assert dice(by_side.labels == PARTS[0], mirrored == PARTS[2]) > 0.5


def test_oblique_affine_and_detached_island() -> None:
    ph = make_phantom(2, n_tumours=0)
    angle = np.deg2rad(15.0)
    rot = np.eye(4)
    rot[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    labels = merged(ph.organs)
    result = split_pancreas(labels, rot @ ph.affine)
    assert min(part_dice(result.labels, ph.organs)) >= 0.85

    tail_tip = np.argwhere(ph.organs == PARTS[2])
    tail_tip = tail_tip[np.argmin(tail_tip[:, 0])]  # the patient-leftmost tail voxel (RAS array)
    island = labels.copy()
    i, j, k = tail_tip - (4, 0, 0)
    assert not island[i - 1:i + 1, j - 1:j + 1, k].any()
    island[i - 1:i + 1, j - 1:j + 1, k] = WHOLE_PANCREAS_LABEL
    got = split_pancreas(island, ph.affine)
    assert (got.labels[i - 1:i + 1, j - 1:j + 1, k] == PARTS[2]).all()
    assert not any("in pieces" in m for m in got.messages)  # a 4-voxel island is no reason to warn

    halves = labels.copy()
    halves[np.isin(ph.organs, PARTS[1])] = 0  # body removed: head and tail apart
    assert any("in pieces" in m for m in split_pancreas(halves, ph.affine).messages)


def test_empty_and_tiny_pancreas_are_left_alone() -> None:
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:5, 2:5, 2:5] = LM.label_of("spleen")
    empty = split_pancreas(labels, np.eye(4))
    np.testing.assert_array_equal(empty.labels, labels)
    assert "no whole-pancreas voxels" in empty.messages[0]

    labels[8:12, 8:12, 8:12] = WHOLE_PANCREAS_LABEL  # 4 mm cube: far below the minimum length
    tiny = split_pancreas(labels, np.diag([2.0, 2.0, 2.0, 1.0]))
    np.testing.assert_array_equal(tiny.labels, labels)
    assert f"< {MIN_LENGTH_MM:.0f} mm" in tiny.messages[-1]
    assert tiny.centreline_mm.shape == (0, 3)


def test_straight_bar_is_cut_at_the_fractions() -> None:
    labels = np.zeros((104, 10, 10), np.uint8)
    labels[2:102, 3:7, 3:7] = WHOLE_PANCREAS_LABEL  # 100 voxels of 1 mm along +x (patient's right)
    result = split_pancreas(labels, np.eye(4), fractions=(0.5, 0.2))
    along = result.labels[:, 5, 5]
    # Head at the patient's right (high i): 50 % head, 20 % body, 30 % tail, within a voxel or two.
    assert abs(int((along == PARTS[0]).sum()) - 50) <= 2
    assert abs(int((along == PARTS[1]).sum()) - 20) <= 2
    assert abs(int((along == PARTS[2]).sum()) - 30) <= 2
    assert along[101] == PARTS[0] and along[2] == PARTS[2]


def test_bad_arguments() -> None:
    labels = np.zeros((4, 4, 4), np.uint8)
    for fractions in ((0.0, 0.5), (0.6, 0.4), (0.5, -0.1)):
        with pytest.raises(ValueError, match="fractions"):
            split_pancreas(labels, np.eye(4), fractions=fractions)
    with pytest.raises(ValueError, match="no label pancreas"):
        split_pancreas(labels, np.eye(4), label_map=RSUPER_ORGAN_LABELS)
