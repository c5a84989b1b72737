"""Structure names of other segmenters, and label maps read from files.

* :func:`rsuper_name_of` / :func:`is_known_name`: a structure name (R-Super
  spelling, or TotalSegmentator v2 ``total`` task spelling) -> the label name in
  :data:`~rsuper.anatomy.labels.RSUPER_IMPORT_LABELS`. TotalSegmentator
  structures without an R-Super label (vertebrae, ribs, muscles ...) are
  *known* but map to ``None``; any other name is *unknown*: callers report it,
  nothing is guessed.
* :func:`label_map_from_dataset_json`: the ``labels`` of an nnU-Net v2
  ``dataset.json`` as a :class:`~rsuper.anatomy.labels.LabelMap`.
* :func:`read_label_map`: a JSON file holding either that or a
  :meth:`LabelMap.to_dict` map.

Mapping decisions (TotalSegmentator -> R-Super): the five lung lobes go to
``lung_left`` / ``lung_right``; ``kidney_cyst_*`` to its kidney (R-Super organ
masks include the lesions inside an organ); ``liver`` and ``pancreas`` to the
whole-organ labels, since TotalSegmentator has no Couinaud segments or
pancreas head/body/tail.
"""

from __future__ import annotations

import colorsys
import json
from pathlib import Path
from typing import Any

from rsuper.anatomy.labels import RSUPER_IMPORT_LABELS, LabelMap

#: TotalSegmentator v2 ``total`` names -> R-Super import label name, where they differ or merge.
_TOTALSEG_RENAMED: dict[str, str] = {
    "gallbladder": "gall_bladder",
    "inferior_vena_cava": "postcava",
    "small_bowel": "intestine",
    "urinary_bladder": "bladder",
    "kidney_cyst_left": "kidney_left",
    "kidney_cyst_right": "kidney_right",
    "lung_upper_lobe_left": "lung_left",
    "lung_lower_lobe_left": "lung_left",
    "lung_upper_lobe_right": "lung_right",
    "lung_middle_lobe_right": "lung_right",
    "lung_lower_lobe_right": "lung_right",
}
#: TotalSegmentator v2 ``total`` names spelled as in the R-Super import map.
_TOTALSEG_SAME: tuple[str, ...] = (
    "spleen", "kidney_right", "kidney_left", "liver", "stomach", "pancreas", "adrenal_gland_right",
    "adrenal_gland_left", "esophagus", "duodenum", "colon", "prostate", "aorta",
    "portal_vein_and_splenic_vein", "femur_left", "femur_right",
)
_SIDES = ("left", "right")
#: TotalSegmentator v2 ``total`` structures with no R-Super label.
_TOTALSEG_UNUSED: frozenset[str] = frozenset(
    [
        "trachea", "thyroid_gland", "sacrum", "heart", "pulmonary_vein", "brachiocephalic_trunk",
        "superior_vena_cava", "atrial_appendage_left", "spinal_cord", "brain", "skull", "sternum",
        "costal_cartilages",
    ]
    + [f"vertebrae_{p}{k}" for p, n in (("C", 7), ("T", 12), ("L", 5)) for k in range(1, n + 1)]
    + ["vertebrae_S1"]
    + [f"rib_{s}_{k}" for s in _SIDES for k in range(1, 13)]
    + [
        f"{part}_{s}" for s in _SIDES for part in (
            "subclavian_artery", "common_carotid_artery", "brachiocephalic_vein", "iliac_artery",
            "iliac_vena", "humerus", "scapula", "clavicula", "hip", "gluteus_maximus", "gluteus_medius",
            "gluteus_minimus", "autochthon", "iliopsoas",
        )
    ]
)
#: Every TotalSegmentator v2 ``total`` name -> R-Super import label name, or ``None`` (no R-Super label).
TOTALSEGMENTATOR_NAMES: dict[str, str | None] = {
    **{n: None for n in sorted(_TOTALSEG_UNUSED)},
    **{n: n for n in _TOTALSEG_SAME},
    **_TOTALSEG_RENAMED,
}


def normalise_name(name: str) -> str:
    """Lower case, surrounding blanks removed, spaces and hyphens as underscores."""
    return "_".join(name.strip().lower().replace("-", " ").split())


def rsuper_name_of(name: str) -> str | None:
    """Label name in :data:`RSUPER_IMPORT_LABELS` for a structure name, else ``None``.

    The name is looked up (after :func:`normalise_name`) among the R-Super
    import labels first, then TotalSegmentator's names. ``None`` means either
    known without an R-Super label or unknown; tell them apart with
    :func:`is_known_name`. ``background`` maps to itself.
    """
    key = normalise_name(name)
    if key in RSUPER_IMPORT_LABELS.labels.values():
        return key
    # Vertebrae keep their capital letter in TotalSegmentator's spelling.
    return TOTALSEGMENTATOR_NAMES.get(key, TOTALSEGMENTATOR_NAMES.get(_vertebra_spelling(key)))


def is_known_name(name: str) -> bool:
    """Whether :func:`rsuper_name_of` recognises the name (even when it has no R-Super label)."""
    key = normalise_name(name)
    return (key in RSUPER_IMPORT_LABELS.labels.values() or key in TOTALSEGMENTATOR_NAMES
            or _vertebra_spelling(key) in TOTALSEGMENTATOR_NAMES)


def _vertebra_spelling(key: str) -> str:
    return key[:-2] + key[-2:].upper() if key.startswith("vertebrae_") else key


def _palette(n: int) -> tuple[int, int, int]:
    """A deterministic, well spread RGB colour for the n-th label without a known colour."""
    r, g, b = colorsys.hsv_to_rgb((n * 0.618034) % 1.0, 0.65, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def _colors_for(labels: dict[int, str]) -> dict[int, tuple[int, int, int]]:
    """R-Super colours for names it knows, palette colours for the others; background black."""
    colors = {}
    for value, name in labels.items():
        target = rsuper_name_of(name)
        if value == 0:
            colors[value] = (0, 0, 0)
        elif target is not None:
            colors[value] = RSUPER_IMPORT_LABELS.color_of(RSUPER_IMPORT_LABELS.label_of(target))
        else:
            colors[value] = _palette(value)
    return colors


def label_map_from_dataset_json(path: str | Path) -> LabelMap:
    """The label map of an nnU-Net v2 ``dataset.json`` (``"labels": {name: value}``).

    Names are kept as written; colours come from the R-Super map where the
    name is known there. nnU-Net v1 files (``{"0": "background", ...}``) are
    read too.

    Raises:
        ValueError: no ``labels``, region-based labels (a list of values, as
            for overlapping regions: they do not form one multi-label map), a
            value that is not an integer in 0..255, or a value used twice.
            The message names the file.
    """
    path = Path(path)
    data = _read_json(path)
    raw = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path}: no 'labels' object (not an nnU-Net dataset.json)")
    if all(isinstance(v, str) for v in raw.values()) and all(str(k).isdigit() for k in raw):
        raw = {name: int(value) for value, name in raw.items()}  # nnU-Net v1: value -> name
    labels: dict[int, str] = {}
    for name, value in raw.items():
        if isinstance(value, (list, tuple)):
            raise ValueError(
                f"{path}: label {name!r} is region-based ({value}); region-based nnU-Net datasets "
                "(overlapping regions) cannot be read as one multi-label map"
            )
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            raise ValueError(f"{path}: label {name!r} has value {value!r}, not an integer in 0..255")
        if value in labels:
            raise ValueError(f"{path}: labels {labels[value]!r} and {name!r} share the value {value}")
        labels[value] = str(name)
    return LabelMap(labels, _colors_for(labels), name=str(data.get("name", path.parent.name or path.stem)))


def read_label_map(path: str | Path) -> LabelMap:
    """A label map from JSON: an nnU-Net ``dataset.json`` or a :meth:`LabelMap.to_dict` file.

    The two are told apart by ``labels``: an object (nnU-Net) or a list (ours).

    Raises:
        ValueError: neither form; the message names the file.
    """
    path = Path(path)
    data = _read_json(path)
    labels = data.get("labels") if isinstance(data, dict) else None
    if isinstance(labels, dict):
        return label_map_from_dataset_json(path)
    if isinstance(labels, list):
        try:
            return LabelMap.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a valid label map: {exc}") from None
    raise ValueError(f"{path}: not a label map (expected 'labels' as an nnU-Net object or a list of entries)")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
