"""rsuper.jobs.train_setup: a GUI's training run becomes the configuration the real trainer loads."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from rsuper.data.manifest import read_manifest
from rsuper.jobs.commands import override_argument
from rsuper.jobs.train_setup import training_overrides, write_training_config
from rsuper.report.schema import ReportFacts, Tumour
from rsuper.train.config import load_config


def _nifti(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.full((6, 5, 4), value, np.int16), np.diag([2.0, 2.0, 3.0, 1.0])), path)


@pytest.fixture()
def data_folder(tmp_path):
    """images/ labels/ organs/ facts.jsonl: a mask case, a report case, an unlabelled case (small NIfTIs)."""
    root = tmp_path / "data"
    for case in ("m", "r", "u"):
        _nifti(root / "images" / f"{case}_0000.nii.gz")
    _nifti(root / "labels" / "m.nii.gz", 1)
    for case in ("m", "r"):
        _nifti(root / "organs" / f"{case}.nii.gz", 2)
    (root / "facts.jsonl").write_text(ReportFacts("r", [Tumour("liver", None, [20.0])]).to_json() + "\n",
                                      encoding="utf-8")
    return root


def test_options_become_the_configuration_asked_for(tmp_path, data_folder):
    """train.yaml of a data folder plus the panel's options as --set values, loaded by the trainer's loader."""
    config_path = write_training_config(data_folder, tmp_path / "job")
    values = training_overrides(masks_steps=300, reports_steps=700, patch_size=64, batch_size=3, device="cpu",
                                report_weight=0.25, volume_weight=0.5, ball_weight=2.0)
    config = load_config(config_path, [override_argument(k, v) for k, v in values.items()])
    assert [s.steps for s in config.stages] == [300, 700]
    assert config.stages[1].report_weight == 0.25 and config.stages[0].report_weight == 0.0
    assert list(config.data.patch_size) == [64, 64, 64] and config.data.batch_size == 3 and config.device == "cpu"
    loss = config.loss_config(config.stages[1], (1,))
    assert (loss.volume_weight, loss.ball_bce_weight, loss.ball_tversky_weight) == (0.5, 2.0, 2.0)
    # The data section: the listed manifest, the facts to join, the cache inside the job folder.
    job = tmp_path / "job"
    assert Path(config.data.manifest) == job / "manifest.csv"
    assert Path(config.data.facts_jsonl) == (data_folder / "facts.jsonl").resolve()
    assert Path(config.data.cache) == job / "cache"
    rows = {row.case_id: row for row in read_manifest(config.data.manifest, facts_jsonl=config.data.facts_jsonl)}
    assert {c: bool(r.tumours) for c, r in rows.items()} == {"m": True, "r": False, "u": False}
    assert rows["r"].facts is not None and rows["r"].facts.tumours[0].organ == "liver"
    assert not [p for row in rows.values() for p in row.problems if p.severity == "error"]


def test_a_manifest_is_used_as_it_is(tmp_path, data_folder):
    manifest = tmp_path / "given.jsonl"
    ct = data_folder / "images" / "u_0000.nii.gz"
    manifest.write_text(json.dumps({"case_id": "u", "ct": str(ct)}) + "\n", encoding="utf-8")
    config = load_config(write_training_config(manifest, tmp_path / "job"))
    assert Path(config.data.manifest) == manifest and not config.data.facts_jsonl
    assert not (tmp_path / "job" / "manifest.csv").exists()


def test_a_folder_without_cases_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError):
        write_training_config(tmp_path / "empty", tmp_path / "job")
