"""Label maps of tumour segmentations as the 3D Slicer module shows them and hands them back.

Two directions, both on instance label images (0 = background, n = tumour n):

* :func:`ai_tumour_label_map`: the AI's tumours of a ``tumours.json``
  (written by ``rsuper predict``) as named, coloured segments, e.g.
  ``"Tumour 2 (liver 24 mm)"``: the value of each segment is the record's
  ``id``, so the segment and the record describe the same voxels;
* :func:`segment_label_map`: any tumour segmentation (drawn or edited by hand)
  back to an instance label image for ``rsuper compare``: segment number n
  (in the segmentation's order) gets value n.

Needs only the standard library and :mod:`rsuper.anatomy.labels`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from rsuper.anatomy.labels import RGB, LabelMap

__all__ = ["TUMOUR_COLOURS", "ai_tumour_label_map", "ai_tumour_segment_name", "segment_label_map"]

#: Colours of the AI tumour segments, cycled in record order (0-255 RGB): bright hues that stand out
#: against the organ colours of :data:`rsuper.anatomy.labels.RSUPER_ORGAN_LABELS`.
TUMOUR_COLOURS: tuple[RGB, ...] = ((255, 230, 0), (0, 220, 255), (255, 90, 200), (120, 255, 90), (255, 150, 40),
                                   (170, 130, 255))
#: Colour of every segment of a segmentation handed back (the colours are not part of what is compared).
SEGMENT_COLOUR: RGB = (255, 255, 0)
BACKGROUND = "background"


def ai_tumour_segment_name(record: Mapping[str, Any]) -> str:
    """``"Tumour 2 (liver 24 mm)"``: the record's id, organ (``?`` when unknown) and long axis rounded to mm.

    Args:
        record: one entry of ``tumours.json``'s ``tumours`` (:meth:`rsuper.infer.records.TumourRecord.to_dict`):
            ``id``, ``organ`` (or ``None``) and ``long_axis_mm`` (or ``None``) are read.
    """
    long_axis = record.get("long_axis_mm")
    size = "" if long_axis is None else f" {float(long_axis):.0f} mm"
    return f"Tumour {int(record['id'])} ({record.get('organ') or '?'}{size})"


def ai_tumour_label_map(records: Sequence[Mapping[str, Any]]) -> LabelMap:
    """Names (:func:`ai_tumour_segment_name`) and colours (:data:`TUMOUR_COLOURS`, cycled) of the AI's tumours.

    Args:
        records: the ``tumours`` list of a ``tumours.json``, in its order.

    Returns:
        a map with value 0 ``background`` and each record's ``id`` -> its segment name.

    Raises:
        ValueError: an id below 1 or used twice (not a ``tumours.json`` of ``rsuper predict``).
    """
    names: dict[int, str] = {0: BACKGROUND}
    colours: dict[int, RGB] = {0: (0, 0, 0)}
    for index, record in enumerate(records):
        value = int(record["id"])
        if value < 1 or value in names:
            raise ValueError(f"tumour record {index}: id {value} is below 1 or used twice")
        names[value] = ai_tumour_segment_name(record)
        colours[value] = TUMOUR_COLOURS[index % len(TUMOUR_COLOURS)]
    return LabelMap(names, colours, "rsuper_tumours")


def segment_label_map(segment_names: Sequence[str]) -> LabelMap:
    """The instance label map of a tumour segmentation: the n-th segment (from 1) gets value n.

    Segments are told apart by name when the segmentation is exported to a label image, so the names must
    differ, and none may be ``background`` (value 0).

    Args:
        segment_names: the segments' names in the segmentation's order.

    Returns:
        a map with value 0 ``background`` and n -> the n-th name, all in :data:`SEGMENT_COLOUR`.

    Raises:
        ValueError: two segments with the same name, or one named ``background``; the message names them.
    """
    names = [str(n) for n in segment_names]
    repeated = sorted(n for n, count in Counter(names).items() if count > 1)
    if repeated:
        raise ValueError("tumour segments must have different names; rename: " + ", ".join(repeated))
    if BACKGROUND in names:
        raise ValueError(f"a tumour segment is named {BACKGROUND!r}; rename it")
    labels = {0: BACKGROUND, **{value: name for value, name in enumerate(names, start=1)}}
    return LabelMap(labels, {0: (0, 0, 0), **{value: SEGMENT_COLOUR for value in labels if value}}, "tumour_segments")
