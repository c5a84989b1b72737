"""Write a prediction: the tumour label NIfTI, its ``tumours.json`` sidecar, the probability NIfTI.

The formats are described in :mod:`rsuper.infer.tumours_file`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from .pipeline import CasePrediction
from .tumours_file import FORMAT, PROBABILITY_LEVELS, VERSION, sidecar_path


def _like_ct(data: np.ndarray, ct: nib.spatialimages.SpatialImage) -> nib.Nifti1Image:
    """A NIfTI of ``data`` with the CT's affine and qform/sform codes (scanner space when the CT has none)."""
    img = nib.Nifti1Image(data, np.asarray(ct.affine, float))
    header = getattr(ct, "header", None)
    codes = {"qform": 1, "sform": 1}
    if isinstance(header, nib.Nifti1Header):
        codes = {k: int(header[f"{k}_code"]) or 1 for k in codes}
    img.set_qform(ct.affine, code=codes["qform"])
    img.set_sform(ct.affine, code=codes["sform"])
    img.header.set_xyzt_units("mm")
    return img


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def sidecar_dict(prediction: CasePrediction, case_id: str, ct_path: str | Path | None, labels_path: Path,
                 probabilities_path: Path | None, model: Mapping[str, Any]) -> dict[str, Any]:
    """The ``tumours.json`` content of a prediction."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "case_id": case_id,
        "ct": None if ct_path is None else str(ct_path),
        "labels": labels_path.name,
        "probabilities": None if probabilities_path is None else str(probabilities_path),
        "shape": [int(s) for s in prediction.labels.shape],
        "spacing_mm": [round(float(v), 6) for v in np.linalg.norm(prediction.affine[:3, :3], axis=0)],
        "lesion_channels": prediction.lesion_channels,
        "lesion_organs": prediction.lesion_organs,
        "organ_source": prediction.organ_source,
        "max_probability": {k: round(v, 4) for k, v in prediction.max_probability.items()},
        "model": dict(model),
        "options": prediction.options.to_dict(),
        "tumours": [r.to_dict() for r in prediction.records],
    }


def write_prediction(
    prediction: CasePrediction,
    ct: nib.spatialimages.SpatialImage,
    labels_path: str | Path,
    *,
    case_id: str,
    model: Mapping[str, Any],
    ct_path: str | Path | None = None,
    json_path: str | Path | None = None,
    probabilities_path: str | Path | None = None,
) -> dict[str, Path]:
    """Write the label NIfTI, the probabilities when asked, then the JSON sidecar (last, atomically).

    Returns:
        the written paths by kind: ``labels``, ``json`` and ``probabilities`` (when written).

    Raises:
        ValueError: probabilities asked for but not kept by the prediction.
    """
    labels_path = Path(labels_path)
    json_path = Path(json_path) if json_path is not None else sidecar_path(labels_path)
    if probabilities_path is not None and prediction.probabilities is None:
        raise ValueError("the prediction kept no probabilities (PredictOptions.keep_probabilities)")
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(_like_ct(prediction.labels, ct), labels_path)
    written = {"labels": labels_path}
    probs_path = None
    if probabilities_path is not None:
        probs_path = Path(probabilities_path)
        probs_path.parent.mkdir(parents=True, exist_ok=True)
        img = _like_ct(prediction.probabilities, ct)
        img.header.set_slope_inter(1.0 / PROBABILITY_LEVELS, 0.0)
        nib.save(img, probs_path)
        written["probabilities"] = probs_path
    data = sidecar_dict(prediction, case_id, ct_path, labels_path, probs_path, model)
    _write_text_atomic(json_path, json.dumps(data, indent=1) + "\n")
    written["json"] = json_path
    return written
