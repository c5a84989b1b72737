"""The R-Super organ label map and its translation to the report-facts vocabulary."""

from __future__ import annotations

import json

import pytest

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS, LabelMap, labels_for, organ_of
from rsuper.report.schema import ORGANS, SUBSEGMENTS


def test_builtin_map_matches_the_published_model() -> None:
    lm = RSUPER_ORGAN_LABELS
    assert len(lm.labels) == 35
    assert lm.name_of(0) == "background"
    expected = {
        1: "aorta", 2: "gall_bladder", 3: "kidney_left", 4: "kidney_right", 5: "postcava", 6: "spleen",
        7: "stomach", 10: "bladder", 13: "duodenum", 17: "hepatic_vessel", 21: "portal_vein_and_splenic_vein",
        23: "rectum", 24: "liver_segment_1", 31: "liver_segment_8", 32: "pancreas_head", 33: "pancreas_body",
        34: "pancreas_tail",
    }
    for value, name in expected.items():
        assert lm.name_of(value) == name
        assert lm.label_of(name) == value
    assert lm.names()[0] == "aorta" and lm.names(include_background=True)[0] == "background"
    assert len(set(lm.colors.values())) == 35, "every label needs its own colour"


def test_label_map_round_trips_through_json() -> None:
    data = json.loads(json.dumps(RSUPER_ORGAN_LABELS.to_dict()))
    back = LabelMap.from_dict(data)
    assert back == RSUPER_ORGAN_LABELS
    assert back.color_of(6) == RSUPER_ORGAN_LABELS.color_of(6)


def test_label_map_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unique"):
        LabelMap({0: "background", 1: "a", 2: "a"}, {0: (0, 0, 0), 1: (1, 1, 1), 2: (2, 2, 2)})
    with pytest.raises(ValueError, match="colour"):
        LabelMap({0: "background", 1: "a"}, {0: (0, 0, 0)})
    with pytest.raises(ValueError, match="RGB"):
        LabelMap({0: "background"}, {0: (0, 0, 300)})
    with pytest.raises(KeyError, match="nothing"):
        RSUPER_ORGAN_LABELS.label_of("nothing")


def test_organ_of_uses_the_facts_vocabulary() -> None:
    assert organ_of("liver_segment_3") == ("liver", "segment_3")
    assert organ_of("pancreas_tail") == ("pancreas", "tail")
    assert organ_of("gall_bladder") == ("gallbladder", None)
    assert organ_of("adrenal_gland_right") == ("adrenal_right", None)
    assert organ_of("intestine") == ("small_bowel", None)
    assert organ_of("kidney_left") == ("kidney_left", None)
    for no_organ in ("background", "aorta", "postcava", "hepatic_vessel", "celiac_trunk"):
        assert organ_of(no_organ) is None
    for name in RSUPER_ORGAN_LABELS.names():
        mapped = organ_of(name)
        if mapped is not None:
            assert mapped[0] in ORGANS
            assert mapped[1] is None or mapped[1] in SUBSEGMENTS[mapped[0]]


def test_labels_for_organs_and_subsegments() -> None:
    assert labels_for("liver") == list(range(24, 32))
    assert labels_for("liver", "segment_7") == [30]
    assert labels_for("pancreas") == [32, 33, 34]
    assert labels_for("pancreas", "head/body") == [32, 33]
    assert labels_for("pancreas", "uncinate") == [32]
    assert labels_for("pancreas", "neck") == [32]
    assert labels_for("kidney") == [3, 4]
    assert labels_for("kidney_right") == [4]
    assert labels_for("adrenal") == [8, 9]
    assert labels_for("bone") == [15, 16]
    assert labels_for("uterus") == []
    with pytest.raises(KeyError, match="upper_pole"):
        labels_for("kidney_left", "upper_pole")
