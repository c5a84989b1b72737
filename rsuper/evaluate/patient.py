"""Per-patient (case-level) detection: the volume-threshold sweep, its choice, and ROC AUC.

A case is called positive when its predicted tumour volume is at least a
threshold ``T`` (mm³), as the reference's report-based evaluation does
(:func:`rsuper.evaluate.metrics.case_level` for one ``T``).

* :data:`VOLUME_THRESHOLDS_MM3`: the reference's sweep of ``T``.
* :func:`sweep`: sensitivity, specificity and F1 at every ``T`` at once.
* :func:`choose_threshold`: the best-F1 ``T`` of a sweep (run on validation cases).
* :func:`roc_auc`: ROC AUC of a per-case score (the maximum tumour probability).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: The reference's threshold sweep (mm³): 10-90 step 10, 100-990 step 10,
#: 1,000-9,900 step 100, 10,000-99,000 step 1,000 (279 values, ascending).
VOLUME_THRESHOLDS_MM3: np.ndarray = np.concatenate([
    np.arange(10, 100, 10), np.arange(100, 1000, 10), np.arange(1000, 10000, 100), np.arange(10000, 100000, 1000),
]).astype(np.float64)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` elementwise, ``nan`` where ``den`` is 0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, np.nan), where=den != 0)


@dataclass(frozen=True)
class Sweep:
    """Case-level counts and rates at each threshold; every array is ``(K,)`` for ``K`` thresholds."""

    thresholds_mm3: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    tn: np.ndarray
    fn: np.ndarray

    @property
    def sensitivity(self) -> np.ndarray:
        """``tp / (tp + fn)``; ``nan`` without positive cases."""
        return _divide(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> np.ndarray:
        """``tn / (tn + fp)``; ``nan`` without negative cases."""
        return _divide(self.tn, self.tn + self.fp)

    @property
    def f1(self) -> np.ndarray:
        """``2 tp / (2 tp + fp + fn)``; ``nan`` when all three are 0."""
        return _divide(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready lists (``None`` for ``nan``): thresholds, counts, sensitivity, specificity, f1."""
        def clean(values: np.ndarray) -> list[Any]:
            return [None if np.isnan(v) else float(v) for v in np.asarray(values, dtype=np.float64)]

        return {
            "thresholds_mm3": [float(t) for t in self.thresholds_mm3],
            **{k: [int(v) for v in getattr(self, k)] for k in ("tp", "fp", "tn", "fn")},
            "sensitivity": clean(self.sensitivity),
            "specificity": clean(self.specificity),
            "f1": clean(self.f1),
        }


def _cases(volumes_mm3: Any, truth_positive: Any) -> tuple[np.ndarray, np.ndarray]:
    volumes = np.asarray(volumes_mm3, dtype=np.float64).reshape(-1)
    truth = np.asarray(truth_positive, dtype=bool).reshape(-1)
    if volumes.shape != truth.shape:
        raise ValueError(f"{volumes.size} volumes but {truth.size} truth values")
    return volumes, truth


def sweep(volumes_mm3: Any, truth_positive: Any, thresholds_mm3: Any = VOLUME_THRESHOLDS_MM3) -> Sweep:
    """Case-level confusion counts at every threshold, vectorised over cases and thresholds.

    Args:
        volumes_mm3: ``(N,)`` predicted tumour volume per case (mm³).
        truth_positive: ``(N,)`` bool, the case has a tumour.
        thresholds_mm3: ``(K,)`` thresholds (mm³, > 0); a case is called positive when its volume is ``>= T``.
    """
    volumes, truth = _cases(volumes_mm3, truth_positive)
    thresholds = np.asarray(thresholds_mm3, dtype=np.float64).reshape(-1)
    if thresholds.size == 0 or np.any(thresholds <= 0):
        raise ValueError("thresholds must be a non-empty list of volumes > 0 mm³")
    called = volumes[:, None] >= thresholds[None, :]  # (N, K)
    pos, neg = truth[:, None], ~truth[:, None]
    return Sweep(
        thresholds_mm3=thresholds,
        tp=np.sum(called & pos, axis=0),
        fp=np.sum(called & neg, axis=0),
        tn=np.sum(~called & neg, axis=0),
        fn=np.sum(~called & pos, axis=0),
    )


def choose_threshold(result: Sweep) -> float | None:
    """The threshold with the highest F1 in ``result``; ``None`` when F1 is undefined everywhere.

    F1 often plateaus over a run of thresholds (any ``T`` between the largest
    negative and the smallest positive volume separates them equally well); among
    thresholds that tie, the middle one of the tied values (in ascending order) is
    taken, the centre of a plateau, rather than its edge next to a case.
    """
    scores = result.f1
    if np.all(np.isnan(scores)):
        return None
    best = np.nanmax(scores)
    tied = np.flatnonzero(scores == best)
    return float(result.thresholds_mm3[tied[len(tied) // 2]])


def roc_auc(scores: Any, truth_positive: Any) -> float:
    """Area under the ROC curve of per-case scores (``sklearn.metrics.roc_auc_score``).

    Args:
        scores: ``(N,)`` per-case score, e.g. the maximum tumour probability.
        truth_positive: ``(N,)`` bool, the case has a tumour.

    Returns:
        The AUC; ``nan`` unless both positive and negative cases are present.
    """
    from sklearn.metrics import roc_auc_score

    values, truth = _cases(scores, truth_positive)
    if truth.all() or not truth.any():
        return float("nan")
    return float(roc_auc_score(truth, values))
