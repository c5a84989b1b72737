"""Left/right of paired organs from world coordinates, in RAS and LPS arrays."""

from __future__ import annotations

import numpy as np
import pytest

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS as LM
from rsuper.anatomy.sides import fix_sides, midline_x_mm, side_of
from rsuper.data.phantom import make_phantom

SMALL = {"shape": (64, 56, 48), "spacing_mm": (3.0, 3.0, 5.0), "n_tumours": 0}
KIDNEY_L, KIDNEY_R = LM.label_of("kidney_left"), LM.label_of("kidney_right")
ADRENAL_L, ADRENAL_R = LM.label_of("adrenal_gland_left"), LM.label_of("adrenal_gland_right")


@pytest.fixture(scope="module", params=["RAS", "LPS"])
def phantom(request):
    return make_phantom(5, orientation=request.param, **SMALL)


def test_side_of_follows_the_patient_not_the_array(phantom) -> None:
    ph = phantom
    midline = midline_x_mm(ph.organs, ph.affine)
    assert abs(midline) < 25.0  # the phantom's midline is world x = 0
    for name, side in (("kidney_right", "right"), ("kidney_left", "left"), ("liver_segment_7", "right"),
                       ("spleen", "left"), ("adrenal_gland_right", "right"), ("adrenal_gland_left", "left")):
        mask = ph.organs == LM.label_of(name)
        assert side_of(mask, ph.affine, midline) == side, name
        assert side_of(mask, ph.affine) == side, name
    with pytest.raises(ValueError, match="empty"):
        side_of(np.zeros((2, 2, 2), bool), ph.affine)


def test_fix_sides_undoes_swapped_kidneys_and_adrenals(phantom) -> None:
    ph = phantom
    swapped = ph.organs.copy()
    for a, b in ((KIDNEY_L, KIDNEY_R), (ADRENAL_L, ADRENAL_R)):
        swapped[ph.organs == a], swapped[ph.organs == b] = b, a
    result = fix_sides(swapped, ph.affine, LM)
    np.testing.assert_array_equal(result.labels, ph.organs)
    assert len(result.moved) == 4 and any("kidney_left -> kidney_right" in m for m in result.moved)
    # Correct masks stay as they are.
    again = fix_sides(ph.organs, ph.affine, LM)
    np.testing.assert_array_equal(again.labels, ph.organs)
    assert again.moved == []


def test_one_kidney_labelled_on_the_wrong_side(phantom) -> None:
    ph = phantom
    one = ph.organs.copy()
    one[one == KIDNEY_L] = 0  # a single (right) kidney, labelled "left"
    one[one == KIDNEY_R] = KIDNEY_L
    fixed = fix_sides(one, ph.affine, LM).labels
    np.testing.assert_array_equal(fixed == KIDNEY_R, ph.organs == KIDNEY_R)
    assert not (fixed == KIDNEY_L).any()


def test_component_on_the_midline_is_left_alone() -> None:
    labels = np.zeros((40, 10, 10), np.uint8)
    labels[15:25, 3:7, 3:7] = KIDNEY_L  # a horseshoe-like piece across x = 0
    labels[0:2, 0:2, 0:2] = LM.label_of("spleen")
    labels[38:40, 0:2, 0:2] = LM.label_of("spleen")
    affine = np.eye(4)
    affine[0, 3] = -19.5  # voxel i=19.5 at x = 0
    result = fix_sides(labels, affine, LM)
    np.testing.assert_array_equal(result.labels, labels)
    assert result.moved == [] and "midline" in result.messages[0]
    # An explicit midline far to the left puts it on the right.
    moved = fix_sides(labels, affine, LM, midline_mm=-30.0)
    assert (moved.labels[15:25, 3:7, 3:7] == KIDNEY_R).all()
