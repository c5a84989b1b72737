"""Split predicted lesions and truth tumours by the organ they lie in.

Each 26-connected predicted component and each truth tumour goes to one organ
of a list (e.g. liver, pancreas, kidney) by majority vote of the organ-mask
labels under its voxels; voxels of other labelled structures vote for "none".
A lesion that covers no labelled voxel (an organ mask with the tumour cut
out, or a lesion just outside the organ) takes the organ of the nearest
labelled voxel within ``margin_mm``; beyond that it belongs to no organ.

Organ label values come from a :class:`rsuper.anatomy.labels.LabelMap`
(default :data:`rsuper.anatomy.labels.RSUPER_IMPORT_LABELS`, which holds the
R-Super model's 35 labels and whole-liver / whole-pancreas labels); an unsided
paired organ (``kidney``) gathers both sides.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from rsuper.anatomy.labels import RSUPER_IMPORT_LABELS, LabelMap, labels_for
from rsuper.infer.postprocess import instances

#: Lesions touching no organ voxel look this far (mm) for the nearest one.
DEFAULT_MARGIN_MM = 5.0

_NONE = -1  # a labelled structure that is not one of the listed organs


def organ_codes(organ_labels: np.ndarray, organs: Sequence[str], label_map: LabelMap = RSUPER_IMPORT_LABELS
                ) -> np.ndarray:
    """``(I, J, K)`` int8: index of the listed organ at each voxel, -1 another structure, -2 background.

    Label values absent from ``label_map`` count as background.
    """
    values = np.asarray(organ_labels)
    if not np.issubdtype(values.dtype, np.integer):
        if not np.array_equal(np.rint(values), values):
            raise ValueError("the organ mask holds non-integer values; expected an integer label map")
        values = values.astype(np.int32)
    top = max(label_map.labels) + 1
    lookup = np.full(top + 1, -2, np.int8)  # the last entry takes every value outside the map
    for value in label_map.labels:
        if value != 0:
            lookup[value] = _NONE
    for index, organ in enumerate(organs):
        lookup[labels_for(organ, None, label_map)] = index
    values = np.where(values < 0, top, values) if np.issubdtype(values.dtype, np.signedinteger) else values
    return lookup[np.minimum(values, top)]


def assign_components(labels: np.ndarray, n: int, codes: np.ndarray, spacing_mm: Sequence[float],
                      margin_mm: float = DEFAULT_MARGIN_MM) -> np.ndarray:
    """Organ index of each component ``1..n`` of ``labels`` (``(n,)`` int, -1 = no listed organ).

    Args:
        labels: ``(I, J, K)`` integer component map, values ``0..n``.
        n: number of components.
        codes: ``(I, J, K)`` from :func:`organ_codes`.
        spacing_mm: voxel size (mm), for the nearest-organ search.
        margin_mm: how far (mm) a component without organ voxels looks for one.
    """
    result = np.full(n, _NONE, np.int64)
    if n == 0:
        return result
    n_codes = int(codes.max(initial=-1)) + 2  # -1 (other structure) and organ indices 0..; background ignored
    inside = (labels != 0) & (codes >= _NONE)
    votes = np.bincount(labels[inside].astype(np.int64) * n_codes + (codes[inside].astype(np.int64) + 1),
                        minlength=(n + 1) * n_codes).reshape(n + 1, n_codes)[1:]  # (n, codes), column 0 = other
    voted = votes.sum(axis=1) > 0
    result[voted] = np.argmax(votes[voted], axis=1) - 1
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    margin = np.ceil(margin_mm / spacing).astype(int) + 1
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None or voted[index - 1]:
            continue
        grown = tuple(slice(max(s.start - m, 0), min(s.stop + m, size))
                      for s, m, size in zip(box, margin, labels.shape))
        distance = ndi.distance_transform_edt(labels[grown] != index, sampling=spacing)  # mm to the component
        near = (codes[grown] >= _NONE) & (distance <= margin_mm)
        if near.any():
            candidates = np.flatnonzero(near)
            result[index - 1] = int(codes[grown].ravel()[candidates[np.argmin(distance.ravel()[candidates])]])
    return result


def split_by_organ(pred_mask: np.ndarray, truth_instances: np.ndarray, codes: np.ndarray, organs: Sequence[str],
                   spacing_mm: Sequence[float], margin_mm: float = DEFAULT_MARGIN_MM
                   ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per organ, the predicted lesions and the truth tumours assigned to it.

    Args:
        pred_mask: ``(I, J, K)`` predicted lesions (non-zero = lesion).
        truth_instances: ``(I, J, K)`` integer tumour instance map (values >= 0).
        codes: ``(I, J, K)`` from :func:`organ_codes` with the same ``organs``.
        organs: the organ names.
        spacing_mm: voxel size (mm).
        margin_mm: see :func:`assign_components`.

    Returns:
        ``{organ: (pred bool (I, J, K), truth instances (I, J, K) of the input's dtype)}``.
    """
    pred_labels, n_pred = instances(np.asarray(pred_mask) != 0)
    truth = np.asarray(truth_instances)
    n_truth = int(truth.max(initial=0))  # instance values are used as component labels (absent ones get -1)
    pred_organ = assign_components(pred_labels, n_pred, codes, spacing_mm, margin_mm)
    truth_organ = assign_components(truth, n_truth, codes, spacing_mm, margin_mm)
    out = {}
    for index, organ in enumerate(organs):
        keep_pred = np.concatenate([[False], pred_organ == index])
        keep_truth = np.concatenate([[False], truth_organ == index])
        out[organ] = (keep_pred[pred_labels], np.where(keep_truth[truth], truth, 0).astype(truth.dtype))
    return out
