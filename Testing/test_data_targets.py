"""Report supervision per case: segment groups, unknown regions, exclusions (rsuper.data.report_targets)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS as LM
from rsuper.anatomy.labels import labels_for
from rsuper.data.classes import ClassList
from rsuper.data.phantom import make_phantom
from rsuper.data.report_targets import full_diameters, report_targets
from rsuper.report.schema import ReportFacts, Tumour

from patch_helpers import SHAPE, SPACING_MM

CLASSES = ClassList()  # organs and lesions: liver, pancreas, kidney
LIVER, PANCREAS, KIDNEY = 0, 1, 2


@pytest.fixture(scope="module")
def organs() -> np.ndarray:
    return make_phantom(3, SHAPE, SPACING_MM, tumours=[]).organs


def targets(organs, *tumours, **kw):
    return report_targets(ReportFacts("c", list(tumours)), organs, LM, CLASSES, **kw)


def lab(organ, sub=None):
    return tuple(labels_for(organ, sub, LM))


def expected_volume(d):
    a, b, c = full_diameters(d)
    return math.pi / 6 * a * b * c


def test_full_diameters_rules():
    assert full_diameters([12.0]) == (12.0, 12.0, 12.0)
    assert full_diameters([20.0, 10.0]) == (20.0, 10.0, 15.0)
    assert full_diameters([30.0, 20.0, 10.0]) == (30.0, 20.0, 10.0)


def test_segments_sharing_a_tumour_merge_and_sizes_follow_the_facts(organs):
    t = targets(organs, Tumour("pancreas", "head", [12.0]), Tumour("pancreas", "head/body", [20.0, 10.0]),
                Tumour("liver", "segment_2", [15.0, 11.0, 9.0], count=2))
    by_channel = {g.lesion_index: g for g in t.groups}
    assert len(t.groups) == 2 and not t.excluded and not t.reasons
    pancreas = by_channel[PANCREAS]
    assert pancreas.labels == lab("pancreas", "head/body") and pancreas.n_tumours == 2
    np.testing.assert_allclose(pancreas.diameters_mm[:2], [[12, 12, 12], [20, 10, 15]])
    np.testing.assert_allclose(pancreas.volumes_mm3[:2], [expected_volume([12.0]), expected_volume([20.0, 10.0])],
                               rtol=1e-6)
    assert not pancreas.volumes_mm3[2:].any() and pancreas.diameters_mm.shape == (10, 3)
    liver = by_channel[LIVER]  # count 2 -> two rows with the same diameters
    assert liver.labels == lab("liver", "segment_2") and liver.n_tumours == 2
    np.testing.assert_allclose(liver.volumes_mm3[:2], [expected_volume([15.0, 11.0, 9.0])] * 2, rtol=1e-6)
    assert t.unknown_labels == {PANCREAS: lab("pancreas", "head/body"), LIVER: lab("liver", "segment_2")}


def test_separate_segments_stay_separate_groups_and_neck_is_head(organs):
    t = targets(organs, Tumour("pancreas", "neck", [10.0]), Tumour("pancreas", "tail", [14.0]))
    assert sorted(g.labels for g in t.groups) == sorted([lab("pancreas", "head"), lab("pancreas", "tail")])
    assert t.unknown_labels[PANCREAS] == tuple(sorted(lab("pancreas", "head") + lab("pancreas", "tail")))


def test_organ_level_tumour_makes_the_whole_organ_one_group(organs):
    t = targets(organs, Tumour("liver", None, [25.0]), Tumour("liver", "segment_6", [10.0]))
    assert len(t.groups) == 1
    assert t.groups[0].labels == lab("liver") and t.groups[0].n_tumours == 2


def test_kidney_pole_falls_back_to_its_side_and_unsided_kidney_joins_both(organs):
    t = targets(organs, Tumour("kidney_left", "upper_pole", [18.0]))
    assert [g.labels for g in t.groups] == [lab("kidney_left")]
    assert lab("kidney_left") != lab("kidney")
    t = targets(organs, Tumour("kidney_left", None, [18.0]), Tumour("kidney", None, [10.0]))
    assert [g.labels for g in t.groups] == [lab("kidney")] and t.groups[0].n_tumours == 2


@pytest.mark.parametrize("bad, why", [
    (Tumour("pancreas", "tail", [10.0], count=2, count_is_lower_bound=True), "unknown number"),
    (Tumour("pancreas", "tail", []), "unknown size"),
    (Tumour("pancreas", "tail", [350.0]), "implausible size"),
    (Tumour("pancreas", "tail", [0.0]), "implausible size"),
    (Tumour("pancreas", "tail", [5.0], count=11), "more than the 10"),
])
def test_uncertain_tumours_exclude_the_whole_organ(organs, bad, why):
    t = targets(organs, Tumour("pancreas", "head", [12.0]), bad, Tumour("liver", "segment_3", [9.0]))
    assert [g.lesion_index for g in t.groups] == [LIVER]  # the pancreas head group is dropped too
    assert t.unknown_labels[PANCREAS] == lab("pancreas")  # the whole organ, never a negative
    assert t.excluded == {PANCREAS: ("pancreas",)}
    assert any(why in r and "pancreas" in r for r in t.reasons)


def test_excluding_one_kidney_keeps_the_other_side(organs):
    t = targets(organs, Tumour("kidney_left", None, []), Tumour("kidney_right", None, [20.0]))
    assert [g.labels for g in t.groups] == [lab("kidney_right")]
    assert t.unknown_labels[KIDNEY] == lab("kidney")


def test_tumours_without_a_lesion_channel_are_ignored(organs):
    t = targets(organs, Tumour("spleen", None, [20.0]))
    assert not t.groups and not t.unknown_labels and "spleen" in t.reasons[0]


def test_healthy_report_has_no_unknowns(organs):
    t = targets(organs)
    assert not t.groups and not t.unknown_labels and not t.unknown_everywhere


def test_missing_organ_or_segment_in_the_case(organs):
    no_tail = np.where(np.isin(organs, lab("pancreas", "tail")), lab("pancreas", "body")[0], organs)
    t = targets(no_tail, Tumour("pancreas", "tail", [14.0]))  # segment missing -> whole organ
    assert [g.labels for g in t.groups] == [lab("pancreas", "head/body")]
    no_liver = np.where(np.isin(organs, lab("liver")), 0, organs).astype(np.uint8)
    t = targets(no_liver, Tumour("liver", "segment_2", [14.0]), Tumour("pancreas", "tail", [10.0]))
    assert t.unknown_everywhere == {LIVER} and [g.lesion_index for g in t.groups] == [PANCREAS]
    t = targets(None, Tumour("liver", "segment_2", [14.0]))
    assert t.unknown_everywhere == {LIVER} and not t.groups
