"""Training configuration: a YAML file plus ``key.sub=value`` overrides, checked strictly.

A minimal ``train.yaml`` (every other key has a default; see
``docs/training.md`` for all of them)::

    data:
      manifest: data/manifest.csv     # CSV / JSONL, see docs/dataset-manifest.md
      facts_jsonl: facts.jsonl        # optional: facts from `rsuper extract`
      cache: cache/                   # preprocessed arrays (made on first use)
    stages:
      - {name: masks, steps: 20000, lr: 1.0e-3, data: masks, report_weight: 0.0}
      - {name: reports, steps: 20000, lr: 1.0e-4, data: all, report_weight: 0.1}

Relative paths in the file resolve against the file's folder. Unknown keys
are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from rsuper.losses import RSuperLossConfig

StageData = Literal["masks", "reports", "all"]


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


@dataclass
class DataConfig:
    """Where the cases are and how patches are drawn.

    Attributes:
        manifest: dataset manifest (CSV or JSON Lines).
        facts_jsonl: optional facts file joined on ``case_id`` for rows without ``facts``.
        label_map: optional JSON label map of the organ masks (default: the R-Super map).
        cache: folder of the preprocessed arrays; created / completed before training.
        spacing_mm: target voxel size (mm) of the cache.
        hu_clip: HU window applied before z-scoring.
        patch_size: patch size in voxels (per axis).
        batch_size: patches per optimizer step (per process under DDP).
        workers: data-loader worker processes (0 = in the training process).
        report_fraction: share of report-case patches in stages with ``data: all``.
        max_tumours: padding length T of the per-patch tumour lists.
        augment: intensity augmentation on/off.
        strict: refuse to train when validation finds errors (default: drop the
            failing cases and list them in ``problems.jsonl``).
        preprocess_workers: processes for building the cache.
    """

    manifest: str = ""
    facts_jsonl: str | None = None
    label_map: str | None = None
    cache: str = "cache"
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    hu_clip: tuple[float, float] = (-991.0, 500.0)
    patch_size: tuple[int, int, int] = (96, 96, 96)
    batch_size: int = 2
    workers: int = 2
    report_fraction: float = 0.5
    max_tumours: int = 10
    augment: bool = True
    strict: bool = False
    preprocess_workers: int = 1


@dataclass
class ClassesConfig:
    """Output channels (see :class:`rsuper.data.classes.ClassList`)."""

    organs: tuple[str, ...] = ("liver", "pancreas", "kidney")
    lesion_organs: tuple[str, ...] = ("liver", "pancreas", "kidney")


@dataclass
class ModelConfig:
    """The network: a class by dotted path and its keyword arguments (see docs/custom-models.md)."""

    cls: str = "rsuper.model.unet:UNet3D"
    kwargs: dict[str, Any] = field(default_factory=lambda: {"features": [32, 64, 128, 256, 320], "deep_supervision": 1})


@dataclass
class OptimConfig:
    """AdamW, warm-up + poly schedule, clipping, EMA and mixed precision (the reference's values).

    Attributes:
        weight_decay, betas, eps: AdamW settings.
        warmup_steps: exponential warm-up length (steps) at the start of each stage.
        grad_clip: max global gradient norm (0 = off).
        ema: EMA decay alpha (0 = no EMA).
        amp: autocast on CUDA (bfloat16 where supported, else float16 with a
            gradient scaler); ignored on CPU.
    """

    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-5
    warmup_steps: int = 50
    grad_clip: float = 1.0
    ema: float = 0.99
    amp: bool = True


@dataclass
class StageConfig:
    """One training stage.

    Attributes:
        name: label used in logs and checkpoint names.
        steps: optimizer steps.
        lr: peak learning rate.
        data: which cases: ``masks`` (mask cases only), ``reports`` (report
            cases only) or ``all`` (mixed by ``data.report_fraction``).
        report_weight: lambda of the report losses (0 = segmentation loss only).
    """

    name: str = "train"
    steps: int = 1000
    lr: float = 1e-3
    data: StageData = "all"
    report_weight: float = 0.1


@dataclass
class TrainConfig:
    """Everything ``rsuper train`` needs.

    Attributes:
        init_checkpoint: start from these weights (fine-tuning); the channel
            list must match.
        seed: seeds model initialisation, sampling and augmentation.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` ...
        steps_per_epoch: steps counted as one "epoch" in progress events.
        log_every: steps between progress events.
        checkpoint_every: steps between ``latest.pt`` saves.
        loss: fields of :class:`rsuper.losses.RSuperLossConfig` (nested:
            ``volume: {tolerance: 0.1}``, ``ball: {pseudo_mask: {volume_mode: sphere}}``);
            ``report_weight`` comes from the stage.
    """

    data: DataConfig = field(default_factory=DataConfig)
    classes: ClassesConfig = field(default_factory=ClassesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    stages: list[StageConfig] = field(
        default_factory=lambda: [
            StageConfig("masks", 20000, 1e-3, "masks", 0.0),
            StageConfig("reports", 20000, 1e-4, "all", 0.1),
        ]
    )
    loss: dict[str, Any] = field(default_factory=dict)
    init_checkpoint: str | None = None
    seed: int = 0
    device: str = "auto"
    steps_per_epoch: int = 250
    log_every: int = 10
    checkpoint_every: int = 200

    @property
    def total_steps(self) -> int:
        """Steps over all stages."""
        return sum(s.steps for s in self.stages)

    def loss_config(self, stage: StageConfig, lesion_channels: tuple[int, ...]) -> RSuperLossConfig:
        """The loss settings of a stage (its report weight, the model's lesion channels)."""
        base = _build(RSuperLossConfig, dict(self.loss), "loss")
        return dataclasses.replace(base, report_weight=stage.report_weight, lesion_channels=lesion_channels)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-able form (what checkpoints and the job folder store)."""
        return _plain(dataclasses.asdict(self))


# --- building dataclasses from dictionaries --------------------------------------------------

_RENAMED = {"class": "cls"}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {("class" if k == "cls" else k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _convert(kind: Any, value: Any, where: str) -> Any:
    """Check / convert one value to the annotated type ``kind``."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if kind is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(kind, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {kind!r}")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """Instantiate dataclass ``cls`` from ``data``; unknown keys raise :class:`ConfigError`."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        name = _RENAMED.get(key, key)
        if name not in names:
            allowed = ", ".join(sorted("class" if n == "cls" else n for n in names))
            raise ConfigError(f"{where}.{key}: unknown key (allowed: {allowed})")
        kwargs[name] = _convert(hints[name], value, f"{where}.{key}")
    return cls(**kwargs)


# --- loading -----------------------------------------------------------------------------------

_PATH_KEYS = (("data", "manifest"), ("data", "facts_jsonl"), ("data", "label_map"), ("data", "cache"),
              ("init_checkpoint",))


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        if k.isdigit() and isinstance(node, list):
            node = node[int(k)]
            continue
        node = node.setdefault(k, {})
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"override {dotted!r}: {k} is not a section")
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def parse_overrides(items: list[str]) -> list[tuple[str, Any]]:
    """``["optim.ema=0", "stages.1.steps=500"]`` -> ``[(key, value)]``; values parsed as YAML."""
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not KEY=VALUE")
        key, raw = item.split("=", 1)
        out.append((key.strip(), yaml.safe_load(raw)))
    return out


def config_from_dict(data: dict[str, Any], base_dir: str | Path | None = None,
                     overrides: list[str] | None = None) -> TrainConfig:
    """Build and check a :class:`TrainConfig`.

    Args:
        data: the parsed YAML mapping.
        base_dir: folder that relative paths in ``data`` resolve against.
        overrides: ``KEY=VALUE`` strings applied on top (paths in them resolve
            against the current directory).
    """
    tree = _plain(dataclasses.asdict(TrainConfig()))
    tree.update({k: v for k, v in (data or {}).items() if k != "stages"})
    if "stages" in (data or {}):
        tree["stages"] = data["stages"]
    for section in ("data", "classes", "model", "optim"):
        merged = _plain(dataclasses.asdict(getattr(TrainConfig(), section)))
        given = tree.get(section)
        if given is not None and not isinstance(given, dict):
            raise ConfigError(f"config.{section}: expected a mapping, got {given!r}")
        merged.update(given or {})
        tree[section] = merged
    if base_dir is not None:
        for path in _PATH_KEYS:
            node = tree
            for k in path[:-1]:
                node = node.get(k, {}) if isinstance(node, dict) else {}
            value = node.get(path[-1]) if isinstance(node, dict) else None
            if isinstance(value, str) and value and not Path(value).is_absolute():
                node[path[-1]] = str(Path(base_dir) / value)
    for key, value in parse_overrides(overrides or []):
        try:
            _set_dotted(tree, key, value)
        except (IndexError, ValueError) as exc:
            raise ConfigError(f"override {key!r}: {exc}") from None
    config = _build(TrainConfig, tree, "config")
    _check(config)
    return config


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read ``train.yaml`` (relative paths against its folder) and apply overrides."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return config_from_dict(data, path.parent, overrides)


def _check(config: TrainConfig) -> None:
    d = config.data
    if not d.manifest:
        raise ConfigError("data.manifest is required")
    if not config.stages:
        raise ConfigError("stages: at least one stage is needed")
    for i, s in enumerate(config.stages):
        if s.steps < 1:
            raise ConfigError(f"stages[{i}].steps must be >= 1")
        if s.lr <= 0:
            raise ConfigError(f"stages[{i}].lr must be > 0")
        if s.report_weight < 0:
            raise ConfigError(f"stages[{i}].report_weight must be >= 0")
    if len({s.name for s in config.stages}) != len(config.stages):
        raise ConfigError("stages: names must be unique")
    if not 0.0 <= d.report_fraction <= 1.0:
        raise ConfigError("data.report_fraction must be in [0, 1]")
    if d.batch_size < 1 or d.workers < 0 or d.max_tumours < 1:
        raise ConfigError("data.batch_size and data.max_tumours must be >= 1, data.workers >= 0")
    if any(p < 8 for p in d.patch_size) or any(s <= 0 for s in d.spacing_mm):
        raise ConfigError("data.patch_size must be >= 8 voxels and data.spacing_mm > 0")
    if not 0.0 <= config.optim.ema < 1.0:
        raise ConfigError("optim.ema must be in [0, 1)")
    config.loss_config(config.stages[0], (0,))
