"""One ``rsuper`` child process whose JSON-lines progress events a GUI collects without blocking.

:class:`BackgroundJob` starts the command with :class:`subprocess.Popen` and
one reader thread per output stream. Each stdout line that is a JSON object
(an :class:`rsuper.progress.Progress` event such as
``{"event": "progress", "done": 5, "total": 120, ...}``) goes to a queue that
:meth:`BackgroundJob.poll` drains; every other line (stderr, plain text) is
kept in a bounded buffer for :meth:`BackgroundJob.log_tail` and, when a
``log_path`` is given, every line is also appended to that file.

Threads and a queue rather than asyncio: the GUI (3D Slicer) polls from a
``QTimer`` on its own thread and has no asyncio event loop running; a
blocking ``readline`` in a daemon thread per pipe is the simplest way to keep
the pipes drained (a full pipe would stall the child) without one.

Cancelling: the child is started in a new session (POSIX), so it leads its own
process group and a signal to the group also reaches its children (data-loader
workers, a tokenizer's pool, ...). On Windows the child gets a new process
group (``CREATE_NEW_PROCESS_GROUP``) and is terminated; its children are then
ended with ``taskkill /T``. ``psutil`` is not a dependency, and the standard
library covers both cases.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = ["BackgroundJob"]

_WINDOWS = sys.platform == "win32"


class BackgroundJob:
    """One child process, its JSON-lines events and the tail of its other output.

    Args:
        argv: the command (e.g. from :mod:`rsuper.jobs.commands`).
        log_path: optional file to which every output line is appended (stdout and stderr, JSON
            lines included), e.g. a log the user can open after the GUI closed.
        env: extra environment variables, on top of this process's environment.
        cwd: working directory of the child (default: this process's).
        max_log_lines: how many non-JSON lines :meth:`log_tail` can return.

    Example::

        job = BackgroundJob(extract_command("reports.csv", "facts.jsonl")).start()
        while job.running:          # in a GUI: from a timer, never in a loop
            for event in job.poll():
                print(event["event"], event.get("done"), event.get("total"))
        if job.returncode != 0:
            print("\\n".join(job.log_tail()))
    """

    def __init__(
        self,
        argv: Sequence[str],
        log_path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        max_log_lines: int = 2000,
    ) -> None:
        if not argv:
            raise ValueError("empty command")
        self.argv = [os.fspath(a) for a in argv]
        self.log_path = None if log_path is None else Path(log_path)
        self.env = dict(env or {})
        self.cwd = cwd
        self.cancelled = False
        self._proc: subprocess.Popen[str] | None = None
        self._events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._lines: collections.deque[str] = collections.deque(maxlen=max_log_lines)
        self._lock = threading.Lock()
        self._log_file: IO[str] | None = None
        self._readers: list[threading.Thread] = []

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> BackgroundJob:
        """Start the child; return ``self``.

        Raises:
            RuntimeError: already started.
            OSError: the program cannot be run (e.g. ``FileNotFoundError``).
        """
        if self._proc is not None:
            raise RuntimeError("the job was already started")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", **self.env}
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "a", encoding="utf-8")
        group: dict[str, Any] = (
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if _WINDOWS else {"start_new_session": True}
        )
        try:
            self._proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, encoding="utf-8", errors="replace", bufsize=1, env=env, cwd=self.cwd, **group,
            )
        except BaseException:
            self._close_log()
            raise
        for stream, parse_json in ((self._proc.stdout, True), (self._proc.stderr, False)):
            reader = threading.Thread(target=self._read, args=(stream, parse_json), daemon=True,
                                      name=f"rsuper-job-{self._proc.pid}-{'out' if parse_json else 'err'}")
            reader.start()
            self._readers.append(reader)
        return self

    @property
    def pid(self) -> int | None:
        """Process id of the child (``None`` before :meth:`start`)."""
        return None if self._proc is None else self._proc.pid

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called."""
        return self._proc is not None

    @property
    def running(self) -> bool:
        """True from :meth:`start` until the child has exited and all its output has been read.

        So once it is false, one more :meth:`poll` returns the last events.
        """
        if self._proc is None:
            return False
        return self._proc.poll() is None or any(r.is_alive() for r in self._readers)

    @property
    def returncode(self) -> int | None:
        """Exit status of the child; ``None`` while it runs (negative: killed by that signal, POSIX)."""
        return None if self._proc is None else self._proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit and its output to be read; return its exit status.

        Raises:
            RuntimeError: not started.
            subprocess.TimeoutExpired: still running after ``timeout`` seconds.
        """
        if self._proc is None:
            raise RuntimeError("the job was not started")
        deadline = None if timeout is None else time.monotonic() + timeout
        code = self._proc.wait(timeout)
        for reader in self._readers:
            reader.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))
            if reader.is_alive():  # a grandchild still holds the pipe open
                raise subprocess.TimeoutExpired(self.argv, timeout or 0.0)
        self._close_log()
        return code

    def cancel(self, grace_s: float = 10.0, block: bool = True) -> int | None:
        """Ask the child and its process group to stop (SIGTERM), kill what is left after ``grace_s`` seconds.

        ``rsuper`` commands save what they can on SIGTERM (training writes ``latest.pt``; extraction keeps
        every finished report).

        Args:
            grace_s: seconds the group has to exit before SIGKILL.
            block: wait here (at most about ``grace_s`` seconds) and return the exit status; ``False``
                (for a GUI thread) sends SIGTERM, leaves the waiting and killing to a daemon thread and
                returns ``None`` at once; :attr:`running` turns false when the child is gone.

        Returns:
            the exit status when ``block`` (negative on POSIX when a signal ended it), else ``None``;
            ``None`` if the job was never started.
        """
        if self._proc is None:
            return None
        self.cancelled = True
        if not block:
            threading.Thread(target=self._terminate, args=(grace_s,), daemon=True,
                             name=f"rsuper-job-{self._proc.pid}-cancel").start()
            return None
        return self._terminate(grace_s)

    def _terminate(self, grace_s: float) -> int:
        assert self._proc is not None
        if self._group_alive():
            self._signal_group(terminate=True)
            deadline = time.monotonic() + max(grace_s, 0.0)
            while self._group_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._group_alive():
                self._signal_group(terminate=False)
        code = self._proc.wait()
        for reader in self._readers:
            reader.join(5.0)
        self._close_log()
        return code

    def __enter__(self) -> BackgroundJob:
        return self if self.started else self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.running:
            self.cancel(grace_s=2.0)

    # -- output --------------------------------------------------------------------------------

    def poll(self) -> list[dict[str, Any]]:
        """The JSON events written on stdout since the last call, oldest first; never blocks."""
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def log_tail(self, n: int = 20) -> list[str]:
        """The last ``n`` lines of output that were not JSON events (stderr and plain stdout), oldest first."""
        with self._lock:
            lines = list(self._lines)
        return lines[-n:] if n > 0 else []

    # -- internals -----------------------------------------------------------------------------

    def _read(self, stream: IO[str], parse_json: bool) -> None:
        """Reader thread: route each line of ``stream`` to the event queue or the log lines."""
        for raw in iter(stream.readline, ""):
            line = raw.rstrip("\r\n")
            event = _json_object(line) if parse_json else None
            with self._lock:
                if self._log_file is not None:
                    self._log_file.write(line + "\n")
                    self._log_file.flush()
                if event is None and line.strip():
                    self._lines.append(line)
            if event is not None:
                self._events.put(event)
        stream.close()

    def _close_log(self) -> None:
        with self._lock:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def _group_alive(self) -> bool:
        """Whether the child or any other process of its group is left (on Windows: the child itself)."""
        assert self._proc is not None
        if self._proc.poll() is None:
            return True
        if _WINDOWS:
            return False
        # The child has been reaped by poll(), so the group exists only while another member is left.
        try:
            os.killpg(self._proc.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _signal_group(self, terminate: bool) -> None:
        assert self._proc is not None
        if _WINDOWS:
            if terminate:
                self._proc.terminate()
            else:
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(self._proc.pid)], capture_output=True)
                self._proc.kill()
            return
        try:
            os.killpg(self._proc.pid, signal.SIGTERM if terminate else signal.SIGKILL)
        except ProcessLookupError:
            pass


def _json_object(line: str) -> dict[str, Any] | None:
    """The line as a dict when it is a JSON object, else ``None``."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None

