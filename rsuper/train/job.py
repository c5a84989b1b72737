"""The folder of a background training job, shared by the trainer, the CLI and the Slicer module.

Layout of ``<job>/``:

* ``status.json``: the latest state, rewritten atomically (see :meth:`JobFolder.write_status`);
* ``progress.jsonl``: one JSON event per line, appended and flushed (``{"event", "time", ...}``,
  ``time`` in seconds since the epoch, as :class:`rsuper.progress.Progress` events);
  readers follow it with :func:`read_events`;
* ``problems.jsonl``: one JSON line per skipped case or warning, same format;
* ``log.txt``: human-readable log lines, ``<ISO time> <message>``;
* ``config.yaml``: the resolved configuration of the run;
* ``checkpoints/``: checkpoint files;
* ``job.lock``: present while a trainer owns the folder; holds its process id.

Standard library only (no torch), so the GUI and the CLI can watch a job cheaply.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

STATES = ("starting", "running", "stopping", "stopped", "finished", "failed")


class JobLockedError(RuntimeError):
    """Another live process owns the job folder."""

    def __init__(self, lock_path: Path, pid: int) -> None:
        super().__init__(
            f"job folder is in use by process {pid} (lock {lock_path}); stop that process, "
            "or delete the lock file if you are sure it is not running"
        )
        self.pid = pid


def _now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def _replace_with_retry(src: str | Path, dst: Path, attempts: int = 20, wait_s: float = 0.05) -> None:
    """``os.replace``, retried briefly: on Windows it fails while a reader holds ``dst`` open."""
    for attempt in range(attempts):
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if attempt == attempts - 1:
                raise
            time.sleep(wait_s)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    try:
        _replace_with_retry(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def append_json_line(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line and flush it, so a reader sees whole lines only once complete."""
    line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()


def read_events(path: str | Path, since_offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The complete JSON lines of ``path`` from byte ``since_offset`` on, and the offset to continue from.

    A last line without its newline (still being written) is left for the next
    call; complete lines that are not JSON objects are skipped. A missing file
    gives ``([], since_offset)``; a file shorter than ``since_offset`` (replaced
    by a new one) is read from the start.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = since_offset if since_offset <= size else 0
            f.seek(start)
            data = f.read(size - start)
    except FileNotFoundError:
        return [], since_offset
    end = data.rfind(b"\n") + 1
    events = []
    for raw in data[:end].splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict):
            events.append(record)
    return events, start + end


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        # os.kill(pid, 0) would terminate the process on Windows; ask the kernel instead.
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        try:
            code = ctypes.c_ulong()
            ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
            return bool(ok) and code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class JobFolder:
    """Paths and helpers of one job folder (layout in the module docstring).

    Args:
        path: the job folder; created (with ``checkpoints/``) by :meth:`create`.
    """

    def __init__(self, path: str | Path) -> None:
        self.root = Path(path)
        self.status_path = self.root / "status.json"
        self.progress_path = self.root / "progress.jsonl"
        self.problems_path = self.root / "problems.jsonl"
        self.log_path = self.root / "log.txt"
        self.config_path = self.root / "config.yaml"
        self.checkpoints_dir = self.root / "checkpoints"
        self.lock_path = self.root / "job.lock"

    def create(self) -> JobFolder:
        """Make the folder and ``checkpoints/`` (no error if they exist); return ``self``."""
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        return self

    def read_status(self) -> dict[str, Any] | None:
        """The current status, or ``None`` if none was written yet."""
        try:
            return json.loads(self.status_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def write_status(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the previous status and rewrite it atomically; return the new status.

        Always sets ``pid`` (this process unless given), ``updated`` (ISO time)
        and ``state`` (kept from the previous status, ``"starting"`` for a new one).

        Raises:
            ValueError: ``state`` not one of :data:`STATES`.
        """
        status = self.read_status() or {}
        status.update(fields)
        status.setdefault("state", "starting")
        if status["state"] not in STATES:
            raise ValueError(f"job state {status['state']!r} not one of {STATES}")
        status["pid"] = fields.get("pid", os.getpid())
        status["updated"] = _now_iso()
        write_text_atomic(self.status_path, json.dumps(status, indent=2, ensure_ascii=False, default=str) + "\n")
        return status

    def event(self, name: str, **fields: Any) -> dict[str, Any]:
        """Append ``{"event": name, "time": <epoch s>, **fields}`` to ``progress.jsonl``; return it."""
        record = {"event": name, "time": time.time(), **fields}
        append_json_line(self.progress_path, record)
        return record

    def problem(self, **fields: Any) -> dict[str, Any]:
        """Append ``{"time": <epoch s>, **fields}`` (e.g. ``case_id``, ``reason``) to ``problems.jsonl``."""
        record = {"time": time.time(), **fields}
        append_json_line(self.problems_path, record)
        return record

    def log(self, message: str) -> None:
        """Append ``<ISO time> <message>`` to ``log.txt``."""
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"{_now_iso()} {message}\n")
            f.flush()

    def lock_owner(self) -> int | None:
        """The pid in the lock file, or ``None`` if there is no readable lock."""
        try:
            return int(self.lock_path.read_text(encoding="ascii").strip())
        except (FileNotFoundError, ValueError):
            return None

    def acquire_lock(self) -> None:
        """Own the folder: create ``job.lock`` exclusively, holding this process id.

        A lock left by a process that no longer runs (or an unreadable one) is
        taken over. Two processes taking over the same stale lock at the same
        instant could both succeed; starting jobs is a user action, so this
        window is accepted.

        Raises:
            JobLockedError: a live process (this one included) holds the lock.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = self.lock_owner()
                if owner is not None and pid_alive(owner):
                    raise JobLockedError(self.lock_path, owner) from None
                self.lock_path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(f"{os.getpid()}\n")
            return
        raise JobLockedError(self.lock_path, self.lock_owner() or -1)

    def release_lock(self) -> None:
        """Remove the lock if this process holds it."""
        if self.lock_owner() == os.getpid():
            self.lock_path.unlink(missing_ok=True)


class StopFlag:
    """Turn SIGTERM / SIGINT into a flag the training loop polls, so it can save and exit cleanly.

    Use as a context manager (handlers installed on entry, previous ones restored
    on exit) or call :meth:`install` / :meth:`restore`. ``bool(flag)`` is true
    once a signal arrived or :meth:`set` was called; :attr:`signal_name` says
    which. Handlers can only be installed from the main thread.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._set = False
        self._previous: dict[int, Any] = {}

    def __bool__(self) -> bool:
        return self._set

    @property
    def is_set(self) -> bool:
        return self._set

    def set(self, reason: str = "requested") -> None:
        """Raise the flag without a signal (e.g. a stop button in the same process)."""
        self._set = True
        self.signal_name = self.signal_name or reason

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.set(signal.Signals(signum).name)

    def install(self) -> StopFlag:
        """Install the handlers (remembering the previous ones); return ``self``."""
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        """Put back the handlers that were active before :meth:`install`."""
        while self._previous:
            sig, handler = self._previous.popitem()
            # None means the previous handler was not set from Python; the default is the closest.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    def __enter__(self) -> StopFlag:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()
