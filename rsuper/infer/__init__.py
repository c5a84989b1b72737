"""R-Super: inference (whole-volume probabilities, tumour instances, tumour records, output files).

* :mod:`rsuper.infer.sliding`: :func:`predict_probabilities`, sliding-window
  sigmoid probabilities ``(C, I, J, K)`` of a volume, optional flip TTA (torch, MONAI).
* :mod:`rsuper.infer.postprocess`: :func:`binarise`, :func:`restrict_to_organs`,
  :func:`remove_small_components`, :func:`instances`, :func:`instances_above`,
  :func:`instance_stats` (numpy and scipy only).
* :mod:`rsuper.infer.model_io`: :func:`load_model` of an ``rsuper train`` checkpoint.
* :mod:`rsuper.infer.pipeline`: :func:`predict_case`, a CT NIfTI -> tumour
  instances on the CT's grid and their records (:class:`PredictOptions`).
* :mod:`rsuper.infer.recist` / :mod:`rsuper.infer.records`: RECIST-style
  diameters, :class:`TumourRecord` and :func:`measure_tumours`.
* :mod:`rsuper.infer.grid` / :mod:`rsuper.infer.volumes`: the CT's canonical RAS view.
* :mod:`rsuper.infer.output` / :mod:`rsuper.infer.tumours_file`: the label
  NIfTI, ``tumours.json`` and probability files (:func:`write_prediction`,
  :func:`read_tumours_json`).
* :mod:`rsuper.infer.command_predict`: ``rsuper predict``.

The names are loaded on first use, so importing this package does not import
torch (command-line start-up stays fast).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "predict_probabilities": "rsuper.infer.sliding",
    "count_windows": "rsuper.infer.sliding",
    "binarise": "rsuper.infer.postprocess",
    "restrict_to_organs": "rsuper.infer.postprocess",
    "remove_small_components": "rsuper.infer.postprocess",
    "instances": "rsuper.infer.postprocess",
    "instances_above": "rsuper.infer.postprocess",
    "instance_stats": "rsuper.infer.postprocess",
    "InstanceStats": "rsuper.infer.postprocess",
    "load_model": "rsuper.infer.model_io",
    "LoadedModel": "rsuper.infer.model_io",
    "predict_case": "rsuper.infer.pipeline",
    "PredictOptions": "rsuper.infer.pipeline",
    "CasePrediction": "rsuper.infer.pipeline",
    "recist_diameters": "rsuper.infer.recist",
    "TumourRecord": "rsuper.infer.records",
    "measure_tumours": "rsuper.infer.records",
    "CanonicalGrid": "rsuper.infer.grid",
    "write_prediction": "rsuper.infer.output",
    "read_tumours_json": "rsuper.infer.tumours_file",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
