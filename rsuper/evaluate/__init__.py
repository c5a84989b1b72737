"""R-Super: evaluation of predicted lesion masks, and figures.

* :mod:`rsuper.evaluate.metrics`: :func:`dice`, :func:`surface_dice`,
  :func:`detection` (:class:`DetectionCounts`), :func:`precision`,
  :func:`recall`, :func:`f1`, :func:`case_level` (:class:`CaseLevelCounts`),
  :func:`sensitivity`, :func:`specificity`, :func:`evaluate_case`,
  :func:`summarise`.
* :mod:`rsuper.evaluate.plots`: :func:`read_progress`,
  :func:`plot_loss_curves`, :func:`plot_metric_bars` (PNG, no GUI).

The names are loaded on first use, so importing this package imports neither
torch nor matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_METRICS = (
    "CaseLevelCounts", "DEFAULT_VOLUME_THRESHOLD_MM3", "DetectionCounts", "case_level", "detection", "dice",
    "evaluate_case", "f1", "precision", "recall", "sensitivity", "specificity", "summarise", "surface_dice",
)
_PLOTS = ("plot_loss_curves", "plot_metric_bars", "read_progress")
_EXPORTS = {**{n: "rsuper.evaluate.metrics" for n in _METRICS}, **{n: "rsuper.evaluate.plots" for n in _PLOTS}}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
