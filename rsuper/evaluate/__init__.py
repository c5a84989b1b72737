"""R-Super: evaluation of predicted lesion masks, and figures.

* :mod:`rsuper.evaluate.metrics`: :func:`dice`, :func:`surface_dice`,
  :func:`detection` (:class:`DetectionCounts`), :func:`precision`,
  :func:`recall`, :func:`f1`, :func:`case_level` (:class:`CaseLevelCounts`),
  :func:`sensitivity`, :func:`specificity`, :func:`evaluate_case`,
  :func:`summarise`.
* :mod:`rsuper.evaluate.lesions`: :func:`match_lesions` (:class:`LesionMatch`),
  :func:`largest_diameters_mm`, :func:`size_group`.
* :mod:`rsuper.evaluate.patient`: :data:`VOLUME_THRESHOLDS_MM3`, :func:`sweep`
  (:class:`Sweep`), :func:`choose_threshold`, :func:`roc_auc`.
* :mod:`rsuper.evaluate.bootstrap`: vectorised bootstrap over cases.
* :mod:`rsuper.evaluate.organs`: per-organ split of lesions (:func:`split_by_organ`).
* :mod:`rsuper.evaluate.cohort`: folders of NIfTIs -> per-case records (:func:`score_folders`).
* :mod:`rsuper.evaluate.analysis`: records -> cohort summary (:func:`summarise_cohort`).
* :mod:`rsuper.evaluate.output`: per-case CSV, summary JSON, terminal table.
* :mod:`rsuper.evaluate.command_evaluate`: the ``rsuper evaluate`` command.
* :mod:`rsuper.evaluate.pseudo_masks`: where the Ball Loss places reported
  tumours, scored on cases with masks (:func:`case_pseudo_mask_quality`).
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
_MODULES = {
    "rsuper.evaluate.metrics": _METRICS,
    "rsuper.evaluate.plots": _PLOTS,
    "rsuper.evaluate.lesions": ("LesionMatch", "SMALL_TUMOUR_MM", "largest_diameters_mm", "match_lesions",
                                "size_group"),
    "rsuper.evaluate.patient": ("Sweep", "VOLUME_THRESHOLDS_MM3", "choose_threshold", "roc_auc", "sweep"),
    "rsuper.evaluate.pseudo_masks": ("PseudoMaskQuality", "case_pseudo_mask_quality"),
    "rsuper.evaluate.cohort": ("score_case", "score_folders"),
    "rsuper.evaluate.analysis": ("summarise_cohort",),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
