"""rsuper.jobs.background.BackgroundJob with real child processes: rsuper extract, cancel of a process tree, errors."""

from __future__ import annotations

import csv
import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rsuper.jobs.background import BackgroundJob
from rsuper.jobs.commands import extract_command
from rsuper.train.job import pid_alive

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "rsuper" / "report" / "examples" / "reports.csv"
ENV = {"PYTHONPATH": str(ROOT)}


def _poll_until_done(job: BackgroundJob, timeout_s: float = 60.0) -> list[dict]:
    """Poll as a GUI timer would, until the job is over; all events in order."""
    events: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while job.running:
        assert time.monotonic() < deadline, "job did not finish in time"
        events += job.poll()
        time.sleep(0.02)
    return events + job.poll()


def _ended(pid: int) -> bool:
    """The process no longer runs (absent, or a zombie waiting for its new parent to reap it)."""
    if not pid_alive(pid):
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def _gone(pid: int, within_s: float = 2.0) -> bool:
    """The process has ended, or ends within ``within_s`` seconds: a killed process closes its pipes (which
    lets the job's readers finish) a moment before the kernel marks it a zombie."""
    deadline = time.monotonic() + within_s
    while not _ended(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _reports(path: Path, bad_id: str | None = None) -> list[str]:
    rows = list(csv.DictReader(open(EXAMPLES, encoding="utf-8")))
    rows = [r for r in rows if r["report"].strip()]
    if bad_id is not None:
        rows.insert(2, {"case_id": bad_id, "report": "   "})
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["case_id", "report"])
        writer.writeheader()
        writer.writerows(rows)
    return [r["case_id"] for r in rows]


def test_extract_batch_reports_progress_and_writes_facts(tmp_path):
    ids = _reports(tmp_path / "reports.csv")
    out = tmp_path / "facts.jsonl"
    job = BackgroundJob(extract_command(tmp_path / "reports.csv", out), log_path=tmp_path / "job.log", env=ENV)
    assert not job.running and job.returncode is None and job.poll() == []
    job.start()
    assert job.pid is not None
    events = _poll_until_done(job)
    assert job.returncode == 0 and job.wait(5) == 0
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds.index("end") > max(i for i, k in enumerate(kinds) if k == "progress")
    assert events[0]["total"] == len(ids)
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["done"] for e in progress] == list(range(1, len(ids) + 1))
    assert sorted(e["case_id"] for e in progress) == sorted(ids)
    assert "error" not in kinds
    facts = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(f["case_id"] for f in facts) == sorted(ids)
    assert any(t["organ"] == "pancreas" for f in facts for t in f["tumours"])
    # The log file holds every line the child wrote, JSON events included.
    logged = (tmp_path / "job.log").read_text().splitlines()
    assert sum(line.startswith('{"event": "progress"') for line in logged) == len(ids)


def test_a_bad_row_is_an_error_event_and_the_batch_finishes(tmp_path):
    ids = _reports(tmp_path / "reports.csv", bad_id="broken_case")
    job = BackgroundJob(extract_command(tmp_path / "reports.csv", tmp_path / "facts.jsonl"), env=ENV).start()
    events = _poll_until_done(job)
    assert job.returncode == 0
    errors = [e for e in events if e["event"] == "error"]
    assert [e["case_id"] for e in errors] == ["broken_case"] and "empty" in errors[0]["reason"]
    end = next(e for e in events if e["event"] == "end")
    assert end["done"] == len(ids) and end["errors"] == 1 and end["extracted"] == len(ids) - 1
    written = [json.loads(line)["case_id"] for line in (tmp_path / "facts.jsonl").read_text().splitlines()]
    assert sorted(written) == sorted(i for i in ids if i != "broken_case")


# A child that starts a grandchild ignoring SIGTERM, then prints a JSON event every 50 ms forever.
TREE = textwrap.dedent("""
    import json, subprocess, sys, time
    grandchild = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
        "time.sleep(120)"])
    print(json.dumps({"event": "start", "grandchild": grandchild.pid}), flush=True)
    print("plain text line", flush=True)
    n = 0
    while True:
        n += 1
        print(json.dumps({"event": "progress", "done": n}), flush=True)
        time.sleep(0.05)
""")


def _start_tree(tmp_path: Path) -> tuple[BackgroundJob, int, list[dict]]:
    job = BackgroundJob([sys.executable, "-c", TREE], log_path=tmp_path / "tree.log").start()
    events: list[dict] = []
    deadline = time.monotonic() + 20
    while sum(e["event"] == "progress" for e in events) < 3:
        assert time.monotonic() < deadline and job.running
        events += job.poll()
        time.sleep(0.02)
    grandchild = events[0]["grandchild"]
    assert pid_alive(job.pid) and pid_alive(grandchild)
    return job, grandchild, events


@pytest.mark.skipif(sys.platform == "win32", reason="process groups and /proc are POSIX")
def test_cancel_ends_the_child_and_its_children(tmp_path):
    job, grandchild, events = _start_tree(tmp_path)
    assert [e["done"] for e in events if e["event"] == "progress"] == list(range(1, len(events)))
    assert "plain text line" in job.log_tail()
    t0 = time.monotonic()
    code = job.cancel(grace_s=1.0)
    elapsed = time.monotonic() - t0
    assert code is not None and code != 0 and job.returncode == code and job.cancelled
    assert not job.running
    assert _gone(job.pid) and _gone(grandchild)
    # The grandchild ignored SIGTERM, so it took the SIGKILL after the grace period.
    assert 0.9 <= elapsed < 8.0


@pytest.mark.skipif(sys.platform == "win32", reason="process groups and /proc are POSIX")
def test_cancel_without_blocking_the_caller(tmp_path):
    job, grandchild, _ = _start_tree(tmp_path)
    t0 = time.monotonic()
    assert job.cancel(grace_s=0.5, block=False) is None
    assert time.monotonic() - t0 < 0.3
    deadline = time.monotonic() + 10
    while job.running:
        assert time.monotonic() < deadline
        job.poll()
        time.sleep(0.02)
    assert job.returncode is not None and job.returncode != 0
    assert _gone(job.pid) and _gone(grandchild)


def test_failing_command_explains_itself_in_the_log_tail(tmp_path):
    job = BackgroundJob(extract_command(tmp_path / "missing.csv", tmp_path / "facts.jsonl"), env=ENV).start()
    events = _poll_until_done(job)
    assert job.returncode == 2 and events == []
    tail = job.log_tail()
    assert any("reports file not found" in line and "missing.csv" in line for line in tail), tail
    assert job.log_tail(0) == []


def test_a_command_that_cannot_start_raises(tmp_path):
    job = BackgroundJob([str(tmp_path / "no-such-program")])
    with pytest.raises(OSError):
        job.start()
    assert not job.running
    with pytest.raises(RuntimeError):
        BackgroundJob([sys.executable, "-c", "pass"]).wait()


def test_output_without_a_trailing_newline_and_non_object_json(tmp_path):
    script = ("import sys; print('[1, 2]'); print('{\"event\": \"end\", \"done\": 1}'); "
              "sys.stdout.write('{\"event\": \"tail\"}'); sys.stderr.write('warning: x\\n')")
    with BackgroundJob([sys.executable, "-c", script], env={"EXTRA": os.pathsep}) as job:
        assert job.wait(20) == 0
        events = job.poll()
    assert events == [{"event": "end", "done": 1}, {"event": "tail"}]
    assert sorted(job.log_tail()) == ["[1, 2]", "warning: x"]  # two streams: no order between them
    with pytest.raises(RuntimeError):
        job.start()
