"""Load a trained segmenter and everything inference needs from an ``rsuper train`` checkpoint.

A checkpoint (``checkpoints/final.pt``, :mod:`rsuper.train.checkpoint`) holds
the network spec (``config["model"]``), its classes, the preprocessing
(``spacing_mm``, ``hu_clip``), the training patch size (the sliding-window
size) and the organ label map of the training masks. The EMA weights are used
when the run kept them (as the reference's ``--EMA``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS, LabelMap
from rsuper.data.classes import ClassList
from rsuper.model.registry import build_model
from rsuper.train.checkpoint import CheckpointError, load_checkpoint
from rsuper.train.weights import checkpoint_weights


@dataclass
class LoadedModel:
    """A segmenter ready for :func:`rsuper.infer.pipeline.predict_case`.

    Attributes:
        model: the network in eval mode, on ``device``.
        classes: its output channels (organs, then lesions).
        label_map: organ label map of the training masks (also used for ``--organs`` masks).
        spacing_mm: voxel size (mm) the network works at.
        hu_clip: HU window applied before z-scoring.
        patch_size: training patch size in voxels (the sliding-window size).
        path: the checkpoint file.
        used_ema: whether the EMA weights were loaded.
    """

    model: nn.Module
    classes: ClassList
    label_map: LabelMap
    spacing_mm: tuple[float, float, float]
    hu_clip: tuple[float, float]
    patch_size: tuple[int, int, int]
    path: Path
    used_ema: bool

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary (written into ``tumours.json``)."""
        return {"checkpoint": str(self.path), "channels": self.classes.names, "spacing_mm": list(self.spacing_mm),
                "hu_clip": list(self.hu_clip), "patch_size": list(self.patch_size), "ema": self.used_ema}


def load_model(path: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> LoadedModel:
    """Build the network of a checkpoint and load its weights.

    Args:
        path: an ``rsuper`` checkpoint (``final.pt``).
        device: where the network goes (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        ema: prefer the EMA weights.

    Raises:
        CheckpointError: unreadable checkpoint, or one that lacks what inference needs.
        rsuper.model.registry.ModelSpecError: the network class cannot be built.
    """
    path = Path(path)
    ckpt = load_checkpoint(path, map_location="cpu")
    try:
        config = ckpt["config"]
        classes = ClassList.from_dict(ckpt["classes"])
        spacing = tuple(float(v) for v in ckpt.get("spacing_mm") or config["data"]["spacing_mm"])
        hu_clip = tuple(float(v) for v in ckpt.get("hu_clip") or config["data"]["hu_clip"])
        patch = config["data"]["patch_size"]
        patch = tuple(int(v) for v in ([patch] * 3 if isinstance(patch, int) else patch))
        spec = config["model"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} lacks what inference needs ({type(exc).__name__}: {exc})") from exc
    label_map = LabelMap.from_dict(ckpt["label_map"]) if ckpt.get("label_map") else RSUPER_ORGAN_LABELS
    model = build_model(spec, 1, classes.n_channels)
    used_ema = bool(ema and ckpt.get("ema"))
    try:
        model.load_state_dict(checkpoint_weights(ckpt, ema=ema))
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the weights do not fit the network {spec.get('class')!r}: {exc}") from exc
    model.to(torch.device(device)).eval()
    return LoadedModel(model, classes, label_map, spacing, hu_clip, patch, path, used_ema)  # type: ignore[arg-type]
