"""R-Super Train: train a tumour segmenter from CT-mask and CT-report cases in a background process.

The module is thin. ``rsuper train`` runs as its own process and writes a job folder (status, JSON-lines
progress, log, checkpoints); the panel follows that folder with ``rsuper.jobs.training.TrainingJobWatcher``,
so a run keeps going when Slicer closes and the panel re-attaches to it on the next start. Nothing from
``rsuper`` is imported at module load, so the module appears even before its Python dependencies are
installed.

The live loss curve is a PNG drawn by ``rsuper.evaluate.plots.plot_loss_curves`` and shown in the panel,
rather than Slicer plot nodes: it is the same figure the command line and the docs use (one tested
implementation), it stays next to the controls without changing the view layout, it adds no table or plot
nodes to the scene (which would be saved with it) for what is a property of the job folder, and it is
redrawn identically for a job followed after a restart. It is redrawn at most every few seconds.
"""

import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated

import qt
import slicer
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
)

from RSuperLib import Dialogs, Install, Jobs
from RSuperLib.ProcessPoller import ProcessPoller
from RSuperLib.WidgetBase import WidgetBase, describeModule

#: QSettings key of the job folder followed last (re-attached when the module opens again).
LAST_JOB_SETTING = "RSuperTrain/LastJobFolder"
#: Seconds between two redraws of the loss curve.
PLOT_INTERVAL_S = 5.0
#: Job states after which nothing more happens until Resume.
FINAL_STATES = ("stopped", "finished", "failed")


class RSuperTrain(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describeModule(self.parent, _("R-Super Train"), _(
            "Train a 3D tumour segmenter from CTs with tumour masks and CTs with only a radiology report "
            "(R-Super's Volume and Ball losses), or fine-tune one. Training runs as a separate process that "
            "survives closing Slicer; Stop saves, Resume continues exactly. See docs/slicer.md of the extension."
        ))


@parameterNodeWrapper
class RSuperTrainParameterNode:
    """Main training options (the rest keep the defaults of docs/training.md).

    masksSteps, reportsSteps: steps of the masks-only stage and of the masks + reports stage.
    patchSize: edge of the cubic patch in voxels (1 mm grid); batchSize: patches per step.
    device: auto, cpu or cuda.
    reportWeight: lambda of the report losses; volumeWeight, ballWeight: weights of the Volume and Ball terms.
    """

    masksSteps: Annotated[int, WithinRange(0, 1000000)] = 20000
    reportsSteps: Annotated[int, WithinRange(0, 1000000)] = 20000
    patchSize: Annotated[int, WithinRange(32, 256)] = 96
    batchSize: Annotated[int, WithinRange(1, 64)] = 2
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"
    reportWeight: Annotated[float, WithinRange(0.0, 10.0)] = 0.1
    volumeWeight: Annotated[float, WithinRange(0.0, 10.0)] = 1.0
    ballWeight: Annotated[float, WithinRange(0.0, 10.0)] = 1.0


def formatDuration(seconds) -> str:
    """``3725`` -> ``"1 h 2 min"``; ``None`` -> ``"?"``."""
    if seconds is None:
        return "?"
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min {int(seconds % 60)} s"


class RSuperTrainWidget(WidgetBase):
    """Panel: data folder and its summary, options, Start / Stop / Resume / Follow, live progress
    (the module template's life cycle is :class:`RSuperLib.WidgetBase.WidgetBase`)."""

    def __init__(self, parent=None) -> None:
        self._watcher = None
        self._poller = None
        self._process = None  # the BackgroundJob this session started (None for a re-attached job)
        self._lastPlot = 0.0
        self._lastEvent = {}
        self._sawRunning = False  # the followed run was alive at some point (errors are then shown)
        WidgetBase.__init__(self, parent)

    def createLogic(self):
        return RSuperTrainLogic()

    def setupPanel(self) -> None:
        self.ui.dataFolderPathLineEdit.connect("currentPathChanged(QString)", self.onDataFolderChanged)
        self.ui.startButton.connect("clicked(bool)", self.onStart)
        self.ui.stopButton.connect("clicked(bool)", self.onStop)
        self.ui.resumeButton.connect("clicked(bool)", self.onResume)
        self.ui.attachButton.connect("clicked(bool)", self.onAttach)
        lastJob = qt.QSettings().value(LAST_JOB_SETTING)
        if lastJob and Path(lastJob, "status.json").is_file():  # re-attach to the job followed last
            self.ui.jobFolderPathLineEdit.currentPath = lastJob
            self.attach(lastJob)

    def cleanup(self) -> None:
        WidgetBase.cleanup(self)
        if self._poller is not None:
            self._poller.stop()

    # ------------------------------------------------------------------ data
    def onDataFolderChanged(self, path: str) -> None:
        """Summarise the chosen data folder: cases per kind and organ, and the problems found."""
        table = self.ui.summaryTable
        table.clear()
        table.setRowCount(0)
        table.setColumnCount(0)
        if not path or not Path(path).exists():
            self.ui.summaryLabel.text = _("Choose a data folder.")
            return
        if not Install.ensureDependencies(slicer.util.mainWindow()):
            return
        with slicer.util.tryWithErrorDisplay(_("Could not read the data folder."), waitCursor=True):
            summary = self.logic.summarize(path)
            header, rows = self.logic.summaryTable(summary)
            table.setColumnCount(len(header))
            table.setHorizontalHeaderLabels(header)
            for row in rows:
                index = table.rowCount
                table.insertRow(index)
                for column, value in enumerate(row):
                    table.setItem(index, column, qt.QTableWidgetItem(str(value)))
            table.resizeColumnsToContents()
            text = _("{m} case(s) with tumour masks, {r} with report facts only, {u} without tumour "
                     "supervision.").format(m=summary.mask_cases, r=summary.report_cases, u=summary.unlabelled_cases)
            if summary.problems:
                shown = summary.problems[:5]
                more = len(summary.problems) - len(shown)
                text += " " + _("{n} problem(s): {list}").format(n=len(summary.problems), list="; ".join(shown))
                if more:
                    text += " " + _("(and {n} more)").format(n=more)
            self.ui.summaryLabel.text = text
            self.ui.dataFolderPathLineEdit.addCurrentPathToHistory()

    # ------------------------------------------------------------------ job control
    def jobFolder(self) -> str:
        path = self.ui.jobFolderPathLineEdit.currentPath
        if not path:
            raise ValueError(_("Choose the job folder."))
        return path

    def onStart(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not start training."), waitCursor=True):
            data = self.ui.dataFolderPathLineEdit.currentPath
            if not data:
                raise ValueError(_("Choose the data folder."))
            job = self.jobFolder()
            if not Install.ensureDependencies(slicer.util.mainWindow()):
                return
            init = self.ui.initCheckpointPathLineEdit.currentPath or None
            self._process = self.logic.start(data, job, self.logic.overrides(self._parameterNode), init)
            self.ui.jobFolderPathLineEdit.addCurrentPathToHistory()
            self.attach(job)

    def onStop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self.ui.stateLabel.text = _("Stopping: the run finishes its step and saves...")
            self.ui.stopButton.enabled = False

    def onResume(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not resume training."), waitCursor=True):
            job = self.jobFolder()
            if not Install.ensureDependencies(slicer.util.mainWindow()):
                return
            self._process = self.logic.resume(job)
            self.attach(job)

    def onAttach(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not follow the job."), waitCursor=True):
            job = self.jobFolder()
            if not Path(job, "status.json").is_file():
                raise ValueError(_("{path} holds no training job (no status.json).").format(path=job))
            self.attach(job)

    def attach(self, jobFolder: str) -> None:
        """Follow the job folder: its whole history now, new events as they come."""
        from rsuper.jobs.training import TrainingJobWatcher, TrainingRun

        if self._poller is not None:
            self._poller.stop()
        qt.QSettings().setValue(LAST_JOB_SETTING, str(jobFolder))
        self._watcher = TrainingJobWatcher(jobFolder)
        self._lastEvent, self._lastPlot = {}, 0.0
        self._sawRunning = self._process is not None or self._watcher.alive()
        self._poller = ProcessPoller(TrainingRun(self._watcher, self._process), self.onJobEvents, self.onJobFinished,
                                     intervalMs=1000)
        self._poller.start()
        self.onJobEvents(self._watcher.poll())
        self.updateControls()

    def updateControls(self) -> None:
        """Buttons and the state line from the job's status.json."""
        status = (self._watcher.status() if self._watcher else None) or {}
        state = status.get("state")
        alive = bool(self._watcher and self._watcher.alive())
        running = alive or (self._process is not None and self._process.running)
        self._sawRunning = self._sawRunning or alive
        self.ui.startButton.enabled = not running
        self.ui.stopButton.enabled = alive and state not in ("stopping",) + FINAL_STATES
        # A run that was stopped, failed, or died without saying so (killed, power cut) resumes from latest.pt.
        canResume = state is not None and state != "finished" and not alive
        latest = self._watcher.job.checkpoints_dir / "latest.pt" if self._watcher else None
        self.ui.resumeButton.enabled = not running and canResume and latest is not None and latest.is_file()

    def onJobEvents(self, events) -> None:
        for event in events:
            if event.get("event") == "progress":
                self._lastEvent = event
        status = (self._watcher.status() if self._watcher else None) or {}
        event = self._lastEvent
        step, total = event.get("global_step", status.get("step")), event.get("total_steps")
        parts = [status.get("state", _("starting"))]
        if event:
            parts.append(_("stage {stage}, step {step:,} of {total:,} (epoch {epoch})").format(
                stage=event.get("stage"), step=step or 0, total=total or 0, epoch=event.get("epoch", 0)))
            if event.get("samples_per_s"):
                parts.append(_("{v:.1f} samples/s").format(v=event["samples_per_s"]))
            parts.append(_("ETA {t}").format(t=formatDuration(event.get("eta_s"))))
            terms = ", ".join(f"{name.split('/')[0]} {value:.3g}" for name, value in (event.get("terms") or {}).items())
            self.ui.lossLabel.text = _("loss {loss:.4g}").format(loss=event.get("loss", float("nan"))) + \
                (f" - {terms}" if terms else "")
        self.ui.stateLabel.text = " - ".join(str(p) for p in parts)
        if total:
            self.ui.progressBar.setRange(0, int(total))
            self.ui.progressBar.setValue(int(step or 0))
        tail = "\n".join(self._watcher.log_tail(20)) if self._watcher else ""
        if tail != self.ui.logTextEdit.toPlainText():
            self.ui.logTextEdit.setPlainText(tail)
            self.ui.logTextEdit.verticalScrollBar().setValue(self.ui.logTextEdit.verticalScrollBar().maximum)
        if events and time.monotonic() - self._lastPlot > PLOT_INTERVAL_S:
            self.redrawLossPlot()
        self.updateControls()

    def redrawLossPlot(self) -> None:
        self._lastPlot = time.monotonic()
        png = self.logic.lossPlot(self._watcher.root)
        if png is None:
            return
        pixmap = qt.QPixmap(str(png))
        width = max(200, self.ui.lossPlotLabel.width - 8)
        scaled = pixmap.scaledToWidth(width, qt.Qt.SmoothTransformation)
        self.ui.lossPlotLabel.setPixmap(scaled)
        self.ui.lossPlotLabel.setMinimumHeight(scaled.height() + 4)

    def onJobFinished(self, *args) -> None:
        """The job process ended (or the followed job is no longer alive): final state, errors."""
        if self._poller is not None:
            self._poller.stop()
        self.onJobEvents(self._watcher.poll())
        self.redrawLossPlot()
        status = self._watcher.status() or {}
        state = status.get("state")
        failed = state == "failed" or (self._process is not None and self._process.returncode not in (0, 3, None)
                                       and state != "stopped")
        if failed and self._sawRunning:  # not for an old failed job shown again at start-up
            lines = self._watcher.log_tail(30) or (self._process.log_tail(30) if self._process else [])
            Dialogs.showError(_("Training failed"), status.get("error") or _("The training process stopped with an "
                                                                             "error."), details="\n".join(lines))
        elif state == "finished" and self._watcher.final_checkpoint() is not None:
            self.ui.stateLabel.text = _("finished - segment with {path} in the R-Super module.").format(
                path=self._watcher.final_checkpoint())
        self._process = None
        self.updateControls()


class RSuperTrainLogic(ScriptedLoadableModuleLogic):
    """Training without the GUI: the configuration from a data folder, and the ``rsuper train`` process."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        Install.coreOnPath()

    def getParameterNode(self):
        return RSuperTrainParameterNode(super().getParameterNode())

    @staticmethod
    def summarize(path: str):
        """:class:`rsuper.train.data_summary.DataSummary` of a data folder or manifest."""
        from rsuper.train.data_summary import summarize_folder

        return summarize_folder(path)

    @staticmethod
    def summaryTable(summary) -> tuple:
        """``(header, rows)`` of the summary table: one row per organ, then ``all``."""
        from rsuper.train.data_summary import HEADER

        return [name[:1].upper() + name[1:] for name in HEADER], [list(row) for row in summary.as_rows()]

    @staticmethod
    def overrides(parameters) -> dict:
        """``rsuper train --set`` values (docs/training.md) of the panel's options."""
        from rsuper.jobs.train_setup import training_overrides

        return training_overrides(parameters.masksSteps, parameters.reportsSteps, parameters.patchSize,
                                  parameters.batchSize, parameters.device, parameters.reportWeight,
                                  parameters.volumeWeight, parameters.ballWeight)

    @staticmethod
    def start(data: str, jobFolder: str, overrides: dict, initCheckpoint=None):
        """Start ``rsuper train`` on the data (a data folder or a manifest) in the (new or empty) job folder;
        returns the process."""
        from rsuper.jobs.commands import train_command
        from rsuper.jobs.train_setup import write_training_config

        config = write_training_config(data, jobFolder)
        return RSuperTrainLogic._launch(train_command(config, jobFolder, overrides=overrides, init_from=initCheckpoint,
                                                      progress="none", python=Jobs.pythonExecutable()), jobFolder)

    @staticmethod
    def resume(jobFolder: str):
        """Continue the run in the job folder exactly where it stopped."""
        from rsuper.jobs.commands import train_command

        return RSuperTrainLogic._launch(train_command(None, jobFolder, resume=True, progress="none",
                                                      python=Jobs.pythonExecutable()), jobFolder)

    @staticmethod
    def _launch(argv, jobFolder: str):
        """Start the trainer. Its progress is followed through the job folder, not its stdout: with
        ``progress="none"`` the trainer writes nothing to the pipe, so it keeps running when Slicer (the
        pipe's reader) exits."""
        return Jobs.startJob(argv, Path(jobFolder) / "launcher.log")

    @staticmethod
    def lossPlot(jobFolder) -> Path | None:
        """PNG of the job's loss curve and terms (``None`` before the first logged step)."""
        from rsuper.evaluate.plots import plot_loss_curves, read_progress

        progress = Path(jobFolder) / "progress.jsonl"
        if not progress.is_file():
            return None
        try:
            path = Path(slicer.app.temporaryPath) / "RSuperTrain" / f"loss-{abs(hash(str(jobFolder)))}.png"
            return plot_loss_curves(read_progress(progress), path, title=_("Training loss"))
        except ValueError:  # no step with a loss logged yet
            return None


class RSuperTrainTest(ScriptedLoadableModuleTest):
    """Self-test: a data folder of synthetic CTs (``rsuper.data.phantom``), real training runs in the background."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_TrainStopResume()

    def _waitUntil(self, condition, timeout_s: float = 900.0, what: str = "") -> None:
        start = time.monotonic()
        while not condition():
            self.assertLess(time.monotonic() - start, timeout_s, f"timed out waiting for {what}")
            slicer.app.processEvents()
            time.sleep(0.1)

    def _dataFolder(self, root: Path) -> Path:
        """Phantoms in the layout of docs/slicer.md: images/, labels/ (2 cases), organs/, facts.jsonl."""
        import json

        from rsuper.data.phantom import make_phantom

        for sub in ("images", "labels", "organs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        with open(root / "facts.jsonl", "w", encoding="utf-8") as facts:
            for index in range(4):
                phantom = make_phantom(40 + index, shape=(64, 56, 48), spacing_mm=(3.0, 3.0, 5.0), n_tumours=(1, 2),
                                       case_id=f"case_{index:02d}")
                files = phantom.save(root / "tmp" / phantom.case_id)
                shutil.move(str(files["ct"]), root / "images" / f"{phantom.case_id}.nii.gz")
                shutil.move(str(files["organs"]), root / "organs" / f"{phantom.case_id}.nii.gz")
                if index < 2:
                    shutil.move(str(files["tumours"]), root / "labels" / f"{phantom.case_id}.nii.gz")
                else:
                    facts.write(json.dumps(phantom.facts.to_dict()) + "\n")
        shutil.rmtree(root / "tmp")
        return root

    def test_TrainStopResume(self):
        """Summary, a short run to the end, then Stop and Resume of a longer one; the panel follows both."""
        self.assertTrue(Install.ensureDependencies(), "R-Super's Python dependencies are not installed")
        root = Path(tempfile.mkdtemp(prefix="RSuperTrainTest-", dir=slicer.app.temporaryPath))
        data = self._dataFolder(root / "data")
        slicer.util.selectModule("RSuperTrain")  # entered, as by a user: the panel is bound
        widget = slicer.modules.rsupertrain.widgetRepresentation().self()
        widget.ui.dataFolderPathLineEdit.currentPath = str(data)
        summary = RSuperTrainLogic.summarize(str(data))
        self.assertEqual((summary.mask_cases, summary.report_cases), (2, 2), summary.problems)
        self.assertGreater(widget.ui.summaryTable.rowCount, 0)

        node = widget._parameterNode
        node.masksSteps, node.reportsSteps, node.patchSize, node.batchSize, node.device = 2, 2, 32, 1, "cpu"
        widget.ui.jobFolderPathLineEdit.currentPath = str(root / "short")
        widget.ui.startButton.click()
        self._waitUntil(lambda: (widget._watcher.status() or {}).get("state") in FINAL_STATES, what="the short run")
        self._waitUntil(lambda: widget._process is None, what="the panel to see the end")
        self.assertEqual(widget._watcher.status()["state"], "finished", "\n".join(widget._watcher.log_tail(30)))
        self.assertTrue((root / "short" / "checkpoints" / "final.pt").is_file())
        pixmap = widget.ui.lossPlotLabel.pixmap
        self.assertTrue(pixmap is not None and not pixmap.isNull(), "no loss curve shown")
        self.delayDisplay("Short run finished, loss curve shown")

        node.reportsSteps = 5000
        widget.ui.jobFolderPathLineEdit.currentPath = str(root / "long")
        widget.ui.startButton.click()
        self._waitUntil(lambda: (widget._lastEvent or {}).get("global_step", 0) >= 3, what="a few steps")
        widget.ui.stopButton.click()
        self._waitUntil(lambda: (widget._watcher.status() or {}).get("state") == "stopped", what="the stop")
        self._waitUntil(lambda: widget.ui.resumeButton.enabled, timeout_s=60, what="Resume to be possible")
        stoppedAt = widget._watcher.status().get("step", 0)

        widget.ui.resumeButton.click()
        self._waitUntil(lambda: (widget._lastEvent or {}).get("global_step", 0) > stoppedAt + 1, what="resumed steps")
        widget.ui.stopButton.click()
        self._waitUntil(lambda: (widget._watcher.status() or {}).get("state") == "stopped", what="the second stop")

        widget.attach(str(root / "long"))  # what re-attaching after a restart does
        self.assertIn("stopped", widget.ui.stateLabel.text)
        self.delayDisplay("Stop, Resume and re-attach work")
