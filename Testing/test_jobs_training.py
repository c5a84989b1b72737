"""rsuper.jobs.training.TrainingJobWatcher on job folders written with the trainer's own JobFolder API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rsuper.jobs.background import BackgroundJob
from rsuper.jobs.commands import train_command
from rsuper.jobs.training import TrainingJobWatcher, TrainingRun
from rsuper.train.job import JobFolder

ROOT = Path(__file__).resolve().parents[1]


def _progress(job: JobFolder, step: int, loss: float) -> dict:
    """A progress event as the trainer writes it (terms: two loss terms derived from ``loss``)."""
    return job.event("progress", stage="masks", stage_index=0, step=step, global_step=step, total_steps=10,
                     loss=loss, terms={"dice/head0": loss / 2, "bce/head0": loss / 4}, lr=1e-3, eta_s=5.0)


@pytest.fixture()
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.mark.skipif(sys.platform == "win32", reason="uses the POSIX sleep program and SIGTERM")
def test_incremental_poll_history_stop_and_reattach(tmp_path, sleeper):
    job = JobFolder(tmp_path / "job").create()
    watcher = TrainingJobWatcher(job.root)
    assert watcher.poll() == [] and watcher.status() is None and not watcher.alive()
    assert watcher.loss_history() == {} and watcher.latest_checkpoint() is None and watcher.log_tail() == []

    job.lock_path.write_text(f"{sleeper.pid}\n")  # the trainer's lock, owned by a live process
    job.write_status(state="running", stage="masks", global_step=0, total_steps=10, pid=sleeper.pid)
    job.event("stage_start", stage="masks", stage_index=0, steps=10, start_step=0)
    for step in (1, 2, 3):
        _progress(job, step, 1.0 / step)
    first = watcher.poll()
    assert [e["event"] for e in first] == ["stage_start", "progress", "progress", "progress"]
    assert watcher.poll() == []  # nothing new
    assert watcher.alive() and watcher.running and watcher.returncode is None
    assert watcher.status()["state"] == "running" and watcher.status()["pid"] == sleeper.pid

    _progress(job, 4, 0.2)
    with open(job.progress_path, "a", encoding="utf-8") as fh:
        fh.write('{"event": "progress", "global_step": 5, "loss": 0.1')  # a line still being written
    second = watcher.poll()
    assert [e["global_step"] for e in second] == [4]
    with open(job.progress_path, "a", encoding="utf-8") as fh:
        fh.write(', "terms": {"dice/head0": 0.05}}\n')
    assert [e["global_step"] for e in watcher.poll()] == [5]

    history = watcher.loss_history()
    assert history["loss"] == [(1, 1.0), (2, 0.5), (3, 1 / 3), (4, 0.2), (5, 0.1)]
    assert history["dice/head0"] == [(1, 0.5), (2, 0.25), (3, 1 / 6), (4, 0.1), (5, 0.05)]
    assert [s for s, _ in history["bce/head0"]] == [1, 2, 3, 4]
    assert watcher.poll() == []  # reading the history does not take events from poll()

    assert watcher.stop()
    assert sleeper.wait(5) == -signal.SIGTERM  # the signal reached the lock owner
    assert not watcher.alive() and not watcher.stop()

    # The trainer's last words, then a new watcher (the GUI restarted) sees the whole run.
    job.event("stopped", stage="masks", step=5, global_step=5)
    job.write_status(state="stopped", global_step=5, pid=sleeper.pid)
    assert [e["event"] for e in watcher.poll()] == ["stopped"]
    assert watcher.returncode == 3
    again = TrainingJobWatcher(job.root)
    assert again.status() == watcher.status()
    events = again.poll()
    assert [e["event"] for e in events] == ["stage_start"] + ["progress"] * 5 + ["stopped"]
    assert again.loss_history() == watcher.loss_history()
    assert again.poll() == []


@pytest.mark.skipif(sys.platform == "win32", reason="uses the POSIX sleep program and SIGTERM")
def test_a_run_ends_with_its_process_else_with_the_lock_owner(tmp_path, sleeper):
    """The process a GUI started decides the end (the trainer has no lock yet while it starts up); a run
    re-attached without a process ends with the trainer holding the lock."""
    job = JobFolder(tmp_path / "job").create()
    process = BackgroundJob([sys.executable, "-c", "import sys, time; time.sleep(1.0); sys.exit(3)"]).start()
    run = TrainingRun(TrainingJobWatcher(job.root), process)
    assert run.running and run.returncode is None
    assert not run.watcher.running  # no lock: the watcher alone would call the run over
    _progress(job, 1, 0.5)
    assert [e["global_step"] for e in run.poll()] == [1]
    assert process.wait(10) == 3
    assert not run.running and run.returncode == 3 and run.poll() == []

    job.lock_path.write_text(f"{sleeper.pid}\n")
    job.write_status(state="running", global_step=1, pid=sleeper.pid)
    attached = TrainingRun(TrainingJobWatcher(job.root))
    assert attached.running and attached.returncode is None
    assert [e["global_step"] for e in attached.poll()] == [1]  # the whole history on the first poll
    sleeper.terminate()
    sleeper.wait(5)
    job.write_status(state="stopped", global_step=1, pid=sleeper.pid)
    assert not attached.running and attached.returncode == 3


def test_resumed_steps_replace_the_old_ones(tmp_path):
    job = JobFolder(tmp_path / "job").create()
    for step in range(1, 7):
        _progress(job, step, 10.0 - step)
    for step in (5, 6, 7):  # a resume from the checkpoint at step 4 repeats 5 and 6
        _progress(job, step, 1.0)
    history = TrainingJobWatcher(job.root).loss_history()["loss"]
    assert history == [(1, 9.0), (2, 8.0), (3, 7.0), (4, 6.0), (5, 1.0), (6, 1.0), (7, 1.0)]


def test_log_tail_and_checkpoints(tmp_path):
    job = JobFolder(tmp_path / "job").create()
    for i in range(30):
        job.log(f"message {i}")
    watcher = TrainingJobWatcher(job.root)
    tail = watcher.log_tail(3)
    assert [line.split(" ", 1)[1] for line in tail] == ["message 27", "message 28", "message 29"]
    assert len(watcher.log_tail()) == 20
    now = time.time()
    for age, name in ((30, "masks.pt"), (20, "latest.pt"), (10, "reports.pt")):
        path = job.checkpoints_dir / name
        path.write_bytes(b"x")
        os.utime(path, (now - age, now - age))
    assert watcher.latest_checkpoint() == job.checkpoints_dir / "reports.pt"
    assert watcher.final_checkpoint() is None
    (job.checkpoints_dir / "final.pt").write_bytes(b"x")
    assert watcher.latest_checkpoint() == watcher.final_checkpoint() == job.checkpoints_dir / "final.pt"


# A stand-in trainer using the trainer's own job-folder API and stop flag: lock, status, events, clean stop.
FAKE_TRAINER = textwrap.dedent("""
    import sys, time
    from rsuper.train.job import JobFolder, StopFlag
    job = JobFolder(sys.argv[1]).create()
    job.acquire_lock()
    job.write_status(state="running", stage="masks", global_step=0, total_steps=1000)
    step = 0
    with StopFlag() as stop:
        while not stop and step < 1000:
            step += 1
            job.event("progress", global_step=step, total_steps=1000, loss=1.0 / step, terms={"dice/head0": 0.5})
            time.sleep(0.02)
    job.event("stopped", global_step=step)
    job.write_status(state="stopped", global_step=step)
    job.release_lock()
    sys.exit(3)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM ends a Windows process at once")
def test_stop_lets_a_trainer_save_and_exit(tmp_path):
    job_dir = tmp_path / "job"
    proc = BackgroundJob([sys.executable, "-c", FAKE_TRAINER, str(job_dir)], env={"PYTHONPATH": str(ROOT)}).start()
    watcher = TrainingJobWatcher(job_dir)
    deadline = time.monotonic() + 20
    seen: list[dict] = []
    while len(seen) < 5:
        assert time.monotonic() < deadline and proc.running, proc.log_tail()
        seen += watcher.poll()
        time.sleep(0.02)
    assert watcher.alive() and watcher.owner_pid() == proc.pid
    assert watcher.stop()
    assert proc.wait(10) == 3
    seen += watcher.poll()
    assert seen[-1]["event"] == "stopped"
    steps = [e["global_step"] for e in seen if e["event"] == "progress"]
    assert steps == list(range(1, len(steps) + 1)) and seen[-1]["global_step"] == steps[-1]
    assert watcher.status()["state"] == "stopped" and watcher.returncode == 3
    assert not watcher.alive() and watcher.owner_pid() is None  # the lock was released


@pytest.mark.slow
def test_real_training_run_through_a_background_job(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_helpers import tiny_cohort, tiny_config, write_config

    tiny_cohort(tmp_path / "data")
    config = write_config(tmp_path / "train.yaml", tiny_config(tmp_path / "data", steps=(1, 1)))
    job_dir = tmp_path / "job"
    argv = train_command(config, job_dir, overrides={"checkpoint_every": 1})
    process = BackgroundJob(argv, env={"PYTHONPATH": str(ROOT)}).start()
    watcher = TrainingJobWatcher(job_dir)
    stdout_events, job_events = [], []
    deadline = time.monotonic() + 240
    while process.running:
        assert time.monotonic() < deadline
        stdout_events += process.poll()
        job_events += watcher.poll()
        time.sleep(0.2)
    stdout_events += process.poll()
    job_events += watcher.poll()
    assert process.returncode == 0, process.log_tail()
    assert watcher.status()["state"] == "finished" and watcher.returncode == 0 and not watcher.alive()
    kinds = [e["event"] for e in job_events]
    assert kinds[-1] == "finished" and kinds.count("stage_start") == 2 and "checkpoint" in kinds
    history = watcher.loss_history()
    assert [s for s, _ in history["loss"]] == [1, 2] and all(v > 0 for _, v in history["loss"])
    assert any(name.startswith("ball_") for name in history)  # the report stage's terms
    assert watcher.latest_checkpoint() == watcher.final_checkpoint() == job_dir / "checkpoints" / "final.pt"
    # The child's stdout carried the terminal progress events (JSON lines) of both stages.
    assert [e["event"] for e in stdout_events].count("end") >= 2
