"""Before the first step: read and validate the manifest, fill the cache, load the training cases.

Cases with validation errors (or that fail to preprocess or load) are left out
and listed, with their reasons, in the job's ``problems.jsonl``; with
``data.strict`` any error stops the run before training starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rsuper.anatomy.labels import LabelMap
from rsuper.data.cache import load_cached_case
from rsuper.data.case import CachedCase
from rsuper.data.classes import ClassList
from rsuper.data.manifest import read_manifest
from rsuper.data.preprocess import PreprocessOptions, preprocess_manifest
from rsuper.data.validate import Problem, validate_manifest
from rsuper.train.config import TrainConfig


class DataSetupError(RuntimeError):
    """Training cannot start (no usable case, or errors under ``data.strict``)."""


@dataclass
class TrainingData:
    """The cases a run trains on.

    Attributes:
        cases: loaded cases of the ``train`` split (arrays memory-mapped).
        problems: every validation / preprocessing / loading problem found.
        excluded: case id -> reason, for cases left out.
        label_map: label map of the organ masks.
    """

    cases: list[CachedCase]
    problems: list[Problem] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)
    label_map: LabelMap | None = None

    def pool(self, which: str) -> list[CachedCase]:
        """Cases a stage draws from: ``masks``, ``reports`` or ``all`` (mask + report cases)."""
        kinds = {"masks": {"mask"}, "reports": {"report"}, "all": {"mask", "report"}}[which]
        return [c for c in self.cases if c.kind in kinds]


def prepare_training_data(config: TrainConfig, classes: ClassList, progress: str = "none") -> TrainingData:
    """Validate, preprocess (resumable) and load the training cases of ``config``.

    Raises:
        DataSetupError: nothing usable remains, or ``data.strict`` and an error was found.
    """
    d = config.data
    manifest = read_manifest(d.manifest, facts_jsonl=d.facts_jsonl, label_map=d.label_map)
    patch_mm = max(p * s for p, s in zip(d.patch_size, d.spacing_mm))
    problems = validate_manifest(
        manifest, lesion_organs=classes.lesion_organs, patch_size_mm=patch_mm, max_tumours=d.max_tumours
    )
    errors = {p.case_id: p.message for p in problems if p.severity == "error"}
    if errors and d.strict:
        listed = "; ".join(f"{k}: {v}" for k, v in list(errors.items())[:10])
        raise DataSetupError(f"{len(errors)} case(s) failed validation (data.strict is on): {listed}")
    train_ids = [r.case_id for r in manifest.rows if (r.split or "train") == "train" and r.case_id not in errors]
    options = PreprocessOptions(spacing_mm=tuple(d.spacing_mm), hu_clip=tuple(d.hu_clip))
    summary = preprocess_manifest(
        manifest.subset(train_ids), Path(d.cache), options, workers=d.preprocess_workers, progress=progress
    )
    excluded = dict(errors)
    excluded.update({cid: f"preprocessing failed: {why}" for cid, why in summary.failed})
    cases = []
    for cid in train_ids:
        if cid in excluded:
            continue
        try:
            case = load_cached_case(d.cache, cid, mmap=True)
        except (OSError, ValueError, KeyError) as exc:
            excluded[cid] = f"cannot load cached case: {exc}"
            continue
        if case.kind == "unlabelled":
            excluded[cid] = "no tumour mask and no report facts"
            continue
        cases.append(case)
    if not cases:
        raise DataSetupError("no usable training case: " + "; ".join(f"{k}: {v}" for k, v in excluded.items()))
    return TrainingData(cases, problems, excluded, manifest.label_map)
