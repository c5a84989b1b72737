"""Organ label maps: integer label <-> structure name, display colours, facts vocabulary.

:data:`RSUPER_ORGAN_LABELS` is the 35-label map (background included) of the
organ / sub-segment model published with R-Super (nnU-Net, liver Couinaud
segments and pancreas head/body/tail predicted directly). The synthetic
phantom writes its organ masks with the same map. :data:`RSUPER_IMPORT_LABELS`
adds whole-liver and whole-pancreas labels for imported masks without sub-segments.

Label names use the model's spelling (``gall_bladder``, ``adrenal_gland_left``,
``liver_segment_7``); report facts use the vocabulary of
:mod:`rsuper.report.schema` (``gallbladder``, ``adrenal_left``, sub-segment
``segment_7``). :func:`organ_of` and :func:`labels_for` translate between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rsuper.report.schema import ORGANS, PAIRED_ORGANS, SUBSEGMENTS

RGB = tuple[int, int, int]


@dataclass
class LabelMap:
    """Integer label values with a name and an RGB colour (0-255) each.

    Attributes:
        labels: label value -> structure name (0 is background by convention).
        colors: label value -> ``(r, g, b)``; every label must have one.
        name: short identifier of the map.
    """

    labels: dict[int, str]
    colors: dict[int, RGB] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        self.labels = {int(k): str(v) for k, v in self.labels.items()}
        self.colors = {int(k): tuple(int(c) for c in v) for k, v in self.colors.items()}
        if len(set(self.labels.values())) != len(self.labels):
            raise ValueError("label names must be unique")
        missing = set(self.labels) - set(self.colors)
        if missing:
            raise ValueError(f"labels without a colour: {sorted(missing)}")
        for value, rgb in self.colors.items():
            if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
                raise ValueError(f"colour of label {value} is not an RGB triple in 0..255: {rgb}")
        self._by_name = {n: v for v, n in self.labels.items()}

    def name_of(self, label: int) -> str:
        """Name of a label value (``KeyError`` if unknown)."""
        return self.labels[int(label)]

    def label_of(self, name: str) -> int:
        """Label value of a structure name (``KeyError`` if unknown)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no label named {name!r} in label map {self.name!r}") from None

    def names(self, include_background: bool = False) -> list[str]:
        """Structure names in increasing label order."""
        return [self.labels[v] for v in sorted(self.labels) if include_background or v != 0]

    def color_of(self, label: int) -> RGB:
        """RGB colour (0-255) of a label value."""
        return self.colors[int(label)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``{"name", "labels": [{"value", "name", "color"}, ...]}``."""
        return {
            "name": self.name,
            "labels": [
                {"value": v, "name": self.labels[v], "color": list(self.colors[v])}
                for v in sorted(self.labels)
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LabelMap":
        """Inverse of :meth:`to_dict`."""
        entries = data["labels"]
        return cls(
            labels={int(e["value"]): e["name"] for e in entries},
            colors={int(e["value"]): tuple(e["color"]) for e in entries},
            name=str(data.get("name", "")),
        )


_LIVER_SEGMENT_COLORS: list[RGB] = [
    (176, 96, 62), (236, 168, 136), (214, 122, 84), (246, 190, 160),
    (196, 110, 76), (228, 146, 112), (160, 80, 50), (240, 138, 96),
]

_RSUPER_ENTRIES: list[tuple[str, RGB]] = [
    ("background", (0, 0, 0)),
    ("aorta", (224, 60, 50)),
    ("gall_bladder", (139, 150, 98)),
    ("kidney_left", (185, 102, 83)),
    ("kidney_right", (150, 70, 60)),
    ("postcava", (0, 110, 200)),
    ("spleen", (157, 108, 162)),
    ("stomach", (216, 196, 120)),
    ("adrenal_gland_left", (244, 214, 49)),
    ("adrenal_gland_right", (200, 170, 20)),
    ("bladder", (222, 154, 132)),
    ("celiac_trunk", (255, 120, 170)),
    ("colon", (204, 168, 143)),
    ("duodenum", (255, 240, 180)),
    ("esophagus", (211, 171, 143)),
    ("femur_left", (241, 214, 145)),
    ("femur_right", (220, 190, 120)),
    ("hepatic_vessel", (0, 170, 210)),
    ("intestine", (205, 140, 170)),
    ("lung_left", (120, 200, 230)),
    ("lung_right", (90, 160, 200)),
    ("portal_vein_and_splenic_vein", (0, 150, 140)),
    ("prostate", (230, 158, 140)),
    ("rectum", (170, 120, 90)),
    *[(f"liver_segment_{k}", _LIVER_SEGMENT_COLORS[k - 1]) for k in range(1, 9)],
    ("pancreas_head", (249, 180, 111)),
    ("pancreas_body", (230, 140, 60)),
    ("pancreas_tail", (255, 215, 150)),
]

#: The R-Super organ / sub-segment model's output map (35 labels incl. background).
RSUPER_ORGAN_LABELS = LabelMap(
    labels={i: n for i, (n, _) in enumerate(_RSUPER_ENTRIES)},
    colors={i: c for i, (_, c) in enumerate(_RSUPER_ENTRIES)},
    name="rsuper_organs",
)

#: Label of a whole liver without Couinaud segments (imported masks, e.g. TotalSegmentator).
WHOLE_LIVER_LABEL = 35
#: Label of a whole pancreas not (yet) split into head / body / tail; see
#: :func:`rsuper.anatomy.pancreas_split.split_pancreas`.
WHOLE_PANCREAS_LABEL = 36

#: :data:`RSUPER_ORGAN_LABELS` plus two whole-organ labels, ``liver`` (35) and
#: ``pancreas`` (36), for masks whose source has no sub-segments. Labels 0-34
#: keep their meaning, so a cohort may use this map for every case.
#: :func:`labels_for` counts them in their organ (``labels_for("pancreas")``
#: gives 32, 33, 34 and 36); a sub-segment never includes them.
RSUPER_IMPORT_LABELS = LabelMap(
    labels={**RSUPER_ORGAN_LABELS.labels, WHOLE_LIVER_LABEL: "liver", WHOLE_PANCREAS_LABEL: "pancreas"},
    colors={**RSUPER_ORGAN_LABELS.colors, WHOLE_LIVER_LABEL: (221, 130, 101), WHOLE_PANCREAS_LABEL: (243, 186, 96)},
    name="rsuper_organs_import",
)

# Label name -> facts organ where the spelling differs. Names absent here and
# absent from ORGANS (vessels, rectum) have no facts organ.
_ORGAN_ALIASES: dict[str, str] = {
    "gall_bladder": "gallbladder",
    "adrenal_gland_left": "adrenal_left",
    "adrenal_gland_right": "adrenal_right",
    "intestine": "small_bowel",
    "femur_left": "bone",
    "femur_right": "bone",
}
_SPLIT_ORGANS: dict[str, str] = {"liver_segment_": "liver", "pancreas_": "pancreas"}

#: Report sub-segment names that the label map folds into another one (as the
#: reference pipeline does: pancreatic neck and uncinate process -> head).
SUBSEGMENT_ALIASES: dict[str, dict[str, str]] = {
    "pancreas": {"neck": "head", "uncinate": "head"},
}


def organ_of(label_name: str) -> tuple[str, str | None] | None:
    """Facts ``(organ, subsegment)`` of a label name, or ``None`` if it has none.

    ``liver_segment_3`` -> ``("liver", "segment_3")``; ``pancreas_tail`` ->
    ``("pancreas", "tail")``; ``gall_bladder`` -> ``("gallbladder", None)``;
    vessels (``aorta``, ``postcava`` ...), ``rectum`` and ``background`` -> ``None``.
    """
    for prefix, organ in _SPLIT_ORGANS.items():
        if label_name.startswith(prefix):
            sub = label_name[len(prefix):]
            sub = f"segment_{sub}" if organ == "liver" else sub
            if sub in SUBSEGMENTS[organ]:
                return organ, sub
            return None
    organ = _ORGAN_ALIASES.get(label_name, label_name)
    return (organ, None) if organ in ORGANS else None


def labels_for(
    organ: str, subsegment: str | None = None, label_map: LabelMap = RSUPER_ORGAN_LABELS
) -> list[int]:
    """Label values that make up a facts organ, or one of its sub-segments.

    Args:
        organ: a name from :data:`rsuper.report.schema.ORGANS`; an unsided
            paired organ (``kidney``) gives both sides.
        subsegment: ``None`` for the whole organ, else a sub-segment name, or
            several joined by ``/`` (``"head/body"``); ``neck`` and
            ``uncinate`` count as ``head``.
        label_map: the map to look in.

    Returns:
        Sorted label values. Empty when the map has no mask for the organ.

    Raises:
        KeyError: the sub-segment has no mask of its own in the map (e.g.
            kidney poles); callers fall back to ``labels_for(organ)``.
    """
    organs = set(PAIRED_ORGANS.get(organ, (organ,)))
    wanted: set[str | None] | None = None
    if subsegment is not None:
        aliases = SUBSEGMENT_ALIASES.get(organ, {})
        wanted = {aliases.get(s, s) for s in subsegment.split("/")}
    found: dict[str | None, list[int]] = {}
    for value in sorted(label_map.labels):
        mapped = organ_of(label_map.labels[value])
        if mapped is not None and mapped[0] in organs:
            found.setdefault(mapped[1], []).append(value)
    if wanted is None:
        return sorted(v for values in found.values() for v in values)
    missing = sorted(s for s in wanted if s not in found)
    if missing:
        raise KeyError(f"label map {label_map.name!r} has no mask for {organ} {'/'.join(missing)}")
    return sorted(v for s in wanted for v in found[s])
