"""The demo's experiment: does report supervision help when tumour masks are scarce?

On synthetic phantoms (:mod:`rsuper.data.phantom`):

1. ``n_mask`` cases keep their tumour masks; ``n_report`` cases keep only
   their report, read by the offline rules extractor; ``n_test`` held-out
   cases keep their masks for scoring. Every case has its organ masks (what
   nnU-Net supplies in practice).
2. Stage 1 trains on the mask cases alone (one job, ``stage1``).
3. From stage 1's weights two jobs continue for the same number of steps:
   (a) ``masks_only`` on the mask cases again, (b) ``masks_reports`` on the
   mask and report cases with the Volume and Ball losses.
4. Both models segment the test cases; tumour DSC (mean over test cases with
   a tumour) and detection precision / recall / F1 (pooled over tumours) are
   computed, lesions kept within 3 mm of their organ's mask.

Every job goes through :func:`rsuper.train.run.run_training`, the code path
of ``rsuper train``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from rsuper.data.phantom import make_phantom

#: Arm names, in the order they are reported.
ARMS = ("masks_only", "masks_reports")
ARM_TITLES = {"masks_only": "masks only", "masks_reports": "masks + reports"}


@dataclass
class StudyOptions:
    """Size of the experiment (the defaults take about six minutes of training on 2 CPU cores).

    The defaults are set by what the CPU budget can show, measured in
    ``README.md`` ("The demo's experiment"): on a 3-mm grid with 48³ patches
    the same minutes buy about 600 steps, too few even for a model with
    masks on all 36 training cases (held-out DSC about 0.1), so no kind of
    supervision can make a difference there. A 4-mm grid with 32³ patches
    runs about three times more steps; tumours are then drawn from 16 mm
    (four voxels) up, with 80-120 HU contrast so that a few minutes of
    training can learn them.

    The phantom tumours are all hypo-attenuating (the usual look of a
    pancreatic adenocarcinoma or a liver metastasis in the portal venous
    phase). The Ball Loss places each reported tumour where the stage-1
    model sees tumour most; with hypo-, hyper- and cystic tumours and only
    four mask cases that model has seen one or two examples of each look,
    its ball centres hit a true tumour for about a third of the reported
    tumours, and most pseudo-mask voxels teach wrong positives. With one
    look it hits 50-70 % and the reports help clearly; the figures of both
    designs are in ``README.md`` (measured with ``bench/pseudo_mask_quality.py``).

    Attributes:
        n_mask, n_report, n_test: cases with masks, with reports only, held out.
        seed: seeds the phantoms and the training runs.
        phantom_shape, phantom_spacing_mm: phantom grid (voxels, mm).
        min_diameter_mm: smallest largest-diameter of a phantom tumour (mm).
        attenuations: attenuation kinds the phantom tumours may have.
        contrast_hu: range of a solid tumour's difference from its organ (HU).
        spacing_mm: training grid (mm) the cache resamples to.
        hu_clip: HU window before z-scoring; a soft-tissue window (-160, 240)
            keeps the tumour-to-organ contrast (tens of HU) from being
            squeezed by the air-to-tissue range, so the small demo model
            learns within minutes (the reference's (-991, 500) is the
            training default).
        patch_size: training patch (voxels).
        features: U-Net channels per level.
        stage1_steps: masks-only steps before the two arms split.
        arm_steps: steps of each arm after the split.
        batch_size: patches per step.
        lr: stage-1 learning rate.
        arm_lr: learning rate of both arms; ``None`` = a tenth of ``lr``, as
            the reference's stage 2. The demo keeps ``lr``: its stage 1 is
            short, so a tenth would leave both arms close to the stage-1
            model and hide any difference between them.
        lesion_organs: organs with a lesion channel.
        report_weight: lambda of the report losses in the ``masks_reports`` arm.
        report_fraction: share of report patches in the ``masks_reports`` arm.
    """

    n_mask: int = 4
    n_report: int = 32
    n_test: int = 48
    seed: int = 2025
    phantom_shape: tuple[int, int, int] = (128, 112, 96)
    phantom_spacing_mm: tuple[float, float, float] = (1.5, 1.5, 2.5)
    min_diameter_mm: float = 16.0
    attenuations: tuple[str, ...] = ("hypo",)
    contrast_hu: tuple[float, float] = (80.0, 120.0)
    spacing_mm: tuple[float, float, float] = (4.0, 4.0, 4.0)
    hu_clip: tuple[float, float] = (-160.0, 240.0)
    patch_size: tuple[int, int, int] = (32, 32, 32)
    features: tuple[int, ...] = (8, 16, 32, 64)
    stage1_steps: int = 600
    arm_steps: int = 1200
    batch_size: int = 2
    lr: float = 3e-3
    arm_lr: float | None = 3e-3
    lesion_organs: tuple[str, ...] = ("liver", "pancreas", "kidney")
    report_weight: float = 0.1
    report_fraction: float = 0.5


@dataclass
class StudyResult:
    """Scores of both arms (``summary``: :func:`rsuper.evaluate.metrics.summarise` output per arm).

    ``ids`` holds the case ids per group (``mask``, ``report``, ``test``).
    """

    summary: dict[str, dict[str, Any]]
    per_case: dict[str, list[dict[str, Any]]]
    jobs: dict[str, Path]
    ids: dict[str, list[str]]
    figures: dict[str, Path] = field(default_factory=dict)


# --- data ------------------------------------------------------------------------------------


def _write_cases(out: Path, options: StudyOptions, log: Callable[[str], None]) -> dict[str, list[str]]:
    """Phantoms for the three groups under ``out/cases``; returns case ids per group."""
    groups = {"mask": options.n_mask, "report": options.n_report, "test": options.n_test}
    ids: dict[str, list[str]] = {}
    for group_number, (group, n) in enumerate(groups.items()):
        ids[group] = []
        for index in range(n):
            # Seeded per group, so a group's phantoms do not change with the size of another group:
            # the held-out set stays the same when n_report changes.
            seed = int(np.random.SeedSequence([options.seed, group_number, index]).generate_state(1)[0])
            # Training cases always hold a tumour; every fourth test case is healthy.
            healthy = group == "test" and index % 4 == 3
            n_tumours = 0 if healthy else (1, 2)
            case_id = f"{group}_{index:03d}"
            phantom = make_phantom(seed, options.phantom_shape, options.phantom_spacing_mm,
                                   n_tumours=n_tumours, min_diameter_mm=options.min_diameter_mm,
                                   attenuations=options.attenuations, contrast_hu=options.contrast_hu,
                                   case_id=case_id)
            phantom.save(out / case_folder(group) / case_id)
            ids[group].append(case_id)
    log(f"{sum(groups.values())} phantoms written to {out / 'cases'} and {out / case_folder('test')}")
    return ids


def _extract_report_facts(out: Path, report_ids: list[str]) -> Path:
    """Facts of the report cases, read from their report text by the rules extractor."""
    from rsuper.report.batch import run_batch
    from rsuper.report.rules import RulesExtractor

    reports_csv = out / "reports.csv"
    with open(reports_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "report"])
        for cid in report_ids:
            writer.writerow([cid, (out / "cases" / cid / "report.txt").read_text(encoding="utf-8")])
    facts = out / "facts.jsonl"
    if facts.exists():
        facts.unlink()
    run_batch(reports_csv, facts, RulesExtractor(), progress="none")
    return facts


def case_folder(group: str) -> str:
    """Folder (under the study folder) of a group's phantoms: held-out cases apart, ready for folder commands."""
    return "test_cases" if group == "test" else "cases"


def write_study_manifest(path: Path, mask_ids: list[str], report_ids: list[str] = (), split: str = "train") -> Path:
    """Manifest of mask cases (with their tumour masks) and report cases (none; their facts come joined)."""
    folder = case_folder(split)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "ct", "organs", "tumours", "split"])
        for cid in [*mask_ids, *report_ids]:
            tumours = f"{folder}/{cid}/tumours.nii.gz" if cid in mask_ids else ""
            writer.writerow([cid, f"{folder}/{cid}/ct.nii.gz", f"{folder}/{cid}/organs.nii.gz", tumours, split])
    return path


def _config(options: StudyOptions, manifest: str, stage: dict[str, Any], init: str | None) -> dict[str, Any]:
    return {
        "data": {
            "manifest": manifest, "facts_jsonl": "facts.jsonl", "cache": "cache",
            "spacing_mm": list(options.spacing_mm), "hu_clip": list(options.hu_clip),
            "patch_size": list(options.patch_size),
            "batch_size": options.batch_size, "workers": 0, "report_fraction": options.report_fraction,
        },
        "classes": {"organs": list(options.lesion_organs), "lesion_organs": list(options.lesion_organs)},
        "model": {"class": "rsuper.model.unet:UNet3D",
                  "kwargs": {"features": list(options.features), "deep_supervision": 1}},
        "optim": {"warmup_steps": 20, "ema": 0.99},
        "stages": [stage],
        "init_checkpoint": init,
        "seed": options.seed,
        "log_every": 5,
        "checkpoint_every": 100,
    }


# --- evaluation --------------------------------------------------------------------------------


def evaluate_job(job: Path, cache: Path, test_ids: list[str]) -> list[dict[str, Any]]:
    """Segment the cached test cases with ``job``'s final model and score its lesions against the masks."""
    import torch

    from rsuper.data.cache import load_cached_case
    from rsuper.data.classes import ClassList
    from rsuper.evaluate.metrics import evaluate_case
    from rsuper.infer.postprocess import remove_small_components, restrict_to_organs
    from rsuper.infer.sliding import predict_probabilities
    from rsuper.model.registry import build_model
    from rsuper.train.checkpoint import load_checkpoint
    from rsuper.train.weights import checkpoint_weights

    ckpt = load_checkpoint(job / "checkpoints" / "final.pt")
    classes = ClassList.from_dict(ckpt["classes"])
    model_cfg = ckpt["config"]["model"]
    model = build_model({"class": model_cfg["class"], "kwargs": model_cfg["kwargs"]}, 1, classes.n_channels)
    model.load_state_dict(checkpoint_weights(ckpt, ema=True))
    patch = ckpt["config"]["data"]["patch_size"]
    records = []
    with torch.inference_mode():
        for cid in test_ids:
            case = load_cached_case(cache, cid)
            probs = predict_probabilities(model, np.asarray(case.image), patch, overlap=0.5)
            organ_masks = classes.organ_target(np.asarray(case.organs), case.label_map)
            lesions = np.zeros(case.shape, bool)
            for i, organ in enumerate(classes.lesion_organs):
                channel = probs[classes.lesion_channels[i]] >= 0.5
                organ_mask = organ_masks[classes.organs.index(organ)].astype(bool)
                lesions |= restrict_to_organs(channel, organ_mask, spacing_mm=case.spacing_mm, dilation_mm=3.0)
            lesions = remove_small_components(lesions, 50.0, case.spacing_mm)
            records.append(evaluate_case(lesions, case.spacing_mm, truth_instances=np.asarray(case.tumours),
                                         case_id=cid))
    return records


# --- the whole study -------------------------------------------------------------------------------


def run_study(out: Path, options: StudyOptions = StudyOptions(), progress: str = "none",
              log: Callable[[str], None] = lambda message: None) -> StudyResult:
    """Build the data, train stage 1 and both arms, score them, draw the figures; all under ``out``."""
    from rsuper.data.manifest import read_manifest
    from rsuper.data.preprocess import PreprocessOptions, preprocess_manifest
    from rsuper.evaluate.metrics import summarise
    from rsuper.evaluate.plots import plot_loss_curves, plot_metric_bars, read_progress
    from rsuper.train.run import TrainingRequest, run_training

    out.mkdir(parents=True, exist_ok=True)
    ids = _write_cases(out, options, log)
    _extract_report_facts(out, ids["report"])
    write_study_manifest(out / "manifest_masks.csv", ids["mask"])
    write_study_manifest(out / "manifest_all.csv", ids["mask"], ids["report"])
    test_manifest = write_study_manifest(out / "manifest_test.csv", ids["test"], split="test")

    jobs = {name: out / "runs" / name for name in ("stage1", *ARMS)}
    stage1 = {"name": "masks", "steps": options.stage1_steps, "lr": options.lr, "data": "masks",
              "report_weight": 0.0}
    arm_lr = options.lr / 10 if options.arm_lr is None else options.arm_lr
    arm_stages = {
        "masks_only": {"name": "masks_more", "steps": options.arm_steps, "lr": arm_lr, "data": "masks",
                       "report_weight": 0.0},
        "masks_reports": {"name": "reports", "steps": options.arm_steps, "lr": arm_lr, "data": "all",
                          "report_weight": options.report_weight},
    }
    plans = [("stage1", "manifest_masks.csv", stage1, None)]
    init = str(jobs["stage1"] / "checkpoints" / "final.pt")
    plans += [(arm, "manifest_masks.csv" if arm == "masks_only" else "manifest_all.csv", arm_stages[arm], init)
              for arm in ARMS]
    for name, manifest, stage, init_ckpt in plans:
        config_path = out / f"{name}.yaml"
        config_path.write_text(yaml.safe_dump(_config(options, manifest, stage, init_ckpt), sort_keys=False),
                               encoding="utf-8")
        log(f"training {name} ({stage['steps']} steps, data: {stage['data']})")
        run_training(TrainingRequest(job=jobs[name], config=config_path, progress=progress))

    preprocess_manifest(read_manifest(test_manifest), out / "cache",
                        PreprocessOptions(spacing_mm=options.spacing_mm, hu_clip=options.hu_clip), progress="none")
    per_case = {arm: evaluate_job(jobs[arm], out / "cache", ids["test"]) for arm in ARMS}
    summary = {arm: summarise(per_case[arm]) for arm in ARMS}
    figures = {
        "loss_curves": plot_loss_curves(
            {ARM_TITLES[a]: read_progress(jobs[a] / "progress.jsonl") for a in ARMS}, out / "loss_curves.png",
            title="Training loss after stage 1 (same steps, same start)"),
        "metrics": plot_metric_bars(
            {ARM_TITLES[a]: {"tumour DSC": summary[a]["dice_mean"], "detection F1": summary[a]["detection_f1"]}
             for a in ARMS}, out / "metrics.png", title="Held-out phantoms", ylabel="score"),
    }
    (out / "results.json").write_text(json.dumps(
        {"options": asdict(options), "summary": summary, "per_case": per_case}, indent=2, default=str) + "\n",
        encoding="utf-8")
    return StudyResult(summary, per_case, jobs, ids, figures)
