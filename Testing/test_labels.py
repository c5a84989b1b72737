"""Organ label maps (R-Super, imported, read from files) and their translation to the report-facts vocabulary."""

from __future__ import annotations

import json

import pytest

from rsuper.anatomy.label_maps import (
    TOTALSEGMENTATOR_NAMES, is_known_name, label_map_from_dataset_json, read_label_map, rsuper_name_of,
)
from rsuper.anatomy.labels import (
    RSUPER_IMPORT_LABELS, RSUPER_ORGAN_LABELS, WHOLE_LIVER_LABEL, WHOLE_PANCREAS_LABEL, LabelMap, labels_for, organ_of,
)
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


def test_import_map_adds_whole_organs() -> None:
    lm = RSUPER_IMPORT_LABELS
    assert {v: lm.name_of(v) for v in range(35)} == RSUPER_ORGAN_LABELS.labels
    assert lm.name_of(WHOLE_LIVER_LABEL) == "liver" and lm.name_of(WHOLE_PANCREAS_LABEL) == "pancreas"
    assert len(set(lm.colors.values())) == len(lm.labels)
    assert labels_for("pancreas", None, lm) == [32, 33, 34, WHOLE_PANCREAS_LABEL]
    assert labels_for("liver", None, lm) == [*range(24, 32), WHOLE_LIVER_LABEL]
    assert labels_for("pancreas", "head", lm) == [32]  # a whole organ is no sub-segment


def test_structure_names_of_other_segmenters() -> None:
    assert len(TOTALSEGMENTATOR_NAMES) == 117  # TotalSegmentator v2 "total" task
    cases = {
        "kidney_left": "kidney_left", "Kidney Left": "kidney_left", "gallbladder": "gall_bladder",
        "inferior_vena_cava": "postcava", "small_bowel": "intestine", "urinary_bladder": "bladder",
        "lung_middle_lobe_right": "lung_right", "lung_upper_lobe_left": "lung_left", "liver": "liver",
        "pancreas": "pancreas", "pancreas_tail": "pancreas_tail", "portal_vein_and_splenic_vein":
        "portal_vein_and_splenic_vein", "adrenal_gland_right": "adrenal_gland_right",
    }
    for name, target in cases.items():
        assert rsuper_name_of(name) == target, name
    for unused in ("vertebrae_L3", "vertebrae_l3", "rib_left_7", "heart", "iliopsoas_right"):
        assert rsuper_name_of(unused) is None and is_known_name(unused), unused
    for unknown in ("kidney", "pancreatic_duct", "liver_tumor"):
        assert rsuper_name_of(unknown) is None and not is_known_name(unknown), unknown
    targets = {t for t in TOTALSEGMENTATOR_NAMES.values() if t is not None}
    assert targets <= set(RSUPER_IMPORT_LABELS.labels.values())


def test_label_map_from_dataset_json(tmp_path) -> None:
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"name": "Dataset300_x", "labels": {"background": 0, "liver": 1, "gizmo": 2}}))
    lm = label_map_from_dataset_json(path)
    assert lm.labels == {0: "background", 1: "liver", 2: "gizmo"} and lm.name == "Dataset300_x"
    assert lm.color_of(1) == RSUPER_IMPORT_LABELS.color_of(WHOLE_LIVER_LABEL)  # known names keep our colour
    assert read_label_map(path) == lm
    path.write_text(json.dumps({"labels": {"0": "background", "1": "spleen"}}))  # nnU-Net v1
    assert label_map_from_dataset_json(path).labels == {0: "background", 1: "spleen"}
    bad = {
        "region-based": {"background": 0, "whole": [1, 2], "core": [2]},
        "not an integer": {"background": 0, "a": 1.5},
        "share the value": {"background": 0, "a": 1, "b": 1},
    }
    for message, labels in bad.items():
        path.write_text(json.dumps({"labels": labels}))
        with pytest.raises(ValueError, match=message):
            label_map_from_dataset_json(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        read_label_map(path)
    path.write_text(json.dumps({"channel_names": {}}))
    with pytest.raises(ValueError, match="not a label map"):
        read_label_map(path)
    ours = tmp_path / "map.json"
    ours.write_text(json.dumps(RSUPER_ORGAN_LABELS.to_dict()))
    assert read_label_map(ours) == RSUPER_ORGAN_LABELS
