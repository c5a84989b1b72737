"""A training run as a GUI sets it up: ``train.yaml`` for a data folder, and the panel's options as overrides.

The GUI (3D Slicer's R-Super Train module) asks for a data folder (or a
manifest), a job folder and a few options; everything else keeps the defaults
of docs/training.md. :func:`write_training_config` writes the job's
``train.yaml`` (data only) and :func:`training_overrides` gives the options as
``rsuper train --set`` values (:func:`rsuper.jobs.commands.train_command`).
"""

from __future__ import annotations

import os
from pathlib import Path

from rsuper.train.data_summary import write_folder_manifest

__all__ = ["training_overrides", "write_training_config"]


def training_overrides(
    masks_steps: int,
    reports_steps: int,
    patch_size: int,
    batch_size: int,
    device: str,
    report_weight: float,
    volume_weight: float,
    ball_weight: float,
) -> dict[str, object]:
    """Dotted configuration key -> value (docs/training.md) of the panel's options.

    Args:
        masks_steps: steps of stage 0 (tumour masks only).
        reports_steps: steps of stage 1 (masks and reports).
        patch_size: edge of the cubic patch in voxels.
        batch_size: patches per step.
        device: ``auto``, ``cpu``, ``cuda`` ...
        report_weight: lambda of the report losses in stage 1.
        volume_weight: weight of the Volume Loss.
        ball_weight: weight of the Ball Loss; it has two terms (cross-entropy and Tversky), weighed together.
    """
    return {
        "stages.0.steps": int(masks_steps),
        "stages.1.steps": int(reports_steps),
        "data.patch_size": [int(patch_size)] * 3,
        "data.batch_size": int(batch_size),
        "device": str(device),
        "stages.1.report_weight": float(report_weight),
        "loss.volume_weight": float(volume_weight),
        "loss.ball_bce_weight": float(ball_weight),
        "loss.ball_tversky_weight": float(ball_weight),
    }


def write_training_config(data: str | os.PathLike[str], job_dir: str | os.PathLike[str]) -> Path:
    """``<job>/train.yaml`` with only the data section: the manifest (``<job>/manifest.csv`` listed from a
    data folder, or the manifest given), the facts to join, and the cache in the job folder.

    Creates the job folder. Raises what :func:`rsuper.train.data_summary.write_folder_manifest` raises.
    """
    import yaml

    job = Path(job_dir)
    job.mkdir(parents=True, exist_ok=True)
    manifest, facts = write_folder_manifest(data, job / "manifest.csv")
    section: dict[str, str] = {"manifest": str(manifest), "cache": str(job / "cache")}
    if facts is not None:
        section["facts_jsonl"] = str(facts)
    path = job / "train.yaml"
    path.write_text(yaml.safe_dump({"data": section}, sort_keys=False), encoding="utf-8")
    return path
