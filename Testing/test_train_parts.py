"""Training building blocks: checkpoints, RNG state, LR schedule, EMA, job folder, lock, stop flag."""

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime

import numpy as np
import pytest
import torch
from torch import nn

from rsuper.train import checkpoint as ckpt
from rsuper.train.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from rsuper.train.ema import ModelEMA
from rsuper.train.job import JobFolder, JobLockedError, StopFlag, read_events
from rsuper.train.schedule import lr_factor, make_scheduler


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
    """One deterministic step: the batch depends on the step number only."""
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(8, 4, generator=g)
    loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_with_optimizer_and_scheduler_state(tmp_path):
    torch.manual_seed(0)
    model = _net()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    scheduler = make_scheduler(optimizer, total_steps=20, warmup_steps=5)
    for step in range(3):
        _train_step(model, optimizer, step)
        scheduler.step()
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": 3,
        "config": {"lr": 1e-3, "classes": ["liver", "liver_lesion"], "patch": (64, 64, 64), "note": None},
    }
    path = save_checkpoint(tmp_path / "ck" / "latest.pt", payload)
    data = load_checkpoint(path)
    assert data["format"] == "rsuper-checkpoint" and data["version"] == 1
    assert data["step"] == 3 and data["config"] == payload["config"]

    model2 = _net()
    model2.load_state_dict(data["model"])
    optimizer2 = torch.optim.AdamW(model2.parameters(), lr=1e-3, weight_decay=0.05)
    scheduler2 = make_scheduler(optimizer2, total_steps=20, warmup_steps=5)  # before loading the optimizer state
    optimizer2.load_state_dict(data["optimizer"])
    scheduler2.load_state_dict(data["scheduler"])
    assert optimizer2.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    for key, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(optimizer2.state_dict()["state"][key][name]))
    # Continuing both runs gives identical weights.
    for step in range(3, 6):
        for m, o, s in ((model, optimizer, scheduler), (model2, optimizer2, scheduler2)):
            _train_step(m, o, step)
            s.step()
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)


def test_save_refuses_values_that_weights_only_loading_would_reject(tmp_path):
    with pytest.raises(TypeError, match=r"payload\['extra'\]\['a'\].*ndarray"):
        save_checkpoint(tmp_path / "c.pt", {"extra": {"a": np.zeros(3)}})
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "c.pt", {"version": 2})
    assert not list(tmp_path.iterdir())


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    save_checkpoint(path, {"step": 1, "w": torch.arange(5)})

    def crash_mid_write(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(5)})
    monkeypatch.undo()
    data = load_checkpoint(path)
    assert data["step"] == 1 and torch.equal(data["w"], torch.arange(5))
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]  # no temporary file left behind


def test_load_rejects_missing_truncated_foreign_and_unsafe_files(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "absent.pt")

    good = save_checkpoint(tmp_path / "good.pt", {"w": torch.randn(100, 100)})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(truncated)

    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(text)

    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match="not an rsuper checkpoint"):
        load_checkpoint(foreign)

    future = tmp_path / "future.pt"
    torch.save({"format": "rsuper-checkpoint", "version": 99}, future)
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(future)

    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": "rsuper-checkpoint", "version": 1, "obj": _Opaque()}, unsafe)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(unsafe)


class _Opaque:
    """An arbitrary class: weights_only loading must refuse to rebuild it."""


def _draws() -> tuple:
    return (
        random.random(),
        random.gauss(0, 1),
        np.random.rand(3).tolist(),
        np.random.randn(3).tolist(),
        torch.rand(3).tolist(),
        torch.randn(2).tolist(),
    )


def test_rng_state_round_trip_through_a_checkpoint_reproduces_draws(tmp_path):
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    random.gauss(0, 1)  # leave a cached Gaussian in Python's and numpy's generators
    np.random.randn(1)
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = _draws()
    _draws()  # move every generator on
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert _draws() == expected


# ---------------------------------------------------------------- schedule


def test_lr_factor_warms_up_exponentially_to_one_then_decays_to_zero():
    total, warmup = 100, 10
    factors = [lr_factor(s, total, warmup) for s in range(total + 5)]
    assert factors[0] == pytest.approx(math.exp(-10))
    assert all(a < b for a, b in zip(factors[:warmup], factors[1 : warmup + 1]))
    assert factors[warmup] == 1.0
    assert all(a > b for a, b in zip(factors[warmup:total], factors[warmup + 1 : total + 1]))
    assert factors[55] == pytest.approx(0.5**0.9)
    assert factors[total:] == [0.0] * 5
    assert lr_factor(0, 10, 0) == 1.0


def test_scheduler_sets_optimizer_lr_per_step():
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.5)
    scheduler = make_scheduler(optimizer, total_steps=8, warmup_steps=3)
    for step in range(10):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * lr_factor(step, 8, 3))
        optimizer.step()
        scheduler.step()
    with pytest.raises(ValueError):
        make_scheduler(optimizer, total_steps=5, warmup_steps=5)


# ---------------------------------------------------------------- EMA


class _Scalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros((), dtype=torch.float64))


def _ema_of(values: list[float], alpha: float) -> float:
    model = _Scalar()
    ema = ModelEMA(model, alpha=alpha)
    for v in values:
        with torch.no_grad():
            model.w.fill_(v)
        ema.update_parameters(model)
    return ema.module.w.item()


def test_ema_is_the_running_mean_while_warming_up():
    values = [3.0, -1.0, 4.0, 10.0, 2.5]
    for n in range(1, len(values) + 1):
        assert _ema_of(values[:n], alpha=0.99) == pytest.approx(np.mean(values[:n]), rel=1e-12)


def test_ema_with_capped_decay_matches_the_unrolled_formula():
    # alpha = 0.6: decays 0 (copy), 0.5, then min(2/3, 0.6) = 0.6, then 0.6.
    p = [2.0, 6.0, -3.0, 7.0]
    expected = 0.18 * p[0] + 0.18 * p[1] + 0.24 * p[2] + 0.4 * p[3]
    assert _ema_of(p, alpha=0.6) == pytest.approx(expected, rel=1e-12)


def test_ema_copies_buffers_and_serves_as_an_eval_model():
    torch.manual_seed(0)
    model = _net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ema = ModelEMA(model)
    for step in range(3):
        _train_step(model, optimizer, step)
        ema.update_parameters(model)
    assert int(ema.n_averaged) == 3
    for (name, b_model), b_ema in zip(model.named_buffers(), ema.module.buffers()):
        assert torch.equal(b_model, b_ema), name
    assert not torch.equal(ema.module[0].weight, model[0].weight)  # averaged, not copied
    assert ema.module.eval()(torch.randn(2, 4)).shape == (2, 1)


def test_ema_resume_from_checkpoint_equals_uninterrupted_run(tmp_path):
    def fresh(seed):
        torch.manual_seed(seed)
        model = _net()
        return model, torch.optim.AdamW(model.parameters(), lr=1e-2), ModelEMA(model, alpha=0.7)

    model, optimizer, ema = fresh(0)
    for step in range(6):
        _train_step(model, optimizer, step)
        ema.update_parameters(model)

    model_a, optimizer_a, ema_a = fresh(0)
    for step in range(3):
        _train_step(model_a, optimizer_a, step)
        ema_a.update_parameters(model_a)
    payload = {"model": model_a.state_dict(), "optimizer": optimizer_a.state_dict(), "ema": ema_a.state_dict()}
    save_checkpoint(tmp_path / "mid.pt", payload)

    model_b, optimizer_b, ema_b = fresh(1)  # different initial weights, overwritten by the checkpoint
    data = load_checkpoint(tmp_path / "mid.pt")
    model_b.load_state_dict(data["model"])
    optimizer_b.load_state_dict(data["optimizer"])
    ema_b.load_state_dict(data["ema"])
    for step in range(3, 6):
        _train_step(model_b, optimizer_b, step)
        ema_b.update_parameters(model_b)
    assert int(ema_b.n_averaged) == 6
    for (name, a), b in zip(ema.state_dict().items(), ema_b.state_dict().values()):
        assert torch.equal(a, b), name


# ---------------------------------------------------------------- job folder


def test_write_status_merges_fields_and_always_has_state_pid_time(tmp_path):
    job = JobFolder(tmp_path / "job").create()
    assert job.read_status() is None and job.checkpoints_dir.is_dir()
    first = job.write_status(total_steps=100)
    assert first["state"] == "starting" and first["pid"] == os.getpid()
    job.write_status(state="running", step=1, loss=0.9)
    status = job.write_status(step=2)
    assert status == job.read_status()
    assert status["state"] == "running" and status["step"] == 2 and status["loss"] == 0.9
    assert status["total_steps"] == 100
    datetime.fromisoformat(status["updated"])
    with pytest.raises(ValueError, match="not one of"):
        job.write_status(state="paused")
    assert job.read_status() == status


def test_write_status_is_atomic_when_the_rename_fails(tmp_path, monkeypatch):
    job = JobFolder(tmp_path).create()
    job.write_status(state="running", step=5)

    def broken_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr("rsuper.train.job.os.replace", broken_replace)
    with pytest.raises(OSError, match="rename failed"):
        job.write_status(step=6)
    monkeypatch.undo()
    assert job.read_status()["step"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "status.json"]


def test_read_events_follows_a_growing_file_and_waits_for_torn_lines(tmp_path):
    job = JobFolder(tmp_path).create()
    assert read_events(job.progress_path) == ([], 0)
    job.event("start", total=10)
    job.event("progress", step=1, loss=0.5)
    with open(job.progress_path, "a", encoding="utf-8") as f:
        f.write('{"event": "progress", "st')  # a writer caught mid-line
    events, offset = read_events(job.progress_path)
    assert [e["event"] for e in events] == ["start", "progress"]
    assert events[1]["step"] == 1 and isinstance(events[0]["time"], float)
    assert offset < job.progress_path.stat().st_size
    with open(job.progress_path, "a", encoding="utf-8") as f:
        f.write('ep": 2}\nnot json\n')
    events, offset2 = read_events(job.progress_path, offset)
    assert events == [{"event": "progress", "step": 2}]
    assert offset2 == job.progress_path.stat().st_size
    assert read_events(job.progress_path, offset2) == ([], offset2)
    job.progress_path.write_text('{"event": "start"}\n')  # a new run replaced the file
    assert read_events(job.progress_path, offset2)[0] == [{"event": "start"}]


def test_log_and_problem_lines(tmp_path):
    job = JobFolder(tmp_path).create()
    job.log("started")
    job.log("step 1")
    lines = job.log_path.read_text(encoding="utf-8").splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["started", "step 1"]
    datetime.fromisoformat(lines[0].split(" ", 1)[0])
    job.problem(case_id="c7", reason="empty crop")
    events, _ = read_events(job.problems_path)
    assert events[0]["case_id"] == "c7" and "time" in events[0]


def _finished_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_is_exclusive_and_released(tmp_path):
    job = JobFolder(tmp_path / "job")
    job.acquire_lock()
    assert job.lock_owner() == os.getpid()
    with pytest.raises(JobLockedError) as info:
        JobFolder(tmp_path / "job").acquire_lock()
    assert info.value.pid == os.getpid()
    job.release_lock()
    assert not job.lock_path.exists()
    job.acquire_lock()
    job.release_lock()


def test_lock_of_a_dead_process_or_garbage_is_taken_over(tmp_path):
    job = JobFolder(tmp_path)
    job.lock_path.write_text(f"{_finished_pid()}\n")
    job.acquire_lock()
    assert job.lock_owner() == os.getpid()
    job.release_lock()
    job.lock_path.write_text("garbage")
    job.acquire_lock()
    assert job.lock_owner() == os.getpid()


def test_lock_of_a_live_process_is_refused(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        job = JobFolder(tmp_path)
        job.lock_path.write_text(f"{proc.pid}\n")
        with pytest.raises(JobLockedError, match=str(proc.pid)):
            job.acquire_lock()
        job.release_lock()  # not ours: left in place
        assert job.lock_owner() == proc.pid
    finally:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- stop flag


def _wait_for(flag: StopFlag) -> None:
    deadline = time.monotonic() + 5
    while not flag and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_flag_turns_signals_into_a_flag_and_restores_handlers(sig):
    before = signal.getsignal(sig)
    with StopFlag() as flag:
        assert not flag
        os.kill(os.getpid(), sig)
        _wait_for(flag)
        assert flag.is_set and flag.signal_name == sig.name
    assert signal.getsignal(sig) is before


def test_stop_flag_can_be_set_without_a_signal():
    flag = StopFlag()
    flag.set("stop button")
    assert flag and flag.signal_name == "stop button"


def test_job_module_does_not_import_torch():
    code = "import sys, rsuper.train.job; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_status_file_is_plain_json(tmp_path):
    job = JobFolder(tmp_path).create()
    job.write_status(state="finished", best={"dice": 0.8})
    assert json.loads(job.status_path.read_text(encoding="utf-8"))["best"] == {"dice": 0.8}
