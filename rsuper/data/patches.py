"""Training patches: crop choice, voxel targets, unknown masks and report supervision per sample.

Sample contract (:meth:`PatchDataset.__getitem__`, collated by the trainer),
with C channels (organs, then lesions; :class:`~rsuper.data.classes.ClassList`),
L lesion channels, T = ``max_tumours`` and the patch size ``(Px, Py, Pz)``:

* ``image`` float32 ``(1, Px, Py, Pz)``: normalised intensities (augmented);
* ``target`` float32 ``(C, Px, Py, Pz)``: 0/1 voxel labels;
* ``unknown`` bool ``(C, Px, Py, Pz)``: voxels whose label is unknown;
* ``chosen`` bool ``(L, Px, Py, Pz)``: the chosen segment group, in its lesion channel only;
* ``diameters_mm`` float32 ``(T, 3)`` (mm) and ``volumes_mm3`` float32 ``(T,)`` (mm³)
  of the group's tumours, zero-padded;
* ``spacing_mm`` float32 ``(3,)``; ``is_report`` bool scalar (report losses active);
  ``case_index`` int64 scalar (index into ``cases``).

Mixing (method notes §2.4): each sample draws a report case with probability
``report_fraction``, else a mask case, uniformly within the pool (an empty pool
gives way to the other). This oversamples the smaller set, like the
reference's balanced mixing. Unlabelled cases are never drawn.

Targets:

* organ channels from :meth:`ClassList.organ_target`; a channel whose organ has
  no label in the case's label map (or a case without organ mask) is unknown everywhere;
* mask case: each tumour instance is positive in the lesion channel of the
  facts organ most of its voxels carry (``organ_of`` of the label names; if no
  voxel carries a facts organ, the labels of a 1-voxel shell around it vote).
  An instance that cannot be assigned to a lesion channel (its organ has none,
  or the case has no organ mask and the model several lesion channels) is
  unknown in every lesion channel. Facts of mask cases are not used;
* report case: lesion targets are 0; the tumour-bearing segments (and excluded
  organs) are unknown in their lesion channel (:mod:`rsuper.data.report_targets`);
  a ``"segment"`` crop fills ``chosen`` and the tumour sizes and sets ``is_report``.
  A random crop or a healthy report keeps the known negatives but no report loss.

Voxels outside the volume are padding: image = the case's minimum intensity,
labels 0, and they count as known negatives (no tumour lies outside the scan).

Every random draw of sample ``index`` comes from
``np.random.default_rng([seed, index])``: samples are reproducible in any worker
and order, and a run resumes from its step number alone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np
import torch
from scipy import ndimage as ndi
from torch.utils.data import Dataset

from rsuper.anatomy.labels import labels_for, organ_of
from rsuper.data.augment import augment_intensity
from rsuper.data.case import CachedCase
from rsuper.data.classes import ClassList
from rsuper.data.crops import (
    DEFAULT_JITTER,
    RANDOM_REPORT_CROP_P,
    CaseGeometry,
    Crop,
    extract,
    mask_crop,
    patch_shape,
    report_crop,
)
from rsuper.data.report_targets import DEFAULT_MAX_DIAMETER_MM, DEFAULT_MAX_TUMOURS, ReportTargets, report_targets

#: ``len(PatchDataset)``: effectively infinite; the sampler decides which indices are drawn.
DATASET_LENGTH = 10**9
# Lesion-code values of the per-instance lookup table (>= 0: lesion channel).
_NO_TUMOUR, _UNASSIGNED = -1, -2


@dataclass(frozen=True)
class PatchOptions:
    """How patches are cut.

    Attributes:
        patch_size: voxels per axis (one int or three); stored as a 3-tuple.
        max_tumours: T, tumours per sample (padding length of the size tensors).
        jitter: centre jitter of tumour / organ crops, fraction of the patch size per axis.
        random_report_p: probability of a plain random crop (no report loss) for a report case.
        max_diameter_mm: larger reported diameters exclude their organ from report supervision.
    """

    patch_size: int | tuple[int, int, int] = 96
    max_tumours: int = DEFAULT_MAX_TUMOURS
    jitter: float = DEFAULT_JITTER
    random_report_p: float = RANDOM_REPORT_CROP_P
    max_diameter_mm: float = DEFAULT_MAX_DIAMETER_MM

    def __post_init__(self) -> None:
        object.__setattr__(self, "patch_size", patch_shape(self.patch_size))
        if self.max_tumours < 1 or not 0.0 <= self.jitter <= 0.5 or not 0.0 <= self.random_report_p <= 1.0:
            raise ValueError("need max_tumours >= 1, 0 <= jitter <= 0.5 and 0 <= random_report_p <= 1")


class _CaseState:
    """Per-case lookups of one process: crop geometry, report targets, tumour-instance channels (lazy)."""

    def __init__(self, case: CachedCase, classes: ClassList, options: PatchOptions) -> None:
        self.case, self.classes, self.options = case, classes, options
        self.geometry = CaseGeometry(case)
        #: bool ``(n_organs,)``: organ channels unknown everywhere (no mask for the organ).
        self.organ_unknown = np.ones(len(classes.organs), bool)
        if case.organs is not None:
            self.organ_unknown[:] = [not values for values in classes.organ_labels(case.label_map)]
        self.lesion_labels = sorted({v for o in classes.lesion_organs for v in labels_for(o, None, case.label_map)})

    @cached_property
    def report(self) -> ReportTargets:
        """Report supervision of the case (empty for mask cases)."""
        if self.case.kind != "report":
            return ReportTargets()
        return report_targets(self.case.facts, self.case.organs, self.case.label_map, self.classes,
                              self.options.max_tumours, self.options.max_diameter_mm)

    @cached_property
    def instance_code(self) -> np.ndarray:
        """int64 ``(N + 1,)`` lookup: tumour instance -> lesion channel, ``-1`` background, ``-2`` unassigned."""
        boxes = self.geometry.tumour_boxes
        code = np.full(len(boxes) + 1, _UNASSIGNED, np.int64)
        code[0] = _NO_TUMOUR
        for n, box in enumerate(boxes, start=1):
            if box is not None:
                code[n] = self._instance_channel(n, box)
        return code

    def _instance_channel(self, instance: int, box: tuple[slice, ...]) -> int:
        case, classes = self.case, self.classes
        if case.organs is None:
            return 0 if len(classes.lesion_organs) == 1 else _UNASSIGNED
        # Box grown by one voxel so that a shell around the tumour can vote when its own voxels carry no organ.
        grown = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, case.shape))
        inside = np.asarray(case.tumours[grown]) == instance  # type: ignore[index]
        labels = np.asarray(case.organs[grown])
        for region in (inside, ndi.binary_dilation(inside) & ~inside):
            votes: Counter[str] = Counter()
            for value, n in zip(*np.unique(labels[region], return_counts=True)):
                mapped = organ_of(case.label_map.labels.get(int(value), "")) if value else None
                if mapped is not None:
                    votes[mapped[0]] += int(n)
            if votes:
                channel = classes.lesion_index(votes.most_common(1)[0][0])
                return _UNASSIGNED if channel is None else channel
        return _UNASSIGNED


class PatchDataset(Dataset):
    """Random training patches of mask and report cases (see the module docstring).

    Args:
        cases: the training cases (``unlabelled`` ones are never drawn).
        classes: the model's channels.
        options: patch size, T, crop parameters.
        seed: base seed; sample ``index`` uses ``np.random.default_rng([seed, index])``.
        report_fraction: probability that a sample comes from a report case.
        augment: apply :func:`~rsuper.data.augment.augment_intensity`.

    Raises:
        ValueError: no mask or report case, or ``report_fraction`` outside [0, 1].
    """

    def __init__(self, cases: Sequence[CachedCase], classes: ClassList, options: PatchOptions = PatchOptions(),
                 seed: int = 0, report_fraction: float = 0.5, augment: bool = True) -> None:
        if not 0.0 <= report_fraction <= 1.0:
            raise ValueError(f"report_fraction must be in [0, 1], got {report_fraction}")
        self.cases = list(cases)
        self.classes = classes
        self.options = options
        self.seed = int(seed)
        self.report_fraction = float(report_fraction)
        self.augment = augment
        self.mask_pool = [i for i, c in enumerate(self.cases) if c.kind == "mask"]
        self.report_pool = [i for i, c in enumerate(self.cases) if c.kind == "report"]
        if not self.mask_pool and not self.report_pool:
            raise ValueError("no mask or report case to draw patches from")
        self._states: dict[int, _CaseState] = {}

    def __len__(self) -> int:
        return DATASET_LENGTH

    def state(self, case_index: int) -> _CaseState:
        """The cached lookups of one case (built on first use in this process)."""
        if case_index not in self._states:
            self._states[case_index] = _CaseState(self.cases[case_index], self.classes, self.options)
        return self._states[case_index]

    def report_reasons(self) -> dict[str, list[str]]:
        """Case id -> why tumours were ignored / organs excluded from report supervision (report cases)."""
        out = {}
        for i in self.report_pool:
            reasons = self.state(i).report.reasons
            if reasons:
                out[self.cases[i].case_id] = list(reasons)
        return out

    def draw_case(self, rng: np.random.Generator) -> int:
        """Index into ``cases`` of the next sample's case (report with probability ``report_fraction``)."""
        use_report = rng.random() < self.report_fraction
        pool = self.report_pool if (use_report and self.report_pool) or not self.mask_pool else self.mask_pool
        return pool[int(rng.integers(len(pool)))]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(index)])
        case_index = self.draw_case(rng)
        state = self.state(case_index)
        opts = self.options
        if state.case.kind == "mask":
            crop = mask_crop(state.geometry, opts.patch_size, state.lesion_labels, rng, opts.jitter)
        else:
            crop = report_crop(state.geometry, opts.patch_size, state.report.groups, state.lesion_labels, rng,
                               opts.jitter, opts.random_report_p)
        sample = self.assemble(state, crop)
        if self.augment:
            sample["image"] = augment_intensity(sample["image"], rng)
        out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sample.items()}
        out["image"] = out["image"][None]
        out["is_report"] = torch.tensor(crop.group is not None)
        out["case_index"] = torch.tensor(case_index, dtype=torch.int64)
        return out

    def assemble(self, state: _CaseState, crop: Crop) -> dict[str, np.ndarray]:
        """Arrays of one crop (the sample contract without the leading image axis; no augmentation)."""
        case, classes, opts = state.case, self.classes, self.options
        patch = opts.patch_size
        n_organs, n_lesions = len(classes.organs), len(classes.lesion_organs)
        image = extract(case.image, crop.start, patch, state.geometry.pad_value).astype(np.float32, copy=False)
        target = np.zeros((classes.n_channels, *patch), np.float32)
        unknown = np.zeros((classes.n_channels, *patch), bool)
        chosen = np.zeros((n_lesions, *patch), bool)
        diameters = np.zeros((opts.max_tumours, 3), np.float32)
        volumes = np.zeros(opts.max_tumours, np.float32)
        organs = None if case.organs is None else extract(case.organs, crop.start, patch, 0)
        if organs is not None:
            target[:n_organs] = classes.organ_target(organs, case.label_map)
        unknown[:n_organs][state.organ_unknown] = True
        lesion_target, lesion_unknown = target[n_organs:], unknown[n_organs:]
        if case.kind == "mask":
            code = state.instance_code[extract(case.tumours, crop.start, patch, 0)]  # type: ignore[arg-type]
            for c in range(n_lesions):
                lesion_target[c] = code == c
            lesion_unknown[:] = code == _UNASSIGNED
        else:
            report = state.report
            for c, values in report.unknown_labels.items():
                if organs is not None and values:
                    lesion_unknown[c] = np.isin(organs, values)
            for c in report.unknown_everywhere:
                lesion_unknown[c] = True
            if crop.group is not None and organs is not None:
                chosen[crop.group.lesion_index] = np.isin(organs, crop.group.labels)
                diameters[:], volumes[:] = crop.group.diameters_mm, crop.group.volumes_mm3
        return {"image": image, "target": target, "unknown": unknown, "chosen": chosen,
                "diameters_mm": diameters, "volumes_mm3": volumes,
                "spacing_mm": np.asarray(case.spacing_mm, np.float32)}
