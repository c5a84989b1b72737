"""A ``qt.QTimer`` that forwards the events of a background job to the GUI (needs the Slicer application).

The job is an ``rsuper.jobs.background.BackgroundJob`` or an
``rsuper.jobs.training.TrainingJobWatcher``: anything with a non-blocking
``poll() -> list[dict]``, a ``running`` flag and a ``returncode``. All parsing
happens there; this class only calls it on the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import qt


class ProcessPoller:
    """Call ``job.poll()`` every ``intervalMs`` ms; hand new events to ``onEvents``, the end to ``onFinished``.

    Args:
        job: the job to follow (started, or a watcher of a running training).
        onEvents: called with the list of new event dicts (never with an empty list).
        onFinished: called once with ``job.returncode`` after the job ended and its last events were passed on.
        intervalMs: timer period in milliseconds.
    """

    def __init__(self, job: Any, onEvents: Callable[[list[dict]], None], onFinished: Callable[[Any], None],
                 intervalMs: int = 500) -> None:
        self.job = job
        self.onEvents = onEvents
        self.onFinished = onFinished
        self.timer = qt.QTimer()
        self.timer.setInterval(int(intervalMs))
        self.timer.connect("timeout()", self.onTimeout)

    def start(self) -> None:
        """Start polling."""
        self.timer.start()

    def stop(self) -> None:
        """Stop polling (the job itself keeps running)."""
        self.timer.stop()

    @property
    def active(self) -> bool:
        """Whether the timer runs."""
        return bool(self.timer.isActive())

    def onTimeout(self) -> None:
        # Read "running" before polling: events written before the end are then all in this poll.
        running = self.job.running
        events = self.job.poll()
        if events:
            self.onEvents(events)
        if not running:
            self.stop()
            self.onFinished(self.job.returncode)
