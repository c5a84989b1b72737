"""R-Super Report Extract: tumour facts (organ, sub-segment, diameters, count, ...) from radiology reports.

The module is thin: extraction is ``rsuper.report`` (the offline rules in-process for one report, or the
``rsuper extract`` command in a background process for language models and report tables); MRML and Qt
helpers come from ``RSuperLib`` (in the R-Super module's folder). Nothing from ``rsuper`` is imported at
module load, so the module appears even before its Python dependencies are installed.
"""

import csv
import enum
import json
import logging
import tempfile
from pathlib import Path

import qt
import slicer
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
)

from RSuperLib import Dialogs, Install, Jobs
from RSuperLib.WidgetBase import WidgetBase, describeModule

#: Background colours of the evidence highlights, one per tumour row (cycled).
HIGHLIGHT_COLOURS = ("#ffe08a", "#b8e6b0", "#a8d4f5", "#f5b8d0", "#d8c4f0", "#ffc8a0")
#: Columns of the facts table (the case column is hidden for a single report).
CASE_COLUMN = 0


class RSuperReportExtract(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describeModule(self.parent, _("R-Super Report Extract"), _(
            "Extract tumour facts (organ, sub-segment, diameters in mm, count, attenuation, malignancy) from a "
            "radiology report or a table of reports, with offline rules, a local language model folder or a "
            "local OpenAI-compatible server. The words each fact came from are highlighted; the facts are "
            "stored with the CT for the R-Super module. See docs/slicer.md of the extension."
        ))


class ExtractorKind(enum.Enum):
    """The extractor choice; values are the ``rsuper extract --backend`` names."""

    RULES = "rules"
    MODEL_FOLDER = "transformers"
    SERVER = "openai"

    def label(self) -> str:
        return {
            ExtractorKind.RULES: _("Offline rules"),
            ExtractorKind.MODEL_FOLDER: _("Local model folder"),
            ExtractorKind.SERVER: _("Local OpenAI-compatible server"),
        }[self]


@parameterNodeWrapper
class RSuperReportExtractParameterNode:
    """Widget state saved with the scene (paths are remembered per user by the path editors instead).

    volume: the CT the report belongs to; its facts are stored on it.
    caseId: case id of the single report (default: the CT's name).
    extractor: which extractor runs.
    serverUrl, serverModel: the local OpenAI-compatible server and the model it should use.
    """

    volume: vtkMRMLScalarVolumeNode
    caseId: str = ""
    extractor: ExtractorKind = ExtractorKind.RULES
    serverUrl: str = "http://127.0.0.1:8000"
    serverModel: str = ""


def utf16Offset(text: str, index: int) -> int:
    """Qt text positions count UTF-16 units; Python counts code points."""
    return len(text[:index].encode("utf-16-le")) // 2


class RSuperReportExtractWidget(WidgetBase):
    """Panel: report (pasted or a table), extractor choice, Extract/Cancel, facts table, save
    (the module template's life cycle is :class:`RSuperLib.WidgetBase.WidgetBase`)."""

    def __init__(self, parent=None) -> None:
        self.jobs = None
        self._facts = []  # list of facts dicts (ReportFacts.to_dict()) shown in the table
        self._reportText = ""  # the text the shown single-report facts were extracted from
        WidgetBase.__init__(self, parent)

    def createLogic(self):
        return RSuperReportExtractLogic()

    def setupPanel(self) -> None:
        self.jobs = Jobs.JobPanel(self.ui.progressBar, self.ui.statusLabel, self.ui.cancelButton,
                                  onEvents=self.onJobEvents, onChanged=self.onParameterNodeModified)
        self.ui.extractButton.connect("clicked(bool)", self.onExtract)
        self.ui.saveJsonButton.connect("clicked(bool)", self.onSaveJson)
        self.ui.saveCsvButton.connect("clicked(bool)", self.onSaveCsv)
        self.ui.factsTable.connect("itemSelectionChanged()", self.onFactSelected)
        self.ui.inputTabWidget.connect("currentChanged(int)", self.onInputTabChanged)
        self.ui.warningsLabel.setVisible(False)

    def cleanup(self) -> None:
        WidgetBase.cleanup(self)
        self.jobs.stop()

    def setDefaultParameters(self, parameterNode) -> None:
        if not parameterNode.volume:
            parameterNode.volume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        """Show the fields of the chosen extractor; enable Extract when the input is there."""
        kind = self._parameterNode.extractor if self._parameterNode else ExtractorKind.RULES
        for name in ("modelPathLabel", "modelPathLineEdit"):
            getattr(self.ui, name).setVisible(kind == ExtractorKind.MODEL_FOLDER)
        for name in ("serverUrlLabel", "serverUrlLineEdit", "serverModelLabel", "serverModelLineEdit"):
            getattr(self.ui, name).setVisible(kind == ExtractorKind.SERVER)
        self.ui.extractButton.enabled = not self.jobs.busy

    def onInputTabChanged(self, index: int) -> None:
        self.ui.factsTable.setColumnHidden(CASE_COLUMN, index == 0)

    # ------------------------------------------------------------------ extraction
    def singleReportMode(self) -> bool:
        return self.ui.inputTabWidget.currentIndex == 0

    def caseId(self) -> str:
        volume = self._parameterNode.volume
        return self._parameterNode.caseId.strip() or (volume.GetName() if volume else "report")

    def extractorOptions(self) -> dict:
        """``rsuper extract`` options of the chosen extractor (model folder / server)."""
        kind = self._parameterNode.extractor
        if kind == ExtractorKind.MODEL_FOLDER:
            model = self.ui.modelPathLineEdit.currentPath
            if not model:
                raise ValueError(_("Choose the local model folder."))
            return {"extractor": kind.value, "model": model}
        if kind == ExtractorKind.SERVER:
            url = self._parameterNode.serverUrl.strip()
            if not url:
                raise ValueError(_("Give the URL of the local server."))
            model = self._parameterNode.serverModel.strip() or None
            return {"extractor": kind.value, "server_url": url, "model": model}
        return {"extractor": kind.value}

    def onExtract(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Extraction failed."), waitCursor=True):
            options = self.extractorOptions()
            if self.singleReportMode():
                text = self.ui.reportTextEdit.toPlainText()
                if not text.strip():
                    raise ValueError(_("Paste a report first."))
                if options["extractor"] == ExtractorKind.RULES.value:
                    # Offline rules need only the standard library: no dependency check, no child process.
                    self.showSingleFacts(self.logic.extractReport(self.caseId(), text), text)
                    return
                if not Install.ensureDependencies(slicer.util.mainWindow()):
                    return
                job, factsPath = self.logic.startSingleExtraction(self.caseId(), text, **options)
                self.runJob(job, lambda: self.showSingleFacts(self.logic.readFacts(factsPath)[0], text))
            else:
                reports = self.ui.reportsPathLineEdit.currentPath
                outFolder = self.ui.outputFolderPathLineEdit.currentPath
                if not reports or not outFolder:
                    raise ValueError(_("Choose the reports file and the output folder."))
                if not Install.ensureDependencies(slicer.util.mainWindow()):
                    return
                self.ui.reportsPathLineEdit.addCurrentPathToHistory()
                self.ui.outputFolderPathLineEdit.addCurrentPathToHistory()
                job, factsPath = self.logic.startBatchExtraction(reports, outFolder, **options)
                self.runJob(job, lambda: self.showBatchFacts(factsPath))

    def runJob(self, job, onSuccess) -> None:
        """Follow a started ``rsuper extract``: progress, Cancel, then ``onSuccess`` or the error."""
        self.jobs.run(_("Extraction"), job, onSuccess,
                      cancelledText=_("Cancelled. Facts already written are kept; Extract again resumes."))

    def onJobEvents(self, events) -> None:
        """Reports done, errors and time left in the status line; a report that failed goes to the log."""
        for event in events:
            kind = event.get("event")
            if kind == "progress":
                eta = event.get("eta_s")
                self.ui.statusLabel.text = _("{done} of {total} reports, {errors} error(s){eta}").format(
                    done=event.get("done"), total=event.get("total"), errors=event.get("errors", 0),
                    eta="" if eta is None else _(", about {s:.0f} s left").format(s=eta))
            elif kind == "error":
                logging.warning("RSuperReportExtract: %s: %s", event.get("case_id"), event.get("reason"))

    # ------------------------------------------------------------------ results
    def showSingleFacts(self, facts: dict, text: str) -> None:
        """Table rows, highlights and storage of one report's facts."""
        self._facts = [facts]
        self._reportText = text
        self.fillTable()
        self.highlightEvidence(facts, text)
        stored = self.logic.storeFacts(self._parameterNode.volume, facts)
        tumours = len(facts.get("tumours", []))
        self.ui.statusLabel.text = _("{n} tumour record(s) found.").format(n=tumours) + (
            " " + _("Stored with {name}.").format(name=self._parameterNode.volume.GetName()) if stored else "")

    def showBatchFacts(self, factsPath: Path) -> None:
        self._facts = self.logic.readFacts(factsPath)
        self._reportText = ""
        self.fillTable()
        stored = self.logic.storeFactsByName(self._facts)
        errors = self.logic.errorCount(factsPath)
        self.ui.statusLabel.text = _("{n} report(s) in {path}; {e} row(s) with errors; facts stored with {s} CT(s) "
                                     "named after their case id.").format(n=len(self._facts), path=factsPath,
                                                                          e=errors, s=stored)

    def fillTable(self) -> None:
        table = self.ui.factsTable
        table.setRowCount(0)
        normal, warnings = [], []
        for facts in self._facts:
            normal.extend(facts.get("normal_organs", []))
            warnings.extend(facts.get("warnings", []))
            for index, tumour in enumerate(facts.get("tumours", [])):
                row = table.rowCount
                table.insertRow(row)
                count = (">=" if tumour.get("count_is_lower_bound") else "") + str(tumour.get("count", 1))
                size = " x ".join(f"{d:g}" for d in tumour.get("diameters_mm", [])) or "?"
                cells = (facts["case_id"], tumour["organ"], tumour.get("subsegment") or "", size, count,
                         tumour.get("attenuation", ""), tumour.get("malignancy", ""))
                for column, text in enumerate(cells):
                    item = qt.QTableWidgetItem(text)
                    item.setData(qt.Qt.UserRole, index)
                    if column == 1 and len(self._facts) == 1:
                        item.setBackground(qt.QBrush(qt.QColor(HIGHLIGHT_COLOURS[index % len(HIGHLIGHT_COLOURS)])))
                    table.setItem(row, column, item)
        table.resizeColumnsToContents()
        table.setColumnHidden(CASE_COLUMN, len(self._facts) <= 1 and self.singleReportMode())
        unique = sorted(set(normal))
        self.ui.normalOrgansLabel.text = _("Normal organs: {organs}").format(organs=", ".join(unique) or "-")
        self.ui.warningsLabel.text = _("Warnings: {w}").format(w="; ".join(warnings)) if warnings else ""
        self.ui.warningsLabel.setVisible(bool(warnings))
        self.ui.saveJsonButton.enabled = self.ui.saveCsvButton.enabled = bool(self._facts)

    def highlightEvidence(self, facts: dict, text: str) -> None:
        """Colour the words each tumour came from, in the colour of its table row."""
        editor = self.ui.reportTextEdit
        if editor.toPlainText() != text:
            editor.setPlainText(text)
        cursor = qt.QTextCursor(editor.document())
        cursor.select(qt.QTextCursor.Document)
        cursor.setCharFormat(qt.QTextCharFormat())
        for index, tumour in enumerate(facts.get("tumours", [])):
            evidence = tumour.get("evidence")
            if not evidence:
                continue
            fmt = qt.QTextCharFormat()
            fmt.setBackground(qt.QBrush(qt.QColor(HIGHLIGHT_COLOURS[index % len(HIGHLIGHT_COLOURS)])))
            cursor.setPosition(utf16Offset(text, evidence["start"]))
            cursor.setPosition(utf16Offset(text, evidence["end"]), qt.QTextCursor.KeepAnchor)
            cursor.mergeCharFormat(fmt)

    def onFactSelected(self) -> None:
        """Select the chosen tumour's words in the report (single report only)."""
        items = self.ui.factsTable.selectedItems()
        if not items or len(self._facts) != 1 or not self._reportText:
            return
        index = int(items[0].data(qt.Qt.UserRole))
        evidence = self._facts[0]["tumours"][index].get("evidence")
        if not evidence or self.ui.reportTextEdit.toPlainText() != self._reportText:
            return
        cursor = self.ui.reportTextEdit.textCursor()
        cursor.setPosition(utf16Offset(self._reportText, evidence["start"]))
        cursor.setPosition(utf16Offset(self._reportText, evidence["end"]), qt.QTextCursor.KeepAnchor)
        self.ui.reportTextEdit.setTextCursor(cursor)
        self.ui.reportTextEdit.ensureCursorVisible()

    def onSaveJson(self) -> None:
        path = Dialogs.chooseFile(_("Save facts"), _("JSON Lines (*.jsonl);;JSON, one report (*.json)"), "facts.jsonl",
                                  save=True, parent=self.parent)
        if path:
            with slicer.util.tryWithErrorDisplay(_("Could not save the facts."), waitCursor=True):
                self.logic.saveJson(self._facts, path)

    def onSaveCsv(self) -> None:
        path = Dialogs.chooseFile(_("Save facts table"), _("CSV (*.csv)"), "facts.csv", save=True, parent=self.parent)
        if path:
            with slicer.util.tryWithErrorDisplay(_("Could not save the facts table."), waitCursor=True):
                self.logic.saveCsv(self._facts, path)


class RSuperReportExtractLogic(ScriptedLoadableModuleLogic):
    """Extraction without the GUI: each method calls ``rsuper`` (or starts its command) and returns plain data."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        Install.coreOnPath()

    def getParameterNode(self):
        return RSuperReportExtractParameterNode(super().getParameterNode())

    @staticmethod
    def extractReport(caseId: str, text: str) -> dict:
        """One report's facts with the offline rules, in-process (standard library only): a facts dict."""
        from rsuper.report.rules import RulesExtractor

        return RulesExtractor().extract(caseId, text).to_dict()

    @staticmethod
    def startBatchExtraction(reports: str, outFolder: str, extractor: str = "rules", model=None, server_url=None):
        """Start ``rsuper extract`` on a reports table; returns ``(job, facts.jsonl path)``.

        Writes ``facts.jsonl``, ``facts.csv`` and ``extract.log`` in ``outFolder`` (resumes a previous run there).
        """
        from rsuper.jobs.commands import extract_command

        out = Path(outFolder)
        out.mkdir(parents=True, exist_ok=True)
        factsPath = out / "facts.jsonl"
        argv = extract_command(reports, factsPath, extractor=extractor, model=model, server_url=server_url,
                               python=Jobs.pythonExecutable())
        argv += ["--csv", str(out / "facts.csv")]
        return Jobs.startJob(argv, out / "extract.log"), factsPath

    @staticmethod
    def startSingleExtraction(caseId: str, text: str, extractor: str, model=None, server_url=None):
        """Start ``rsuper extract`` (a language model) on one report; returns ``(job, facts.jsonl path)``."""
        folder = Path(tempfile.mkdtemp(prefix="RSuperReportExtract-", dir=slicer.app.temporaryPath))
        reports = folder / "report.csv"
        with open(reports, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([["case_id", "report"], [caseId, text]])
        return RSuperReportExtractLogic.startBatchExtraction(str(reports), str(folder), extractor, model, server_url)

    @staticmethod
    def readFacts(factsPath) -> list:
        """The facts dicts of a ``facts.jsonl`` (validated by ``rsuper``)."""
        from rsuper.report.batch import read_facts_jsonl

        return [facts.to_dict() for facts in read_facts_jsonl(factsPath)]

    @staticmethod
    def errorCount(factsPath) -> int:
        """Rows listed in ``<facts>.errors.jsonl`` by the latest run."""
        from rsuper.report.batch import errors_path

        path = errors_path(Path(factsPath))
        return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()) if path.exists() else 0

    @staticmethod
    def storeFacts(volumeNode, facts: dict) -> bool:
        """Keep the facts with the CT (node attribute, saved with the scene); ``False`` without a CT."""
        if volumeNode is None:
            return False
        from RSuperLib import Nodes

        Nodes.storeFacts(volumeNode, facts)
        return True

    @staticmethod
    def storeFactsByName(factsList: list) -> int:
        """Store each record with the scalar volume named like its case id; returns how many were stored."""
        byName = {facts["case_id"]: facts for facts in factsList}
        stored = 0
        for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
            if node.GetName() in byName:
                stored += RSuperReportExtractLogic.storeFacts(node, byName[node.GetName()])
        return stored

    @staticmethod
    def saveJson(factsList: list, path: str) -> None:
        """``.json``: one record (the first); otherwise JSON Lines, one record per line."""
        path = Path(path)
        if path.suffix.lower() == ".json" and len(factsList) == 1:
            path.write_text(json.dumps(factsList[0], ensure_ascii=False, indent=1), encoding="utf-8")
            return
        with open(path, "w", encoding="utf-8") as fh:
            for facts in factsList:
                fh.write(json.dumps(facts, ensure_ascii=False) + "\n")

    @staticmethod
    def saveCsv(factsList: list, path: str) -> None:
        """The flat facts table of docs/report-facts.md (``rsuper.report.table``)."""
        from rsuper.report.schema import ReportFacts
        from rsuper.report.table import write_facts_csv

        write_facts_csv([ReportFacts.from_dict(facts) for facts in factsList], path)


class RSuperReportExtractTest(ScriptedLoadableModuleTest):
    """Self-test on synthetic CTs from ``rsuper.data.phantom``: the real extractors, the real panel."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SingleReportInPanel()
        self.setUp()
        self.test_ReportTableInBackground()

    def _phantom(self, seed: int):
        self.assertTrue(Install.ensureDependencies(), "R-Super's Python dependencies are not installed")
        from rsuper.data.phantom import make_phantom

        return make_phantom(seed, shape=(64, 56, 48), spacing_mm=(3.0, 3.0, 5.0), n_tumours=(1, 2))

    def test_SingleReportInPanel(self):
        """Paste a phantom's report, Extract: the facts match the truth, are highlighted and stored with the CT."""
        from RSuperLib import Nodes

        phantom = self._phantom(3)
        volume = Nodes.arrayToVolumeNode(phantom.ct, phantom.affine, phantom.case_id)
        slicer.util.selectModule("RSuperReportExtract")  # entered, as by a user: the panel is bound
        widget = slicer.modules.rsuperreportextract.widgetRepresentation().self()
        widget.ui.inputTabWidget.setCurrentIndex(0)
        widget._parameterNode.volume = volume
        widget._parameterNode.extractor = ExtractorKind.RULES
        widget._parameterNode.caseId = ""
        widget.ui.reportTextEdit.setPlainText(phantom.report)
        widget.ui.extractButton.click()

        truth = phantom.facts.to_dict()
        self.assertEqual(widget.ui.factsTable.rowCount, len(truth["tumours"]))
        stored = Nodes.factsFromNode(volume)
        self.assertIsNotNone(stored)
        self.assertEqual(stored["case_id"], phantom.case_id)
        self.assertEqual(sorted((t["organ"], t["diameters_mm"][0]) for t in stored["tumours"]),
                         sorted((t["organ"], t["diameters_mm"][0]) for t in truth["tumours"]))
        first = stored["tumours"][0]["evidence"]
        cursor = qt.QTextCursor(widget.ui.reportTextEdit.document())
        cursor.setPosition(utf16Offset(phantom.report, first["start"]) + 1)
        self.assertEqual(cursor.charFormat().background().color().name(), HIGHLIGHT_COLOURS[0])
        self.delayDisplay("Single report: facts extracted, highlighted and stored")

    def test_ReportTableInBackground(self):
        """A reports table through the background ``rsuper extract``: every case, also as the flat CSV."""
        phantoms = [self._phantom(seed) for seed in (5, 6)]
        folder = Path(tempfile.mkdtemp(prefix="RSuperReportExtractTest-", dir=slicer.app.temporaryPath))
        reports = folder / "reports.csv"
        with open(reports, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([["case_id", "report"]] + [[p.case_id, p.report] for p in phantoms])
        logic = RSuperReportExtractLogic()
        job, factsPath = logic.startBatchExtraction(str(reports), str(folder / "out"))
        self.assertEqual(job.wait(timeout=300), 0, "\n".join(job.log_tail(20)))
        facts = {f["case_id"]: f for f in logic.readFacts(factsPath)}
        self.assertEqual(set(facts), {p.case_id for p in phantoms})
        for phantom in phantoms:
            self.assertEqual(len(facts[phantom.case_id]["tumours"]), len(phantom.facts.tumours))
        self.assertTrue((folder / "out" / "facts.csv").is_file())
        logic.saveCsv(list(facts.values()), str(folder / "again.csv"))
        from rsuper.report.table import read_facts_csv

        self.assertEqual({f.case_id for f in read_facts_csv(folder / "again.csv")}, set(facts))
        self.delayDisplay("Reports table: extracted in the background")
