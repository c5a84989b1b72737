"""rsuper.compare.segments: the names and colours of the AI's tumour segments, and segmentations handed back."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from compare_inputs import predicted_case

from rsuper.compare.segments import (
    TUMOUR_COLOURS,
    ai_tumour_label_map,
    ai_tumour_segment_name,
    segment_label_map,
)


def test_segments_of_a_prediction_name_its_records(tmp_path):
    """The records of a real ``tumours.json``: one segment per record, valued as the label image, named with
    the record's organ and its long axis in whole mm."""
    files = predicted_case(tmp_path)
    records = json.loads(files["json"].read_text())["tumours"]
    assert len(records) == 1 and records[0]["organ"] == "liver"
    label_map = ai_tumour_label_map(records)
    values = {int(v) for v in np.unique(np.asarray(nib.load(files["labels"]).dataobj))}
    assert set(label_map.labels) == values == {0, 1}
    long_axis = records[0]["long_axis_mm"]
    assert 17.0 < long_axis < 23.0  # the 20 mm lesion
    assert label_map.name_of(1) == f"Tumour 1 (liver {round(long_axis)} mm)"
    assert label_map.name_of(0) == "background" and label_map.color_of(1) == TUMOUR_COLOURS[0]


def test_names_and_colours_of_many_tumours():
    records = [{"id": i, "organ": ("pancreas" if i % 2 else None), "long_axis_mm": (9.5 + i if i < 8 else None)}
               for i in range(1, 10)]
    label_map = ai_tumour_label_map(records)
    assert label_map.name_of(1) == "Tumour 1 (pancreas 10 mm)"  # 10.5 rounds to even
    assert label_map.name_of(2) == "Tumour 2 (? 12 mm)"  # 11.5
    assert label_map.name_of(9) == "Tumour 9 (pancreas)" and label_map.name_of(8) == "Tumour 8 (?)"
    colours = [label_map.color_of(i) for i in range(1, 10)]
    assert colours[:6] == list(TUMOUR_COLOURS) and colours[6:] == list(TUMOUR_COLOURS[:3])  # cycled
    assert len(set(TUMOUR_COLOURS)) == len(TUMOUR_COLOURS) and (0, 0, 0) not in TUMOUR_COLOURS
    assert ai_tumour_segment_name({"id": "4", "organ": "kidney_left", "long_axis_mm": 31.49}) == \
        "Tumour 4 (kidney_left 31 mm)"
    assert ai_tumour_label_map([]).labels == {0: "background"}


def test_records_that_cannot_be_segments():
    with pytest.raises(ValueError, match="used twice"):
        ai_tumour_label_map([{"id": 1}, {"id": 1}])
    with pytest.raises(ValueError, match="below 1"):
        ai_tumour_label_map([{"id": 0}])
    with pytest.raises(KeyError):
        ai_tumour_label_map([{"organ": "liver"}])


def test_segments_handed_back_are_numbered_in_order():
    label_map = segment_label_map(["Tumour 3 (liver 20 mm)", "drawn by hand", "Segment_1"])
    assert label_map.labels == {0: "background", 1: "Tumour 3 (liver 20 mm)", 2: "drawn by hand", 3: "Segment_1"}
    assert segment_label_map([]).labels == {0: "background"}
    with pytest.raises(ValueError, match="Segment_1"):
        segment_label_map(["Segment_1", "a", "Segment_1"])
    with pytest.raises(ValueError, match="background"):
        segment_label_map(["a", "background"])
