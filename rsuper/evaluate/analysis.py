"""Cohort summary of per-case records: threshold choice, metrics per group, bootstrap intervals.

:func:`summarise_cohort` takes the records of :func:`rsuper.evaluate.cohort.score_folders`
(or :func:`rsuper.evaluate.metrics.evaluate_case` records with ``"status": "ok"``) and
returns a JSON-ready summary:

* the per-patient volume threshold ``T`` (mm³): chosen as the best-F1 ``T``
  of :data:`rsuper.evaluate.patient.VOLUME_THRESHOLDS_MM3` on the validation
  cases, or given, or none (then only the sweep is reported);
* metrics of the reported cases (all scored cases but the validation ones) per
  group: ``all``; ``small`` / ``large`` (positive cases whose largest tumour is
  < 2 cm / >= 2 cm, each with all negative cases); and one group per organ when
  the records carry ``<organ>_`` columns (with its own ``T``);
* for each metric ``{"value", "ci_low", "ci_high", "n"}``, the interval a 95 %
  percentile bootstrap over cases (:mod:`rsuper.evaluate.bootstrap`).

Undefined values (a mean over no case, AUC without negatives) are ``None`` in the summary.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from rsuper.evaluate import bootstrap
from rsuper.evaluate.lesions import SIZE_GROUPS
from rsuper.evaluate.patient import VOLUME_THRESHOLDS_MM3, choose_threshold, roc_auc, sweep

#: Metrics that get a bootstrap interval, in reporting order.
INTERVAL_METRICS: tuple[str, ...] = ("dice", "nsd", "sensitivity", "specificity", "f1", "auc")


def _clean(value: Any) -> Any:
    """``value`` with every float ``nan`` / ``inf`` replaced by ``None`` and numpy scalars made plain (JSON)."""
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _column(records: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """``(N,)`` float column, ``nan`` where missing or ``None``."""
    return np.array([math.nan if r.get(key) is None else float(r[key]) for r in records], dtype=np.float64)


def _metric(value: float, samples: np.ndarray | None, n: int) -> dict[str, Any]:
    low, high = bootstrap.percentile_interval(samples) if samples is not None else (math.nan, math.nan)
    return {"value": value, "ci_low": low, "ci_high": high, "n": n}


def _mean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def group_metrics(records: Sequence[Mapping[str, Any]], prefix: str, threshold_mm3: float | None,
                  n_resamples: int, seed: int, size: str | None = None) -> dict[str, Any]:
    """Metrics of one group of cases.

    Args:
        records: the group's cases (scored records).
        prefix: column prefix (``""``, or ``"<organ>_"`` for an organ's columns).
        threshold_mm3: the case-level threshold; ``None``: sensitivity,
            specificity and F1 are not computed.
        n_resamples: bootstrap resamples (0: no intervals).
        seed: bootstrap seed.
        size: ``"small"`` / ``"large"``: lesion-level counts of that size only
            (``tp_<size>``, ``fn_<size>``); precision needs no size and is left out.

    Returns:
        ``{"n_cases", "n_positive", "n_negative", "dice", "nsd", "sensitivity",
        "specificity", "f1", "auc", "lesion"}``; each of the six metrics a
        ``{"value", "ci_low", "ci_high", "n"}`` dict (``n``: cases it is computed on).
    """
    truth = np.array([bool(r[f"{prefix}truth_has_tumour"]) for r in records], dtype=bool)
    volumes = _column(records, f"{prefix}pred_volume_mm3")
    # DSC and NSD are averaged over cases with a tumour (an empty truth has no overlap to measure).
    dice, nsd = (np.where(truth, _column(records, f"{prefix}{k}"), np.nan) for k in ("dice", "nsd"))
    scores = _column(records, "max_probability") if not prefix else np.full(len(records), np.nan)
    indices = bootstrap.resample_indices(len(records), n_resamples, seed) if n_resamples else None
    out: dict[str, Any] = {"n_cases": len(records), "n_positive": int(truth.sum()), "n_negative": int((~truth).sum())}
    for key, values in (("dice", dice), ("nsd", nsd)):
        samples = bootstrap.resampled_mean(values, indices) if indices is not None else None
        out[key] = _metric(_mean(values), samples, int(np.sum(~np.isnan(values))))
    if threshold_mm3 is None:
        out.update({k: _metric(math.nan, None, len(records)) for k in ("sensitivity", "specificity", "f1")})
    else:
        called = volumes >= threshold_mm3
        point = sweep(volumes, truth, [threshold_mm3])
        samples = bootstrap.resampled_rates(called, truth, indices) if indices is not None else {}
        for key in ("sensitivity", "specificity", "f1"):
            out[key] = _metric(float(getattr(point, key)[0]), samples.get(key), len(records))
    has_score = ~np.isnan(scores)
    auc_indices = bootstrap.resample_indices(int(has_score.sum()), n_resamples, seed) if n_resamples else None
    auc_samples = (bootstrap.resampled_auc(scores[has_score], truth[has_score], auc_indices)
                   if auc_indices is not None else None)
    out["auc"] = _metric(roc_auc(scores[has_score], truth[has_score]), auc_samples, int(has_score.sum()))
    out["lesion"] = _lesion_counts(records, prefix, size)
    return out


def _lesion_counts(records: Sequence[Mapping[str, Any]], prefix: str, size: str | None) -> dict[str, Any]:
    suffix = "" if size is None else f"_{size}"
    tp = int(np.nansum(_column(records, f"{prefix}tp{suffix}")))
    fn = int(np.nansum(_column(records, f"{prefix}fn{suffix}")))
    counts: dict[str, Any] = {"tp": tp, "fn": fn, "recall": tp / (tp + fn) if tp + fn else math.nan}
    if size is None:
        fp = int(np.nansum(_column(records, f"{prefix}fp")))
        counts.update(fp=fp, precision=tp / (tp + fp) if tp + fp else math.nan,
                      f1=2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan)
    return counts


def _choose(validation: Sequence[Mapping[str, Any]], prefix: str, thresholds: np.ndarray,
            given_mm3: float | None, has_split: bool) -> dict[str, Any]:
    """The threshold section of one group: ``{"value_mm3", "how", "note", "sweep_validation"}``."""
    if given_mm3 is not None:
        return {"value_mm3": float(given_mm3), "how": "given", "note": "threshold given on the command line"}
    if not has_split:
        return {"value_mm3": None, "how": "none",
                "note": "no validation split: no threshold was chosen; see the sweep over the reported cases"}
    truth = [bool(r[f"{prefix}truth_has_tumour"]) for r in validation]
    result = sweep(_column(validation, f"{prefix}pred_volume_mm3"), truth, thresholds)
    section: dict[str, Any] = {"value_mm3": None, "how": "best F1 on the validation split",
                               "sweep_validation": result.to_dict()}
    if not any(truth):
        section["note"] = f"the validation split has no case with a tumour ({len(validation)} cases): " \
                          "no threshold was chosen"
        return section
    chosen = choose_threshold(result)
    section["value_mm3"] = chosen
    position = int(np.flatnonzero(result.thresholds_mm3 == chosen)[0])
    section["note"] = (f"chosen on {len(validation)} validation cases ({sum(truth)} with a tumour): "
                       f"F1 {result.f1[position]:.3f}")
    return section


def summarise_cohort(
    records: Sequence[Mapping[str, Any]],
    *,
    validation_ids: Iterable[str] | None = None,
    threshold_mm3: float | None = None,
    thresholds_mm3: Sequence[float] = tuple(VOLUME_THRESHOLDS_MM3),
    organs: Sequence[str] = (),
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Summary of a scored cohort (see the module docstring); JSON-ready, ``None`` for undefined values.

    Args:
        records: per-case records; those with ``status`` other than ``"ok"`` are counted as errors.
        validation_ids: the validation split; ``None``: no split.
        threshold_mm3: use this threshold (mm³) instead of choosing one.
        thresholds_mm3: the sweep.
        organs: organs whose ``<organ>_`` columns the records carry.
        n_resamples: bootstrap resamples (0: no intervals).
        seed: bootstrap seed.

    Returns:
        ``{"cases": {...counts, split...}, "errors": [{"case_id", "reason"}],
        "warnings": [...], "groups": {name: {"threshold": {...}, "sweep": {...},
        **group_metrics(...)}}}``.
    """
    if threshold_mm3 is not None and threshold_mm3 <= 0:
        raise ValueError(f"threshold_mm3 must be > 0, got {threshold_mm3}")
    scored = [r for r in records if r.get("status", "ok") == "ok"]
    validation_set = set(validation_ids) if validation_ids is not None else set()
    validation = [r for r in scored if r["case_id"] in validation_set]
    reported = [r for r in scored if r["case_id"] not in validation_set]
    thresholds = np.asarray(thresholds_mm3, dtype=np.float64)
    has_split = validation_ids is not None
    summary: dict[str, Any] = {
        "cases": {
            "found": len(records), "scored": len(scored), "errors": len(records) - len(scored),
            "validation": len(validation), "reported": len(reported),
            "split_ids_not_scored": sorted(validation_set - {r["case_id"] for r in scored}),
        },
        "errors": [{"case_id": r["case_id"], "reason": r.get("error", "")} for r in records
                   if r.get("status", "ok") != "ok"],
        "warnings": [{"case_id": r["case_id"], "warning": r["warning"]} for r in scored if r.get("warning")],
        "groups": {},
    }
    specs: list[tuple[str, str, str | None]] = [("all", "", None)]
    specs += [(size, "", size) for size in SIZE_GROUPS]
    specs += [(organ, f"{organ}_", None) for organ in organs]
    chosen: dict[str, dict[str, Any]] = {}
    for name, prefix, size in specs:
        if size is None:
            chosen[prefix] = _choose(validation, prefix, thresholds, threshold_mm3, has_split)
        section = chosen[prefix]
        cases = reported if size is None else [
            r for r in reported if not r["truth_has_tumour"] or r.get("size_group") == size]
        group = {"threshold": section if size is None else {"value_mm3": section["value_mm3"], "how": "as all"}}
        if size is None:
            truth = [bool(r[f"{prefix}truth_has_tumour"]) for r in cases]
            group["sweep"] = sweep(_column(cases, f"{prefix}pred_volume_mm3"), truth, thresholds).to_dict()
        group.update(group_metrics(cases, prefix, section["value_mm3"], n_resamples, seed, size))
        summary["groups"][name] = group
    return _clean(summary)


def called_positive(records: Sequence[Mapping[str, Any]], summary: Mapping[str, Any],
                    validation_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The records with ``split`` (``"validation"`` / ``"test"`` / ``""`` without a split) and
    ``[<organ>_]called_positive`` (predicted volume >= the group's threshold; ``None`` without one)."""
    validation_set = set(validation_ids) if validation_ids is not None else None
    thresholds = {("" if name == "all" else f"{name}_"): group["threshold"]["value_mm3"]
                  for name, group in summary["groups"].items() if name not in SIZE_GROUPS}
    out = []
    for record in records:
        row = dict(record)
        row["split"] = "" if validation_set is None else ("validation" if row["case_id"] in validation_set else "test")
        for prefix, threshold in thresholds.items():
            volume = row.get(f"{prefix}pred_volume_mm3")
            row[f"{prefix}called_positive"] = None if threshold is None or volume is None else volume >= threshold
        out.append(row)
    return out
