"""Tiny phantom cohorts and configurations for the training tests (seconds on 2 CPU cores)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import yaml

from rsuper.data.phantom import make_phantom
from rsuper.report.batch import run_batch
from rsuper.report.rules import RulesExtractor

SHAPE = (64, 56, 48)
SPACING_MM = (3.0, 3.0, 5.0)


def tiny_cohort(root: Path, n_mask: int = 2, n_report: int = 3, seed: int = 11) -> Path:
    """Phantoms under ``root/cases``, report facts extracted to ``root/facts.jsonl``; returns the manifest."""
    rows = []
    reports = []
    for i in range(n_mask + n_report):
        kind = "mask" if i < n_mask else "report"
        case_id = f"{kind}_{i:02d}"
        phantom = make_phantom(seed + i, SHAPE, SPACING_MM, n_tumours=(1, 2), case_id=case_id)
        phantom.save(root / "cases" / case_id)
        tumours = f"cases/{case_id}/tumours.nii.gz" if kind == "mask" else ""
        rows.append([case_id, f"cases/{case_id}/ct.nii.gz", f"cases/{case_id}/organs.nii.gz", tumours])
        if kind == "report":
            reports.append([case_id, phantom.report])
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["case_id", "ct", "organs", "tumours"], *rows])
    with open(root / "reports.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["case_id", "report"], *reports])
    run_batch(root / "reports.csv", root / "facts.jsonl", RulesExtractor(), progress="none")
    return manifest


def tiny_config(root: Path, steps: tuple[int, int] = (3, 3), **extra: Any) -> dict[str, Any]:
    """A two-stage configuration for :func:`tiny_cohort` data: 6 mm grid, 32^3 patches, a 3-level U-Net."""
    config: dict[str, Any] = {
        "data": {"manifest": str(root / "manifest.csv"), "facts_jsonl": str(root / "facts.jsonl"),
                 "cache": str(root / "cache"), "spacing_mm": [6.0, 6.0, 6.0], "patch_size": [32, 32, 32],
                 "batch_size": 2, "workers": 0},
        "model": {"class": "rsuper.model.unet:UNet3D", "kwargs": {"features": [4, 8, 16], "deep_supervision": 1}},
        "optim": {"warmup_steps": 1},
        "stages": [
            {"name": "masks", "steps": steps[0], "lr": 1e-3, "data": "masks", "report_weight": 0.0},
            {"name": "reports", "steps": steps[1], "lr": 1e-4, "data": "all", "report_weight": 0.1},
        ],
        "log_every": 1,
        "checkpoint_every": 2,
        "device": "cpu",
    }
    config.update(extra)
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Save a configuration as YAML."""
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
