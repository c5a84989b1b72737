"""`rsuper train` end to end on tiny phantoms: stages, job folder, SIGTERM + exact resume, DDP, bad cases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rsuper.cli import main
from rsuper.report.schema import ReportFacts, Tumour
from rsuper.train.checkpoint import load_checkpoint
from rsuper.train.data_setup import DataSetupError
from rsuper.train.job import JobFolder, read_events
from rsuper.train.run import JobError, TrainingRequest, run_training
from train_helpers import tiny_cohort, tiny_config, write_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cohort")
    tiny_cohort(root)
    return root


@pytest.fixture(scope="module")
def finished_job(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("run")
    config = write_config(work / "train.yaml", tiny_config(cohort, steps=(3, 4)))
    result = run_training(TrainingRequest(job=work / "job", config=config))
    assert result.state == "finished"
    return work / "job"


def _progress(job: Path) -> list[dict]:
    events, _ = read_events(job / "progress.jsonl")
    return [e for e in events if e["event"] == "progress"]


def test_two_stages_write_the_job_folder(finished_job: Path) -> None:
    job = JobFolder(finished_job)
    assert job.read_status()["state"] == "finished"
    progress = _progress(finished_job)
    assert [e["global_step"] for e in progress] == list(range(1, 8))
    for e in progress:
        assert {"stage", "step", "epoch", "lr", "loss", "terms", "samples_per_s", "eta_s"} <= set(e)
        assert e["loss"] > 0 and e["lr"] > 0
    masks = [e for e in progress if e["stage"] == "masks"]
    reports = [e for e in progress if e["stage"] == "reports"]
    assert all("ball_bce/head0" not in e["terms"] and e["report_fraction"] == 0 for e in masks)
    assert all({"ball_bce/head0", "ball_tversky/head0", "volume/head1"} <= set(e["terms"]) for e in reports)
    assert sum(e["report_fraction"] for e in reports) > 0, "no report-supervised patch in the mixed stage"
    names = {p.name for p in job.checkpoints_dir.iterdir()}
    assert {"latest.pt", "masks.pt", "reports.pt", "final.pt"} <= names
    final = load_checkpoint(job.checkpoints_dir / "final.pt")
    assert final["classes"]["names"][-1] == "kidney_lesion"
    assert final["optimizer"] is None and final["ema"] is not None
    stage1 = load_checkpoint(job.checkpoints_dir / "masks.pt")
    assert any(not torch.equal(stage1["model"][k], final["model"][k]) for k in final["model"])
    log = (finished_job / "log.txt").read_text()
    assert "stage 2/2 'reports'" in log and "2 mask + 3 report cases" in log


def test_sigterm_stops_cleanly_and_resume_matches_an_uninterrupted_run(cohort: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "train.yaml", tiny_config(cohort, steps=(10, 10)))
    reference = run_training(TrainingRequest(job=tmp_path / "straight", config=config))
    assert reference.state == "finished"

    job = tmp_path / "interrupted"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "rsuper", "train", "--config", str(config), "--job", str(job),
                             "--progress", "none"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (job / "progress.jsonl").exists() and len(_progress(job)) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, (out, err)
    status = JobFolder(job).read_status()
    assert status["state"] == "stopped"
    stopped_at = status["global_step"]
    assert 2 <= stopped_at < 20

    resumed = run_training(TrainingRequest(job=job, resume=True))
    assert resumed.state == "finished" and resumed.global_step == 20
    steps = [e["global_step"] for e in _progress(job)]
    assert sorted(set(steps)) == list(range(1, 21))
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "final.pt")
    b = load_checkpoint(job / "checkpoints" / "final.pt")
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs after resume"


def test_fine_tune_from_a_checkpoint(cohort: Path, finished_job: Path, tmp_path: Path) -> None:
    final = finished_job / "checkpoints" / "final.pt"
    config = tiny_config(cohort, init_checkpoint=str(final))
    config["stages"] = [{"name": "tune", "steps": 2, "lr": 1e-4, "data": "all"}]
    result = run_training(TrainingRequest(job=tmp_path / "tune", config=write_config(tmp_path / "t.yaml", config)))
    assert result.state == "finished"
    assert f"initial weights from {final}" in (tmp_path / "tune" / "log.txt").read_text()

    other = dict(config, classes={"organs": ["liver"], "lesion_organs": ["liver"]})
    with pytest.raises(ValueError, match="channels"):
        run_training(TrainingRequest(job=tmp_path / "bad", config=write_config(tmp_path / "b.yaml", other)))
    assert JobFolder(tmp_path / "bad").read_status()["state"] == "failed"


def test_bad_cases_are_left_out_and_listed(cohort: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    lines = (cohort / "manifest.csv").read_text().splitlines()
    lines = [lines[0]] + [line.replace("cases/", f"{cohort}/cases/") for line in lines[1:]]
    lines.append(f"broken_01,{tmp_path}/missing_ct.nii.gz,,")
    lines.append(f"vague_01,{cohort}/cases/report_02/ct.nii.gz,{cohort}/cases/report_02/organs.nii.gz,")
    manifest.write_text("\n".join(lines) + "\n")
    facts = tmp_path / "facts.jsonl"
    vague = ReportFacts("vague_01", [Tumour("pancreas", count=3, count_is_lower_bound=True)])
    facts.write_text((cohort / "facts.jsonl").read_text() + vague.to_json() + "\n")
    config = tiny_config(cohort, steps=(2, 2))
    config["data"].update(manifest=str(manifest), facts_jsonl=str(facts))
    result = run_training(TrainingRequest(job=tmp_path / "job", config=write_config(tmp_path / "t.yaml", config)))
    assert result.state == "finished"
    problems = [json.loads(line) for line in (tmp_path / "job" / "problems.jsonl").read_text().splitlines()]
    assert any(p["case_id"] == "broken_01" and p["severity"] == "error" for p in problems)
    assert any(p["case_id"] == "vague_01" and p["severity"] == "warning" for p in problems)
    log = (tmp_path / "job" / "log.txt").read_text()
    assert "case broken_01 left out" in log and "case vague_01 left out" not in log

    config["data"]["strict"] = True
    with pytest.raises(DataSetupError, match="broken_01"):
        run_training(TrainingRequest(job=tmp_path / "strict", config=write_config(tmp_path / "s.yaml", config)))


def test_cli_refuses_to_overwrite_a_job_and_needs_arguments(finished_job: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train"]) == 2
    config = finished_job / "config.yaml"
    assert main(["train", "--config", str(config), "--job", str(finished_job), "--progress", "none"]) == 1
    assert "already holds a run" in capsys.readouterr().err
    with pytest.raises(JobError, match="already finished"):
        run_training(TrainingRequest(job=finished_job, resume=True))


@pytest.mark.slow
def test_ddp_two_cpu_processes_with_gloo(cohort: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "train.yaml", tiny_config(cohort, steps=(2, 2)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "rsuper", "train", "--config", str(config), "--job", str(tmp_path / "job"), "--progress", "none"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = JobFolder(tmp_path / "job")
    assert job.read_status()["state"] == "finished"
    assert "processes 2" in (tmp_path / "job" / "log.txt").read_text()
    progress = _progress(tmp_path / "job")
    assert [e["global_step"] for e in progress] == [1, 2, 3, 4]
    final = load_checkpoint(job.checkpoints_dir / "final.pt")
    assert not any(k.startswith("module.") for k in final["model"]), "DDP wrapper leaked into the weights"
