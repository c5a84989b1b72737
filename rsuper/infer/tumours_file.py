"""The prediction files' format: names, the ``tumours.json`` sidecar reader (no torch).

* labels (``tumours.nii.gz``): the CT's grid (shape and affine, qform/sform
  codes kept), uint8 (uint16 beyond 255 tumours); 0 = background, n = tumour
  instance n, described by the sidecar record whose ``id`` is n;
* sidecar (``tumours.json``, the labels' name with ``.json``):
  ``{"format": "rsuper-tumours", "version": 1, "case_id", "ct", "labels",
  "probabilities", "shape", "spacing_mm", "lesion_channels", "lesion_organs",
  "organ_source", "max_probability", "model", "options", "tumours": [records]}``,
  records as :meth:`rsuper.infer.records.TumourRecord.to_dict`;
* probabilities (optional): 4D ``(I, J, K, L)`` uint8 on the CT's grid, one
  volume per lesion channel (the sidecar's ``lesion_channels`` order), stored
  as ``round(255 p)`` with the NIfTI scale factor 1/255 (:data:`PROBABILITY_LEVELS`),
  so a reader that applies the scaling (nibabel ``get_fdata``, 3D Slicer) sees
  the probability in [0, 1] at steps of 1/255 (up to float32 rounding of the factor).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cases import nifti_case_id
from .records import TumourRecord

FORMAT = "rsuper-tumours"
VERSION = 1
#: Probabilities are stored as ``round(PROBABILITY_LEVELS * p)`` in uint8.
PROBABILITY_LEVELS = 255


def sidecar_path(labels_path: str | Path) -> Path:
    """The ``.json`` next to a label NIfTI (``out/tumours.nii.gz`` -> ``out/tumours.json``)."""
    path = Path(labels_path)
    return path.with_name((nifti_case_id(path) or path.stem) + ".json")


@dataclass
class TumoursFile:
    """A ``tumours.json`` read back.

    Attributes:
        case_id: the case.
        records: one per tumour instance.
        lesion_organs: organs the model looked for tumours in.
        data: the whole JSON object.
        path: where it was read from.
    """

    case_id: str
    records: list[TumourRecord]
    lesion_organs: list[str]
    data: dict[str, Any]
    path: Path

    @property
    def labels_path(self) -> Path | None:
        """The label NIfTI it describes (its ``labels`` entry, next to the JSON), if named."""
        name = self.data.get("labels")
        return self.path.with_name(name) if name else None


def read_tumours_json(path: str | Path) -> TumoursFile:
    """Read a sidecar written by :func:`rsuper.infer.output.write_prediction`.

    Raises:
        ValueError: not JSON, or not an ``rsuper-tumours`` file of a known version.
        OSError: unreadable file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise ValueError(f"{path} is not an {FORMAT} file of version {VERSION}")
    try:
        records = [TumourRecord.from_dict(r) for r in data.get("tumours", [])]
    except TypeError as exc:
        raise ValueError(f"{path}: malformed tumour record: {exc}") from exc
    return TumoursFile(str(data.get("case_id") or path.stem), records, list(data.get("lesion_organs") or []),
                       data, path)
