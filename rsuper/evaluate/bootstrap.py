"""Bootstrap confidence intervals over cases, vectorised with numpy.

All ``B`` resamples are drawn at once as a ``(B, N)`` index matrix
(:func:`resample_indices`, seeded); each statistic is then computed for every
row in one array operation:

* :func:`resampled_mean`: the mean of a per-case value (``nan`` entries skipped), e.g. DSC;
* :func:`resampled_rates`: sensitivity, specificity and F1 of case-level calls;
* :func:`resampled_auc`: ROC AUC (Mann-Whitney U with tie-averaged ranks,
  ``scipy.stats.rankdata`` along the rows; equal to ``sklearn.metrics.roc_auc_score``).

:func:`percentile_interval` turns the ``(B,)`` values into a 95 % percentile
interval. A resample in which a statistic is undefined (e.g. no positive case
for a sensitivity) gives ``nan`` and is left out of that interval.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def resample_indices(n_cases: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """``(B, N)`` int indices: ``B`` resamples of ``N`` cases with replacement (``np.random.default_rng(seed)``)."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if n_cases == 0:
        return np.zeros((n_resamples, 0), np.int64)
    return np.random.default_rng(seed).integers(0, n_cases, size=(n_resamples, n_cases))


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.full(num.shape, np.nan), where=den != 0)


def resampled_mean(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``(B,)`` mean of ``values`` ``(N,)`` over each resample, ``nan`` entries skipped (``nan`` if none left)."""
    picked = np.asarray(values, dtype=np.float64)[indices]  # (B, N)
    valid = ~np.isnan(picked)
    return _divide(np.where(valid, picked, 0.0).sum(axis=1), valid.sum(axis=1))


def resampled_rates(called: np.ndarray, truth: np.ndarray, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Sensitivity, specificity and F1 (``2 tp / (2 tp + fp + fn)``) of each resample.

    Args:
        called: ``(N,)`` bool, the case is called positive.
        truth: ``(N,)`` bool, the case has a tumour.
        indices: ``(B, N)`` from :func:`resample_indices`.

    Returns:
        ``{"sensitivity", "specificity", "f1"}``, each ``(B,)``.
    """
    c, t = np.asarray(called, bool)[indices], np.asarray(truth, bool)[indices]  # (B, N)
    tp, fp = np.sum(c & t, axis=1), np.sum(c & ~t, axis=1)
    tn, fn = np.sum(~c & ~t, axis=1), np.sum(~c & t, axis=1)
    return {
        "sensitivity": _divide(tp, tp + fn),
        "specificity": _divide(tn, tn + fp),
        "f1": _divide(2 * tp, 2 * tp + fp + fn),
    }


def resampled_auc(scores: np.ndarray, truth: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``(B,)`` ROC AUC of each resample; ``nan`` where a resample lacks positives or negatives.

    AUC = ``(R+ - n+ (n+ + 1) / 2) / (n+ n-)`` with ``R+`` the sum of the
    positives' ranks among all scores of the resample (ties get their average rank).
    """
    s = np.asarray(scores, dtype=np.float64)[indices]  # (B, N)
    t = np.asarray(truth, bool)[indices]
    if s.shape[1] == 0:
        return np.full(s.shape[0], np.nan)
    ranks = rankdata(s, axis=1)  # average ranks for ties, 1..N
    n_pos = t.sum(axis=1).astype(np.float64)
    n_neg = t.shape[1] - n_pos
    rank_sum = np.where(t, ranks, 0.0).sum(axis=1)
    return _divide(rank_sum - n_pos * (n_pos + 1) / 2, n_pos * n_neg)


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Central percentile interval of the finite ``samples`` (``(nan, nan)`` if none)."""
    values = np.asarray(samples, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)
