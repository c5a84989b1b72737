"""The modules' ``rsuper`` child processes: started with the right Python and environment, followed in a panel.

Which interpreter and which ``PYTHONPATH`` a child gets is decided in
``rsuper.jobs.environment`` (pure, tested); this file applies it inside Slicer
and wires one running job to a panel's progress bar, status line and Cancel
button (needs the Slicer application for :class:`JobPanel`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from . import Install


def pythonExecutable() -> str:
    """The Python that runs ``rsuper`` child processes: Slicer's own (``PythonSlicer``) inside Slicer."""
    Install.coreOnPath()
    from rsuper.jobs.environment import child_python

    return child_python()


def childEnvironment() -> dict:
    """Variables for child processes (laid over Slicer's environment): the bundled ``rsuper`` importable."""
    Install.coreOnPath()
    from rsuper.jobs.environment import child_environment

    return child_environment()


def startJob(argv: Sequence[str], logPath: Any = None) -> Any:
    """Start ``argv`` (from ``rsuper.jobs.commands``, built with :func:`pythonExecutable`) as a
    ``rsuper.jobs.background.BackgroundJob`` in :func:`childEnvironment`; every output line also goes to
    ``logPath`` when given. Returns the started job."""
    Install.coreOnPath()
    from rsuper.jobs.background import BackgroundJob

    return BackgroundJob(argv, log_path=logPath, env=childEnvironment()).start()


class JobPanel:
    """One background job at a time, shown in a panel: busy progress bar (a bar once events give a total),
    status line, Cancel button, optional log box, and an error box with the end of the log when the job fails.

    Args:
        progressBar: a ``QProgressBar`` (hidden while idle).
        statusLabel: a ``QLabel`` for running / done / cancelled / failed.
        cancelButton: enabled while a job runs; its click cancels the job.
        logEdit: a ``QPlainTextEdit`` that gets the events' messages and, at the end, the job's log tail.
        onEvents: the module's own handling of the job's event dicts (after the progress bar took its share).
        onChanged: called when a job starts and when it has ended (whatever the outcome), e.g. to enable the
            panel's buttons (:attr:`busy` is already up to date then).
    """

    def __init__(self, progressBar: Any, statusLabel: Any, cancelButton: Any, logEdit: Any = None,
                 onEvents: Callable[[list], None] | None = None,
                 onChanged: Callable[[], None] | None = None) -> None:
        self.progressBar = progressBar
        self.statusLabel = statusLabel
        self.cancelButton = cancelButton
        self.logEdit = logEdit
        self.onEvents = onEvents
        self.onChanged = onChanged
        self.job = None
        self.name = ""
        self._poller = None
        self._onSuccess = None
        self._cancelledText = ""
        self._cancelled = False
        self.progressBar.setVisible(False)
        self.cancelButton.enabled = False
        self.cancelButton.connect("clicked(bool)", self.cancel)

    @property
    def busy(self) -> bool:
        """Whether a job is being followed."""
        return self.job is not None

    def run(self, name: str, job: Any, onSuccess: Callable[[], str | None], cancelledText: str = "") -> None:
        """Follow the started ``job``; when it exits with status 0, call ``onSuccess()`` (errors shown in a
        box) and show the text it returns, if any."""
        from slicer.i18n import tr as _

        from .ProcessPoller import ProcessPoller

        if self.busy:
            raise RuntimeError(_("Another step is still running."))
        self.job, self.name, self._onSuccess, self._cancelled = job, name, onSuccess, False
        self._cancelledText = cancelledText or _("{name}: cancelled.").format(name=name)
        self.progressBar.setRange(0, 0)
        self.progressBar.setVisible(True)
        self.statusLabel.text = _("{name}: running...").format(name=name)
        self.cancelButton.enabled = True
        self._poller = ProcessPoller(job, self._onJobEvents, self._onJobFinished)
        self._poller.start()
        if self.onChanged is not None:
            self.onChanged()

    def cancel(self, *args: Any) -> None:
        """Stop the job (it is asked first, then killed); the panel shows it as cancelled once it is gone."""
        if self.job is not None and not self._cancelled:
            self._cancelled = True
            self.job.cancel(block=False)

    def stop(self) -> None:
        """Stop following (module cleanup); the job itself is left running."""
        if self._poller is not None:
            self._poller.stop()

    def _onJobEvents(self, events: list) -> None:
        for event in events:
            if event.get("total") and event.get("done") is not None:
                self.progressBar.setRange(0, int(event["total"]))
                self.progressBar.setValue(int(event["done"]))
            message = event.get("message") or event.get("reason")
            if message and self.logEdit is not None:
                self.logEdit.appendPlainText(f"{self.name}: {message}")
        if self.onEvents is not None:
            self.onEvents(events)

    def _onJobFinished(self, *args: Any) -> None:
        import slicer
        from slicer.i18n import tr as _

        from . import Dialogs

        job, name, onSuccess = self.job, self.name, self._onSuccess
        self.stop()
        self.job = self._poller = self._onSuccess = None
        self.cancelButton.enabled = False
        self.progressBar.setVisible(False)
        if self.logEdit is not None:
            for line in job.log_tail(50):
                self.logEdit.appendPlainText(line)
        if job.returncode == 0:
            # tryWithErrorDisplay shows the error and raises it again: caught here, so that the panel is still
            # told that the job has ended (onChanged below) and its buttons come back.
            try:
                with slicer.util.tryWithErrorDisplay(_("Could not load the result of {name}.").format(name=name),
                                                     waitCursor=True):
                    text = onSuccess()
            except Exception:
                logging.exception("RSuper: loading the result of %s failed", name)
                text = _("{name}: the result could not be loaded.").format(name=name)
            if text:
                self.statusLabel.text = text
        elif self._cancelled:
            self.statusLabel.text = self._cancelledText
        else:
            self.statusLabel.text = _("{name} failed (exit status {code}).").format(name=name, code=job.returncode)
            Dialogs.showError(_("{name} failed").format(name=name), _("The background process stopped with an error."),
                              details="\n".join(job.log_tail(20)))
        if self.onChanged is not None:
            self.onChanged()
