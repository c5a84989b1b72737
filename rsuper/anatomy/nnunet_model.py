"""A trained nnU-Net v2 model folder: find it, check it, describe it.

nnU-Net v2 writes a trained model as
``<nnUNet_results>/<DatasetXXX_Name>/<trainer>__<plans>__<configuration>/`` holding
``dataset.json`` (labels, channel names, file ending), ``plans.json``
(preprocessing and network) and ``fold_<k>/checkpoint_final.pth`` per trained
fold (``fold_all`` for a model trained on all cases, as the R-Super organ model).
:meth:`NnunetModel.open` accepts that folder, or the dataset folder above it
when it holds exactly one such model, and turns every problem into one
:class:`NnunetModelError` that names the path and what is wrong.

The checks here need no torch: a checkpoint is a zip archive (PyTorch's format
since 1.6) and a truncated copy has lost the zip directory at its end.
:meth:`NnunetModel.load_checkpoints` reads the weights (imports torch).
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from rsuper.anatomy.label_maps import label_map_from_dataset_json
from rsuper.anatomy.labels import LabelMap

DEFAULT_CHECKPOINT = "checkpoint_final.pth"
_LAYOUT = "an nnU-Net v2 model folder holds dataset.json, plans.json and fold_*/checkpoint_final.pth"
_TRAINER_FOLDER = re.compile(r"^(?P<trainer>[^_].*?)__(?P<plans>.+?)__(?P<configuration>[^_].*)$")

Fold = int | str


class NnunetModelError(ValueError):
    """A model folder that cannot be used; the message names the path and the problem."""


@dataclass(frozen=True)
class NnunetModel:
    """A checked nnU-Net v2 model folder.

    Attributes:
        folder: the ``<trainer>__<plans>__<configuration>`` folder.
        dataset_json: parsed ``dataset.json``.
        plans: parsed ``plans.json``.
        folds: folds to use, e.g. ``(0, 1, 2, 3, 4)`` or ``("all",)``.
        checkpoint_name: checkpoint file name inside each fold folder.
        configuration: configuration name from the folder name (e.g. ``3d_fullres``),
            ``None`` when the folder was renamed (the checkpoint then tells).
        trainer_name: trainer from the folder name, or ``None``.
        label_map: the labels of ``dataset.json`` (value -> name).
    """

    folder: Path
    dataset_json: dict[str, Any]
    plans: dict[str, Any]
    folds: tuple[Fold, ...]
    checkpoint_name: str
    configuration: str | None
    trainer_name: str | None
    label_map: LabelMap

    @classmethod
    def open(
        cls, folder: str | Path, folds: Sequence[Fold] | None = None, checkpoint: str = DEFAULT_CHECKPOINT
    ) -> "NnunetModel":
        """Find and check a model folder.

        Args:
            folder: the trainer folder, or a dataset folder holding exactly one.
            folds: fold numbers (or ``"all"``) to use; ``None`` = every
                ``fold_<k>`` with the checkpoint, else ``fold_all``.
            checkpoint: checkpoint file name (``checkpoint_final.pth`` or ``checkpoint_best.pth``).

        Raises:
            NnunetModelError: missing or unreadable ``dataset.json`` / ``plans.json``,
                region-based labels, no fold with the checkpoint, a truncated
                checkpoint, a configuration missing from the plans.
        """
        folder = _model_folder(Path(folder).expanduser())
        dataset_json = _read_json(folder / "dataset.json", "dataset.json")
        plans = _read_json(folder / "plans.json", "plans.json")
        if not isinstance(plans.get("configurations"), dict) or not plans["configurations"]:
            raise NnunetModelError(f"{folder / 'plans.json'}: no 'configurations' (not an nnU-Net v2 plans file)")
        for key in ("channel_names", "file_ending"):
            if key not in dataset_json:
                raise NnunetModelError(f"{folder / 'dataset.json'}: no {key!r} entry (not an nnU-Net v2 dataset.json)")
        try:
            label_map = label_map_from_dataset_json(folder / "dataset.json")
        except ValueError as exc:
            raise NnunetModelError(str(exc)) from None
        match = _TRAINER_FOLDER.match(folder.name)
        configuration = match["configuration"] if match else None
        if configuration is not None and configuration not in plans["configurations"]:
            raise NnunetModelError(
                f"{folder / 'plans.json'}: configuration {configuration!r} (from the folder name) is not in the "
                f"plans; it has {sorted(plans['configurations'])}"
            )
        use = _folds(folder, folds, checkpoint)
        for fold in use:
            check_checkpoint_file(folder / f"fold_{fold}" / checkpoint)
        return cls(folder, dataset_json, plans, use, checkpoint, configuration,
                   match["trainer"] if match else None, label_map)

    @property
    def labels(self) -> dict[str, int]:
        """Structure name -> label value, as in ``dataset.json`` (background included)."""
        return {name: value for value, name in sorted(self.label_map.labels.items())}

    @property
    def file_ending(self) -> str:
        """Image file ending the model was trained with (e.g. ``.nii.gz``)."""
        return str(self.dataset_json["file_ending"])

    @property
    def channel_names(self) -> dict[str, str]:
        """Input channel index (as a string) -> name, e.g. ``{"0": "CT"}``."""
        return {str(k): str(v) for k, v in self.dataset_json["channel_names"].items()}

    @property
    def reader_name(self) -> str:
        """nnU-Net image reader the model was planned with (e.g. ``SimpleITKIO``, ``NibabelIOWithReorient``)."""
        return str(self.plans.get("image_reader_writer", "SimpleITKIO"))

    def checkpoint_path(self, fold: Fold) -> Path:
        """Path of one fold's checkpoint."""
        return self.folder / f"fold_{fold}" / self.checkpoint_name

    def load_checkpoints(self) -> list[dict[str, Any]]:
        """Read every fold's checkpoint (on the CPU) and check the keys the predictor needs.

        Returns:
            One dict per fold with ``network_weights``, ``trainer_name``,
            ``init_args`` (``configuration``) and, if saved,
            ``inference_allowed_mirroring_axes``.

        Raises:
            NnunetModelError: an unreadable checkpoint, missing keys, folds
                trained with different configurations, or a configuration
                missing from the plans.
        """
        import torch

        checkpoints = []
        for fold in self.folds:
            path = self.checkpoint_path(fold)
            try:
                # nnU-Net checkpoints hold a pickled torch.device and numpy values: weights_only=False
                # is how nnU-Net itself loads them. Only load model folders you trust.
                ckpt = torch.load(path, map_location="cpu", weights_only=False)
            except Exception as exc:  # torch raises many types for damaged files
                raise NnunetModelError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
            missing = [k for k in ("network_weights", "trainer_name", "init_args") if k not in ckpt]
            if missing:
                raise NnunetModelError(f"{path}: not an nnU-Net v2 checkpoint (missing {', '.join(missing)})")
            configuration = ckpt["init_args"].get("configuration") if isinstance(ckpt["init_args"], dict) else None
            if configuration not in self.plans["configurations"]:
                raise NnunetModelError(
                    f"{path}: trained with configuration {configuration!r}, which is not in "
                    f"{self.folder / 'plans.json'} (it has {sorted(self.plans['configurations'])})"
                )
            if self.configuration is not None and configuration != self.configuration:
                raise NnunetModelError(
                    f"{path}: trained with configuration {configuration!r}, the folder name says "
                    f"{self.configuration!r}"
                )
            if checkpoints and configuration != checkpoints[0]["init_args"]["configuration"]:
                raise NnunetModelError(f"{path}: the folds were trained with different configurations")
            checkpoints.append(ckpt)
        return checkpoints

    def describe(self) -> str:
        """One line: folder, configuration, folds and label count."""
        return (f"{self.folder} ({self.configuration or 'configuration from checkpoint'}, folds "
                f"{', '.join(str(f) for f in self.folds)}, {len(self.label_map.labels) - 1} labels)")


def check_checkpoint_file(path: Path) -> None:
    """Raise :class:`NnunetModelError` unless ``path`` is a complete PyTorch zip checkpoint.

    Opening the archive reads its central directory, which sits at the end of
    the file: a truncated copy fails here. The contents are checked when loaded.
    """
    if not path.is_file():
        raise NnunetModelError(f"{path}: no such checkpoint ({_LAYOUT})")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise NnunetModelError(
            f"{path}: truncated or not a PyTorch checkpoint ({exc}); copy the file again"
        ) from None
    if not any(name.endswith("data.pkl") for name in names):
        raise NnunetModelError(f"{path}: a zip file but not a PyTorch checkpoint (no data.pkl)")


def _model_folder(path: Path) -> Path:
    """The trainer folder: ``path`` itself, or its only ``trainer__plans__configuration`` sub-folder."""
    if not path.exists():
        raise NnunetModelError(f"{path}: model folder not found")
    if not path.is_dir():
        raise NnunetModelError(f"{path}: not a folder ({_LAYOUT})")
    if (path / "dataset.json").exists() or (path / "plans.json").exists():
        return path
    candidates = sorted(p for p in path.iterdir() if p.is_dir() and _TRAINER_FOLDER.match(p.name))
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise NnunetModelError(f"{path}: holds several trained models ({names}); give the one to use")
    deeper = sorted(p for p in path.glob("*/*") if p.is_dir() and _TRAINER_FOLDER.match(p.name))
    if deeper:
        names = ", ".join(str(p.relative_to(path)) for p in deeper[:5])
        raise NnunetModelError(f"{path}: no dataset.json here; trained models one level down: {names}")
    raise NnunetModelError(f"{path}: no dataset.json ({_LAYOUT})")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise NnunetModelError(f"{path}: no {what} ({_LAYOUT})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NnunetModelError(f"{path}: {what} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise NnunetModelError(f"{path}: {what} is not a JSON object")
    return data


def _folds(folder: Path, folds: Sequence[Fold] | None, checkpoint: str) -> tuple[Fold, ...]:
    """Requested folds (each checked to exist) or the ones found."""
    if folds is not None:
        try:
            use = tuple(f if str(f) == "all" else int(f) for f in folds)
        except ValueError:
            raise NnunetModelError(f"folds must be numbers or 'all', got {list(folds)}") from None
        if not use:
            raise NnunetModelError(f"{folder}: no folds requested")
        for fold in use:
            if not (folder / f"fold_{fold}" / checkpoint).is_file():
                raise NnunetModelError(f"{folder / f'fold_{fold}' / checkpoint}: no such checkpoint ({_LAYOUT})")
        return use
    numbered = sorted(
        int(p.name[5:]) for p in folder.glob("fold_*")
        if p.name[5:].isdigit() and (p / checkpoint).is_file()
    )
    if numbered:
        return tuple(numbered)
    if (folder / "fold_all" / checkpoint).is_file():
        return ("all",)
    found = sorted(p.name for p in folder.glob("fold_*"))
    where = f" (fold folders: {', '.join(found)})" if found else ""
    raise NnunetModelError(f"{folder}: no fold_*/{checkpoint}{where}; {_LAYOUT}")
