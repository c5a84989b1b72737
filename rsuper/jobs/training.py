"""Follow a training job folder (``rsuper train --job``) from a GUI, also after the GUI restarted.

The trainer writes the folder (:mod:`rsuper.train.job` describes the layout);
:class:`TrainingJobWatcher` only reads it, so it can be attached at any time:
constructing a watcher on an existing folder is the "re-attach" after a
restart of 3D Slicer, and its first :meth:`~TrainingJobWatcher.poll` returns
the whole history. :class:`TrainingRun` joins a watcher with the trainer
process a GUI started itself, so that one poller follows either.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rsuper.train.job import JobFolder, pid_alive, read_events

if TYPE_CHECKING:
    from rsuper.jobs.background import BackgroundJob

__all__ = ["TrainingJobWatcher", "TrainingRun", "RETURN_CODES"]

#: Final job state -> the exit status ``rsuper train`` gives for it.
RETURN_CODES: dict[str, int] = {"finished": 0, "failed": 1, "stopped": 3}

_TAIL_BYTES = 64 * 1024


class TrainingJobWatcher:
    """Reads a training job folder incrementally.

    Args:
        job_dir: the job folder (it need not exist yet: a job just started creates it).

    Attributes:
        job: the :class:`rsuper.train.job.JobFolder` (paths of status, events, log, checkpoints).
    """

    def __init__(self, job_dir: str | os.PathLike[str]) -> None:
        self.job = JobFolder(job_dir)
        self._offset = 0
        self._pending: list[dict[str, Any]] = []
        self._history: dict[str, list[tuple[int, float]]] = {}
        self._last_status: dict[str, Any] | None = None

    @property
    def root(self) -> Path:
        """The job folder."""
        return self.job.root

    # -- events --------------------------------------------------------------------------------

    def _read(self) -> None:
        """Read the events appended since the last read into the pending list and the loss history."""
        try:
            size = self.job.progress_path.stat().st_size
        except FileNotFoundError:
            return
        if size < self._offset:  # the file was replaced: start over
            self._offset = 0
            self._history = {}
        events, self._offset = read_events(self.job.progress_path, self._offset)
        for event in events:
            if event.get("event") == "progress":
                self._add_losses(event)
        self._pending.extend(events)

    def _add_losses(self, event: dict[str, Any]) -> None:
        step = event.get("global_step", event.get("step"))
        if not isinstance(step, int):
            return
        values = {"loss": event.get("loss"), **(event.get("terms") or {})}
        for name, value in values.items():
            if not isinstance(value, (int, float)):
                continue
            series = self._history.setdefault(name, [])
            # A resumed run repeats the steps after its last checkpoint: its values replace the old ones.
            while series and series[-1][0] >= step:
                series.pop()
            series.append((step, float(value)))

    def poll(self) -> list[dict[str, Any]]:
        """Events appended to ``progress.jsonl`` since the last call (all of them on the first call), oldest first.

        Each is a dict with ``event`` (``stage_start``, ``progress``, ``checkpoint``, ``stage_end``,
        ``stopped``, ``finished``, ``failed``) and ``time`` (seconds since the epoch); ``progress`` events carry
        ``global_step``, ``total_steps``, ``loss``, ``terms`` (loss term -> value), ``lr``, ``eta_s`` ...
        """
        self._read()
        events, self._pending = self._pending, []
        return events

    def loss_history(self) -> dict[str, list[tuple[int, float]]]:
        """Loss term -> ``[(global step, value), ...]`` in step order; ``"loss"`` is the total.

        Covers every progress event written so far (reading does not take them from :meth:`poll`).
        """
        self._read()
        return {name: list(series) for name, series in self._history.items()}

    # -- state ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any] | None:
        """``status.json`` (``state``, ``stage``, ``global_step``, ``total_steps``, ``loss``, ``eta_s``, ``pid``
        ...), or ``None`` before the trainer wrote one. An unreadable file gives the last status read."""
        try:
            status = self.job.read_status()
        except (OSError, ValueError):
            return self._last_status
        self._last_status = status
        return status

    def owner_pid(self) -> int | None:
        """Process id in the job's lock file (the trainer), or ``None`` when no trainer holds the folder."""
        return self.job.lock_owner()

    def alive(self) -> bool:
        """Whether the trainer that holds the folder's lock is still running."""
        pid = self.owner_pid()
        return pid is not None and pid_alive(pid)

    @property
    def running(self) -> bool:
        """Same as :meth:`alive` (the name :class:`rsuper.jobs.background.BackgroundJob` uses)."""
        return self.alive()

    @property
    def returncode(self) -> int | None:
        """While not :attr:`running`: the exit status ``rsuper train`` gives for the final state (0 finished,
        3 stopped, 1 failed); otherwise ``None``."""
        if self.alive():
            return None
        state = (self.status() or {}).get("state")
        return RETURN_CODES.get(str(state))

    def stop(self) -> bool:
        """Ask the trainer to save and stop (SIGTERM to the lock owner); return whether a signal was sent.

        The trainer then writes ``latest.pt``, a ``stopped`` event and state ``stopped``; continue with
        ``rsuper train --resume``. (On Windows, ``os.kill`` ends the process at once: the run continues
        from its last periodic checkpoint.)
        """
        pid = self.owner_pid()
        if pid is None or not pid_alive(pid):
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    # -- files ---------------------------------------------------------------------------------

    def log_tail(self, n: int = 20) -> list[str]:
        """The last ``n`` lines of ``log.txt`` (``<ISO time> <message>``), oldest first; ``[]`` without a log."""
        if n <= 0:
            return []
        try:
            with open(self.job.log_path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(size - _TAIL_BYTES, 0))
                data = f.read()
        except FileNotFoundError:
            return []
        lines = data.decode("utf-8", errors="replace").splitlines()
        if size > _TAIL_BYTES:
            lines = lines[1:]  # the first line may be cut
        return lines[-n:]

    def latest_checkpoint(self) -> Path | None:
        """The most recently written ``checkpoints/*.pt`` (``final.pt`` once the run finished), or ``None``."""
        try:
            found = [p for p in self.job.checkpoints_dir.glob("*.pt") if p.is_file()]
        except OSError:
            return None
        if not found:
            return None
        # final.pt is a copy of the last stage's weights written last; prefer it when times tie.
        return max(found, key=lambda p: (p.stat().st_mtime_ns, p.name == "final.pt"))

    def final_checkpoint(self) -> Path | None:
        """``checkpoints/final.pt`` (the weights to segment with) once the run finished, else ``None``."""
        path = self.job.checkpoints_dir / "final.pt"
        return path if path.is_file() else None


class TrainingRun:
    """A training run as one pollable job (``poll()``, ``running``, ``returncode``): what a GUI timer follows.

    The events always come from the job folder (the watcher). The end is the exit of the trainer process
    this GUI started, when there is one: the trainer takes the folder's lock only once it has started up,
    so before that the lock says nothing. Without a process (a job re-attached after a restart of the GUI,
    or started from a shell), the end is that of the trainer holding the lock.

    Args:
        watcher: the job folder's watcher.
        process: the ``rsuper train`` child this GUI started (started with ``progress="none"``: its pipes
            stay quiet), or ``None``.
    """

    def __init__(self, watcher: TrainingJobWatcher, process: BackgroundJob | None = None) -> None:
        self.watcher = watcher
        self.process = process

    def poll(self) -> list[dict[str, Any]]:
        """New events of the job folder (the process's own output, if any, is drained and kept as its log)."""
        if self.process is not None:
            self.process.poll()
        return self.watcher.poll()

    @property
    def running(self) -> bool:
        """Whether the started process, else the lock-holding trainer, still runs."""
        return self.process.running if self.process is not None else self.watcher.running

    @property
    def returncode(self) -> int | None:
        """The started process's exit status, else the one the job's final state stands for; ``None`` while
        running."""
        return self.process.returncode if self.process is not None else self.watcher.returncode
