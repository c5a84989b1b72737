"""Pseudo-mask quality (rsuper.evaluate.pseudo_masks): placement scored against known tumours."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from rsuper.data.classes import ClassList
from rsuper.data.phantom import make_phantom
from rsuper.evaluate.pseudo_masks import PseudoMaskQuality, case_pseudo_mask_quality
from rsuper.report.schema import ReportFacts

CLASSES = ClassList()  # liver, pancreas, kidney and their lesion channels


def _phantoms():
    return [make_phantom(seed, (64, 56, 48), (3.0, 3.0, 5.0), n_tumours=2, min_diameter_mm=16.0,
                         attenuations=("hypo",)) for seed in range(3)]


def _probabilities(phantom, on_tumours: bool) -> np.ndarray:
    """``(C, I, J, K)``: 1 on the tumours of each lesion organ, or 1 on the rest of each lesion organ."""
    truth = phantom.tumours > 0
    organs = CLASSES.organ_target(phantom.organs, phantom.label_map).astype(bool)
    probs = np.zeros((CLASSES.n_channels, *truth.shape), np.float32)
    for i, organ in enumerate(CLASSES.lesion_organs):
        organ_mask = organs[CLASSES.organs.index(organ)]
        seen = truth & ndi.binary_dilation(organ_mask) if on_tumours else organ_mask & ~truth
        probs[CLASSES.lesion_channels[i]] = seen
    return probs


def _pooled(on_tumours: bool) -> PseudoMaskQuality:
    total = PseudoMaskQuality()
    for ph in _phantoms():
        total = total + case_pseudo_mask_quality(_probabilities(ph, on_tumours), ph.tumours, ph.organs,
                                                 ph.label_map, ph.facts, CLASSES, ph.spacing_mm)
    return total


def test_a_model_that_sees_the_tumours_gets_its_balls_placed_on_them() -> None:
    q = _pooled(on_tumours=True)
    assert q.tumours >= 4
    assert q.centre_hit_rate == 1.0
    # The positives cover the true tumours; their size comes from the reported diameters, so a
    # report that overstates a tumour costs precision, not coverage.
    assert q.recall > 0.9 and q.precision > 0.5


def test_a_model_that_sees_tumour_everywhere_else_misleads_every_ball() -> None:
    q = _pooled(on_tumours=False)
    assert q.tumours >= 4 and q.positive_voxels > 0
    assert q.centre_hits == 0 and q.positive_on_tumour == 0
    assert q.precision == 0.0


def test_counts_pool_and_rates_of_nothing_are_nan() -> None:
    a, b = PseudoMaskQuality(2, 1, 10, 5, 8), PseudoMaskQuality(1, 1, 10, 10, 12)
    pooled = a + b
    assert pooled.counts() == (3, 2, 20, 15, 20)
    assert pooled.centre_hit_rate == pytest.approx(2 / 3) and pooled.precision == 0.75 and pooled.recall == 0.75
    ph = _phantoms()[0]
    empty = case_pseudo_mask_quality(_probabilities(ph, True), ph.tumours, ph.organs, ph.label_map,
                                     ReportFacts(case_id=ph.case_id), CLASSES, ph.spacing_mm)
    assert empty.counts() == (0, 0, 0, 0, 0)
    assert all(math.isnan(v) for v in (empty.centre_hit_rate, empty.precision, empty.recall))
