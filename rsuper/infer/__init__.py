"""R-Super: inference (whole-volume probabilities, lesion masks, lesion measurements).

* :mod:`rsuper.infer.sliding`: :func:`predict_probabilities`, sliding-window
  sigmoid probabilities ``(C, I, J, K)`` of a volume (imports torch and MONAI).
* :mod:`rsuper.infer.postprocess`: :func:`binarise`, :func:`restrict_to_organs`,
  :func:`remove_small_components`, :func:`instances`, :func:`instance_stats`
  (numpy and scipy only).

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
    "instance_stats": "rsuper.infer.postprocess",
    "InstanceStats": "rsuper.infer.postprocess",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
