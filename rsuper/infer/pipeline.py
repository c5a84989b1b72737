"""Segment the tumours of one CT with a trained model: from a NIfTI image to instances and their records.

Steps of :func:`predict_case` (all measurements on the CT's canonical RAS view,
:class:`rsuper.infer.grid.CanonicalGrid`):

1. preprocess as training did (:mod:`rsuper.data.preprocess`): reorient to
   RAS, resample to the model's spacing keeping the field of view (trilinear,
   the training default), clip HU and z-score with the volume's own statistics;
2. sliding-window sigmoid probabilities (:func:`rsuper.infer.sliding.predict_probabilities`,
   Gaussian blending, optional flip TTA) of the lesion channels, plus the
   organ channels needed to restrict lesions when no organ mask is given;
3. per lesion channel, one at a time: resample the probability back to the CT
   grid (trilinear), threshold it, keep the voxels within ``organ_margin_mm``
   of the channel's organ (the organ mask when given, else the model's own
   organ channel; the reference's ``--organ_mask_on_lesion``). A voxel kept by
   several lesion channels goes to the most probable one. Only the box of the
   CT grid that can exceed the threshold (around the model-grid voxels above
   it) is resampled, unless the probabilities are kept;
4. connected components (26-connectivity) of at least ``min_volume_mm3``
   become the instances, numbered 1..N channel by channel; each gets a
   :class:`rsuper.infer.records.TumourRecord`;
5. the instance map (and the probabilities) go back to the CT file's own axis
   order, so the output has the CT's shape and affine.

Memory: the CT (int16 as stored, or float32 when the file scales its values),
the model-grid probabilities of the kept channels (float32), and on the CT
grid the lesion boxes of one channel at a time, a "best probability" and an
owner map (only their box pages become resident), the uint16 instance map;
nothing in float64. Keeping the probabilities adds one float32 channel at a
time and the uint8 ``(I, J, K, L)`` result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import nibabel as nib
import numpy as np
import torch

from rsuper.anatomy.labels import LabelMap, labels_for
from rsuper.data.classes import channel_organ
from rsuper.data.preprocess import PreprocessOptions, normalise, resample, target_grid

from .model_io import LoadedModel
from .postprocess import binarise, instances_above, restrict_to_organs
from .records import OrganLookup, TumourRecord, measure_tumours
from .sliding import predict_probabilities
from .tumours_file import PROBABILITY_LEVELS
from .volumes import InputError, read_ct_ras, read_labels_ras

#: Interpolation order of the CT when resampled to the model grid (the training cache's default).
IMAGE_ORDER = PreprocessOptions().image_order


@dataclass(frozen=True)
class PredictOptions:
    """How a CT is segmented.

    Attributes:
        overlap: sliding-window overlap fraction in [0, 1).
        tta: flip test-time augmentation (4 passes per window).
        threshold: a lesion voxel has probability strictly above this.
        organ_threshold: an organ voxel of the model's own organ channel has probability above this.
        min_volume_mm3: smallest tumour kept (mm³).
        organ_margin_mm: lesion voxels are kept within this distance (mm) of their organ.
        restrict_to_organ: restrict lesions to their organ at all.
        batch_size: windows per forward pass.
        amp: mixed precision for the network.
        keep_probabilities: also return the lesion probabilities on the CT grid.
    """

    overlap: float = 0.5
    tta: bool = False
    threshold: float = 0.5
    organ_threshold: float = 0.5
    min_volume_mm3: float = 50.0
    organ_margin_mm: float = 3.0
    restrict_to_organ: bool = True
    batch_size: int = 2
    amp: bool = False
    keep_probabilities: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold < 1.0 or not 0.0 <= self.organ_threshold < 1.0:
            raise ValueError("thresholds must be in [0, 1)")
        if self.min_volume_mm3 < 0 or self.organ_margin_mm < 0:
            raise ValueError("min_volume_mm3 and organ_margin_mm must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (written into ``tumours.json``)."""
        return asdict(self)


@dataclass
class CasePrediction:
    """The result of :func:`predict_case`, on the CT file's own grid.

    Attributes:
        labels: ``(I, J, K)`` instance ids (uint8, or uint16 beyond 255 instances), 0 = background.
        affine: the CT's ``(4, 4)`` affine.
        records: one record per instance, ``records[n - 1].id == n``.
        lesion_channels: lesion channel names, in channel order.
        lesion_organs: their facts organs.
        organ_source: lesion channel -> ``"mask"`` (organ mask), ``"model"`` (the
            model's organ channel) or ``"none"`` (not restricted).
        max_probability: lesion channel -> highest probability anywhere in the CT (on the model's grid).
        probabilities: ``(I, J, K, L)`` uint8 ``round(255 p)`` of the lesion channels, or ``None``.
        options: the options used.
    """

    labels: np.ndarray
    affine: np.ndarray
    records: list[TumourRecord]
    lesion_channels: list[str]
    lesion_organs: list[str]
    organ_source: dict[str, str]
    max_probability: dict[str, float]
    probabilities: np.ndarray | None
    options: PredictOptions = field(default_factory=PredictOptions)


@dataclass(frozen=True)
class _ModelGrid:
    """The model grid of a CT: CT canonical index = ``scale * model index + offset``."""

    shape: tuple[int, int, int]
    scale: np.ndarray
    offset: np.ndarray

    def to_ct(self, channel: np.ndarray, ct_shape: tuple[int, int, int],
              box: tuple[slice, ...] | None = None) -> np.ndarray:
        """A model-grid channel resampled (trilinear) onto the CT's canonical grid (or a box of it), float32."""
        box = box or tuple(slice(0, n) for n in ct_shape)
        start = np.array([b.start for b in box], float)
        shape = tuple(b.stop - b.start for b in box)
        return resample(channel, shape, 1.0 / self.scale, (start - self.offset) / self.scale, 1, np.float32)

    def ct_box(self, candidates: np.ndarray, ct_shape: tuple[int, int, int],
               grow: np.ndarray) -> tuple[slice, ...] | None:
        """The box of the CT grid where a model-grid mask's trilinear resampling can be non-zero, or ``None``.

        A CT voxel's interpolated value is a weighted mean of its 8 model-grid
        neighbours, so outside the box of the ``candidates`` grown by one model
        voxel it cannot exceed the threshold that made them. The box is grown
        by ``grow`` more CT voxels (room for the organ margin).
        """
        where = np.argwhere(candidates)
        if not len(where):
            return None
        low = np.floor(self.scale * (where.min(axis=0) - 1) + self.offset).astype(int) - grow
        high = np.ceil(self.scale * (where.max(axis=0) + 1) + self.offset).astype(int) + 1 + grow
        return tuple(slice(max(int(a), 0), min(int(b), n)) for a, b, n in zip(low, high, ct_shape))


def _organ_sources(loaded: LoadedModel, organs_ras: np.ndarray | None, label_map: LabelMap,
                   restrict: bool) -> dict[str, tuple[str, Any]]:
    """Lesion organ -> ("mask", label values) | ("model", organ channel index) | ("none", None)."""
    sources: dict[str, tuple[str, Any]] = {}
    for organ in loaded.classes.lesion_organs:
        values = labels_for(organ, None, label_map) if organs_ras is not None else []
        model_organ = channel_organ(organ, loaded.classes.organs)
        if not restrict:
            sources[organ] = ("none", None)
        elif values:
            sources[organ] = ("mask", values)
        elif model_organ is not None:
            sources[organ] = ("model", loaded.classes.organs.index(model_organ))
        else:
            sources[organ] = ("none", None)
    return sources


def predict_case(
    loaded: LoadedModel,
    ct: nib.spatialimages.SpatialImage,
    organs: nib.spatialimages.SpatialImage | None = None,
    options: PredictOptions = PredictOptions(),
    label_map: LabelMap | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CasePrediction:
    """Segment and measure the tumours of one CT (see the module docstring).

    Args:
        loaded: the model (:func:`rsuper.infer.model_io.load_model`).
        ct: the CT (HU), any orientation.
        organs: optional organ label mask on the CT's grid.
        options: thresholds, overlap, TTA ...
        label_map: meaning of the organ mask's labels (default: the model's).
        progress: ``callback(windows_done, windows_total)`` during the sliding window.

    Raises:
        rsuper.infer.volumes.InputError: the CT is not 3D, the organ mask does not fit it, too many tumours.
    """
    label_map = label_map or loaded.label_map
    grid, hu_ras = read_ct_ras(ct)
    organs_ras = read_labels_ras(organs, ct, grid, "organ mask") if organs is not None else None
    ras_shape, spacing = grid.ras_shape, grid.ras_spacing_mm
    classes = loaded.classes
    sources = _organ_sources(loaded, organs_ras, label_map, options.restrict_to_organ)

    lesion_channels = list(classes.lesion_channels)
    organ_channels = sorted({index for kind, index in sources.values() if kind == "model"})
    keep = lesion_channels + organ_channels  # position in the probabilities array -> model channel
    shape, scale, offset, _ = target_grid(hu_ras.shape, grid.ras_affine, loaded.spacing_mm)
    model_grid = _ModelGrid(shape, scale, offset)
    image = normalise(resample(hu_ras, shape, scale, offset, IMAGE_ORDER, np.float32), loaded.hu_clip)
    probs = predict_probabilities(
        loaded.model, torch.from_numpy(image), loaded.patch_size, overlap=options.overlap,
        batch_size=options.batch_size, amp=options.amp, progress=progress, tta=options.tta, channels=keep,
    )
    del image

    names = classes.names
    n_lesions = len(lesion_channels)
    # np.zeros maps zero pages lazily: only the pages of the lesion boxes written below become resident.
    best = np.zeros(ras_shape, np.float32)  # probability of the lesion channel owning each kept voxel
    owner = np.zeros(ras_shape, np.uint8)  # 1 + lesion index owning the voxel, 0 = none
    kept_probs = np.zeros((*ras_shape, n_lesions), np.uint8) if options.keep_probabilities else None
    margin = np.ceil(options.organ_margin_mm / spacing).astype(int) + 1
    boxes: dict[int, tuple[slice, ...]] = {}
    max_probability: dict[str, float] = {}
    organ_source: dict[str, str] = {}
    for lesion, organ in enumerate(classes.lesion_organs):
        name = names[lesion_channels[lesion]]
        kind, how = sources[organ]
        organ_source[name] = kind
        max_probability[name] = float(probs[lesion].max())
        if kept_probs is not None:
            p = model_grid.to_ct(probs[lesion], ras_shape)
            kept_probs[..., lesion] = np.rint(p * PROBABILITY_LEVELS).astype(np.uint8)
            del p
        box = model_grid.ct_box(probs[lesion] > options.threshold, ras_shape, margin)
        if box is None:
            continue
        p = model_grid.to_ct(probs[lesion], ras_shape, box)
        mask = binarise(p, options.threshold)
        if kind == "mask":
            region = np.isin(organs_ras[box], how)
        elif kind == "model":
            region = binarise(model_grid.to_ct(probs[keep.index(how)], ras_shape, box), options.organ_threshold)
        else:
            region = None
        if region is not None:
            mask = restrict_to_organs(mask, region, spacing_mm=spacing, dilation_mm=options.organ_margin_mm)
        kept = np.nonzero(mask)  # index lists: only the kept voxels' pages of ``best`` are read or written
        values = p[kept]
        better = values > best[box][kept]
        claim = tuple(axis[better] for axis in kept)
        best[box][claim] = values[better]
        owner[box][claim] = lesion + 1
        boxes[lesion] = box
        del p, mask, region, kept, values, better, claim
    del probs

    labels_ras = np.zeros(ras_shape, np.uint16)
    channel_of: dict[int, str] = {}
    organ_of_id: dict[int, str] = {}
    count = 0
    for lesion, box in boxes.items():
        found, n = instances_above(owner[box] == lesion + 1, options.min_volume_mm3, spacing)
        if not n:
            continue
        if count + n > np.iinfo(np.uint16).max:
            raise InputError(f"more than {np.iinfo(np.uint16).max} tumours; raise --threshold or --min-volume-mm3")
        inside = found > 0
        labels_ras[box][inside] = found[inside] + count
        for i in range(count + 1, count + n + 1):
            channel_of[i] = names[lesion_channels[lesion]]
            organ_of_id[i] = classes.lesion_organs[lesion]
        count += n
    del owner

    lookup = OrganLookup(organs_ras, label_map, options.organ_margin_mm) if organs_ras is not None else None
    records = measure_tumours(labels_ras, grid, hu_ras=hu_ras, probability_ras=best, organs=lookup,
                              channels=channel_of, channel_organs=organ_of_id)
    dtype = np.uint8 if count <= np.iinfo(np.uint8).max else np.uint16
    return CasePrediction(
        labels=grid.from_ras(labels_ras.astype(dtype)),
        affine=np.asarray(ct.affine, float),
        records=records,
        lesion_channels=[names[c] for c in lesion_channels],
        lesion_organs=list(classes.lesion_organs),
        organ_source=organ_source,
        max_probability=max_probability,
        probabilities=None if kept_probs is None else grid.from_ras(kept_probs),
        options=options,
    )
