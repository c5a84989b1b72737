"""Segmentation, detection and report-level metrics of predicted lesion masks.

Voxel overlap:
    :func:`dice` (DSC) and :func:`surface_dice` (NSD at a tolerance in mm).
Lesion detection (needs a truth instance map):
    :func:`detection` counts found / missed tumours and spurious components;
    :func:`precision`, :func:`recall`, :func:`f1` of the counts.
Case level (the reference's report-based metric, needs only "has a tumour"):
    a case is predicted positive when its predicted lesion volume is at least
    a threshold in mm³ (:func:`case_level`); :func:`sensitivity`, :func:`specificity`.
Whole test set:
    :func:`evaluate_case` gives one case's record, :func:`summarise` aggregates them.

Ratios with a zero denominator (e.g. precision with no predicted lesion) are
``nan``: undefined, not 0 or 1. The exceptions are :func:`dice` and
:func:`surface_dice` of two empty masks, which are 1.0 (nothing to find,
nothing found; MONAI gives ``nan`` there, see each function).

Masks are ``(I, J, K)`` arrays in voxel order; ``spacing_mm`` is the voxel size
along I, J, K in mm.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from rsuper.evaluate.lesions import SIZE_GROUPS, largest_diameters_mm, match_lesions, size_group
from rsuper.infer.postprocess import instances

#: Default case-level threshold (mm³): a case is called positive when its
#: predicted lesions add up to at least this volume. The reference sweeps
#: 10 to 99,000 mm³ without choosing one; 100 mm³ is a sphere of 5.8 mm
#: diameter. Choose it on validation cases for real use.
DEFAULT_VOLUME_THRESHOLD_MM3 = 100.0


def _bool_pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, t = np.asarray(pred) != 0, np.asarray(truth) != 0
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and truth {t.shape} differ in shape")
    return p, t


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice similarity coefficient ``2 |P ∩ T| / (|P| + |T|)`` of two masks (non-zero = foreground).

    Empty truth: 1.0 when the prediction is empty too, else 0.0, as
    ``monai.metrics.compute_dice(..., ignore_empty=False)``; MONAI's default
    (``ignore_empty=True``) gives ``nan`` for any empty truth instead. Computed
    with numpy voxel counts rather than MONAI, which wants one-hot
    ``(B, C, ...)`` tensors; two counts on bool arrays avoid copying a whole CT into torch.
    """
    p, t = _bool_pair(pred, truth)
    total = int(np.count_nonzero(p)) + int(np.count_nonzero(t))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(p & t)) / total


def surface_dice(
    pred: np.ndarray, truth: np.ndarray, spacing_mm: Sequence[float], tolerance_mm: float = 2.0
) -> float:
    """Normalised surface Dice (NSD): the fraction of both surfaces within ``tolerance_mm`` of the other.

    Uses ``monai.metrics.compute_surface_dice`` on the union bounding box of the
    two masks (plus one voxel), which gives the same value as on the whole
    grid. Exactly one empty -> 0.0 (as MONAI); both empty -> 1.0, where MONAI
    gives ``nan`` (nothing to find, nothing found, as :func:`dice`).
    """
    import torch
    from monai.metrics import compute_surface_dice

    p, t = _bool_pair(pred, truth)
    has_p, has_t = bool(p.any()), bool(t.any())
    if not (has_p or has_t):
        return 1.0
    if not (has_p and has_t):
        return 0.0
    union_box = ndi.find_objects((p | t).astype(np.uint8))[0]
    box = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(union_box, p.shape))
    p_t = torch.from_numpy(np.ascontiguousarray(p[box]))[None, None].float()  # (1, 1, x, y, z)
    t_t = torch.from_numpy(np.ascontiguousarray(t[box]))[None, None].float()
    with warnings.catch_warnings():
        # MONAI 1.5+ passes its own deprecated argument internally (a FutureWarning we cannot act on).
        warnings.simplefilter("ignore", FutureWarning)
        value = compute_surface_dice(
            p_t, t_t, [float(tolerance_mm)], include_background=True, spacing=[float(s) for s in spacing_mm]
        )
    return float(value.item())


@dataclass(frozen=True)
class DetectionCounts:
    """Lesion detection counts: found tumours, spurious predicted components, missed tumours."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: DetectionCounts) -> DetectionCounts:
        return DetectionCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


@dataclass(frozen=True)
class CaseLevelCounts:
    """Case-level confusion counts (positive = the case has a tumour)."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def precision(counts: DetectionCounts | CaseLevelCounts) -> float:
    """``tp / (tp + fp)``; ``nan`` without any positive prediction."""
    return _ratio(counts.tp, counts.tp + counts.fp)


def recall(counts: DetectionCounts | CaseLevelCounts) -> float:
    """``tp / (tp + fn)``; ``nan`` without any true positive."""
    return _ratio(counts.tp, counts.tp + counts.fn)


def f1(counts: DetectionCounts | CaseLevelCounts) -> float:
    """``2 tp / (2 tp + fp + fn)`` (the reference's F1); ``nan`` when all three are 0."""
    return _ratio(2 * counts.tp, 2 * counts.tp + counts.fp + counts.fn)


def sensitivity(counts: CaseLevelCounts) -> float:
    """``tp / (tp + fn)`` over cases; ``nan`` without positive cases."""
    return recall(counts)


def specificity(counts: CaseLevelCounts) -> float:
    """``tn / (tn + fp)`` over cases; ``nan`` without negative cases."""
    return _ratio(counts.tn, counts.tn + counts.fp)


def detection(pred_mask: np.ndarray, truth_instances: np.ndarray, min_overlap_voxels: int = 1) -> DetectionCounts:
    """Match predicted lesion components to truth tumours by overlap.

    The prediction is split into 26-connected components. A component and a
    truth tumour match when they share at least ``min_overlap_voxels`` voxels.
    A truth tumour with a match is a true positive, one without is a false
    negative; a component without a match is a false positive. One component
    covering two tumours finds both; two components on one tumour count once
    and are not false positives.

    Args:
        pred_mask: ``(I, J, K)`` predicted lesions (non-zero = lesion).
        truth_instances: ``(I, J, K)`` integer instance map (0 = background,
            one value per tumour, as the cache's ``tumours.npy``), or a bool
            mask, which is split into connected components first.
        min_overlap_voxels: voxels a component must share with a tumour to match it (>= 1).
    """
    match = match_lesions(pred_mask, truth_instances, min_overlap_voxels)
    return DetectionCounts(tp=match.tp, fp=match.fp, fn=match.fn)


def case_level(
    pred_volumes_mm3: Iterable[float], truth_positive: Iterable[bool], threshold_mm3: float
) -> CaseLevelCounts:
    """Case-level counts: a case is predicted positive when its lesion volume is ``>= threshold_mm3``.

    Args:
        pred_volumes_mm3: predicted lesion volume per case (mm³).
        truth_positive: whether each case has a tumour (from its mask or report).
        threshold_mm3: decision threshold (mm³, > 0).
    """
    if threshold_mm3 <= 0:
        raise ValueError(f"threshold_mm3 must be > 0 (else every case is positive), got {threshold_mm3}")
    volumes = np.asarray(list(pred_volumes_mm3), dtype=np.float64)
    truth = np.asarray(list(truth_positive), dtype=bool)
    if volumes.shape != truth.shape:
        raise ValueError(f"{volumes.size} volumes but {truth.size} truth values")
    called = volumes >= threshold_mm3
    return CaseLevelCounts(
        tp=int(np.sum(called & truth)),
        fp=int(np.sum(called & ~truth)),
        tn=int(np.sum(~called & ~truth)),
        fn=int(np.sum(~called & truth)),
    )


def evaluate_case(
    pred_mask: np.ndarray,
    spacing_mm: Sequence[float],
    truth_instances: np.ndarray | None = None,
    truth_has_tumour: bool | None = None,
    case_id: str = "",
    nsd_tolerance_mm: float | None = None,
    min_overlap_voxels: int = 1,
) -> dict[str, Any]:
    """One case's metrics, the record :func:`summarise` aggregates.

    Args:
        pred_mask: ``(I, J, K)`` predicted lesions of one class (non-zero = lesion).
        spacing_mm: voxel size (mm).
        truth_instances: truth tumour instance map (or bool mask) on the same
            grid, ``None`` for a case known only from its report.
        truth_has_tumour: whether the case has a tumour (e.g. from the report);
            ``None``: from ``truth_instances`` when given, else unknown.
        case_id: copied into the record.
        nsd_tolerance_mm: also compute the surface Dice at this tolerance (mm).
        min_overlap_voxels: see :func:`detection`.

    Returns:
        ``{"case_id", "pred_volume_mm3", "truth_has_tumour" (bool | None),
        "truth_volume_mm3", "dice", "nsd", "tp", "fp", "fn", "n_truth_tumours",
        "largest_diameter_mm", "size_group", "tp_small", "fn_small", "tp_large",
        "fn_large"}``. ``tp`` / ``fp`` / ``fn`` are lesion-level counts
        (:func:`detection`); ``largest_diameter_mm`` is that of the case's
        largest tumour (:func:`rsuper.evaluate.lesions.largest_diameters_mm`) and
        ``size_group`` its group (``"small"`` < 20 mm, ``"large"``; ``None`` for a
        case without tumour); ``tp_<group>`` / ``fn_<group>`` count the tumours of
        each size found and missed. The truth-mask entries are ``None`` without
        ``truth_instances`` (and ``nsd`` without a tolerance).
    """
    pred = np.asarray(pred_mask) != 0
    voxel_mm3 = float(np.prod(np.asarray(spacing_mm, dtype=np.float64)))
    record: dict[str, Any] = {
        "case_id": case_id,
        "pred_volume_mm3": float(np.count_nonzero(pred)) * voxel_mm3,
        "truth_has_tumour": truth_has_tumour,
        "truth_volume_mm3": None,
        "dice": None,
        "nsd": None,
        "tp": None,
        "fp": None,
        "fn": None,
        "n_truth_tumours": None,
        "largest_diameter_mm": None,
        "size_group": None,
        **{f"{kind}_{group}": None for group in SIZE_GROUPS for kind in ("tp", "fn")},
    }
    if truth_instances is None:
        return record
    truth = np.asarray(truth_instances)
    if truth.dtype == bool:
        truth = instances(truth)[0]
    truth_fg = truth != 0
    if truth_has_tumour is None:
        record["truth_has_tumour"] = bool(truth_fg.any())
    match = match_lesions(pred, truth, min_overlap_voxels)
    diameters = largest_diameters_mm(truth, spacing_mm)
    groups = np.array([size_group(diameters[int(t)]) for t in match.truth_ids], dtype=object)
    largest = max(diameters.values(), default=None)
    record.update(
        truth_volume_mm3=float(np.count_nonzero(truth_fg)) * voxel_mm3,
        dice=dice(pred, truth_fg),
        tp=match.tp,
        fp=match.fp,
        fn=match.fn,
        n_truth_tumours=len(match.truth_ids),
        largest_diameter_mm=largest,
        size_group=None if largest is None else size_group(largest),
    )
    for group in SIZE_GROUPS:
        record[f"tp_{group}"] = int(np.sum(match.truth_found & (groups == group)))
        record[f"fn_{group}"] = int(np.sum(~match.truth_found & (groups == group)))
    if nsd_tolerance_mm is not None:
        record["nsd"] = surface_dice(pred, truth_fg, spacing_mm, nsd_tolerance_mm)
    return record


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def summarise(
    per_case: Sequence[Mapping[str, Any]], volume_threshold_mm3: float = DEFAULT_VOLUME_THRESHOLD_MM3
) -> dict[str, Any]:
    """Aggregate :func:`evaluate_case` records over a test set.

    * ``dice_mean`` / ``nsd_mean``: mean over the cases with a truth mask that
      holds a tumour (``dice_cases`` / ``nsd_cases`` of them);
    * ``detection_*``: tp, fp, fn pooled over the cases with a truth mask
      (``detection_cases``), then precision, recall, F1 of the pooled counts;
    * ``case_*``: case-level tp, fp, tn, fn, sensitivity, specificity and F1 at
      ``volume_threshold_mm3`` over the cases whose tumour status is known (``case_cases``).

    Returns:
        A flat dict of those keys plus ``n_cases`` and ``case_threshold_mm3``;
        undefined means are ``nan``.
    """
    with_tumour_mask = [c for c in per_case if c.get("dice") is not None and c.get("truth_has_tumour")]
    dices = [float(c["dice"]) for c in with_tumour_mask]
    nsds = [float(c["nsd"]) for c in with_tumour_mask if c.get("nsd") is not None]
    masked = [c for c in per_case if c.get("tp") is not None]
    det = sum((DetectionCounts(int(c["tp"]), int(c["fp"]), int(c["fn"])) for c in masked), DetectionCounts())
    known = [c for c in per_case if c.get("truth_has_tumour") is not None]
    cases = case_level(
        (float(c["pred_volume_mm3"]) for c in known), (bool(c["truth_has_tumour"]) for c in known),
        volume_threshold_mm3,
    )
    return {
        "n_cases": len(per_case),
        "dice_mean": _mean(dices),
        "dice_cases": len(dices),
        "nsd_mean": _mean(nsds),
        "nsd_cases": len(nsds),
        "detection_tp": det.tp,
        "detection_fp": det.fp,
        "detection_fn": det.fn,
        "detection_precision": precision(det),
        "detection_recall": recall(det),
        "detection_f1": f1(det),
        "detection_cases": len(masked),
        "case_threshold_mm3": float(volume_threshold_mm3),
        "case_tp": cases.tp,
        "case_fp": cases.fp,
        "case_tn": cases.tn,
        "case_fn": cases.fn,
        "case_sensitivity": sensitivity(cases),
        "case_specificity": specificity(cases),
        "case_f1": f1(cases),
        "case_cases": len(known),
    }
