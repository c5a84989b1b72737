"""R-Super: organ masks, AI tumours and the AI-versus-report comparison of one CT.

The module is thin. Each step runs an ``rsuper`` command in a background process (``rsuper organs``,
``rsuper predict``, ``rsuper compare``) on files in a work folder of the CT, and the results come back
through ``RSuperLib`` (MRML nodes <-> arrays, process polling, dependency install, dialogs). Nothing
from ``rsuper`` is imported at module load, so the module appears even before its Python dependencies
are installed.
"""

import enum
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated

import qt
import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
)

from RSuperLib import Dialogs, Install, Jobs
from RSuperLib.WidgetBase import WidgetBase, describeModule

#: Node attribute: the ``tumours.json`` that ``rsuper predict`` wrote for a tumour segmentation.
TUMOURS_JSON_ATTRIBUTE = "RSuper.TumoursJson"


class RSuper(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describeModule(self.parent, _("R-Super"), _(
            "Segment the organs (with pancreas head, body and tail) and the tumours of a CT with models trained "
            "by R-Super, then compare each AI tumour with the tumours its radiology report describes. Long "
            "steps run in the background and can be cancelled. See docs/slicer.md of the extension."
        ))


class OrganSource(enum.Enum):
    """Where the organ masks come from."""

    MODEL = "model"
    IMPORT = "import"

    def label(self) -> str:
        return {OrganSource.MODEL: _("nnU-Net model folder"), OrganSource.IMPORT: _("Import masks")}[self]


@parameterNodeWrapper
class RSuperParameterNode:
    """Widget state saved with the scene (model and file paths are remembered per user by the path editors).

    inputVolume: the CT.
    device: where the networks run.
    organSource: run an nnU-Net model folder, or import masks.
    organSegmentation, tumourSegmentation: the results shown for the CT.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    device: Annotated[str, Choice(["cpu", "cuda"])] = "cpu"
    organSource: OrganSource = OrganSource.MODEL
    organSegmentation: vtkMRMLSegmentationNode
    tumourSegmentation: vtkMRMLSegmentationNode


def flagText(flag: str) -> str:
    """Table wording of a comparison flag (``rsuper.compare.table.FLAG_TEXT``)."""
    from rsuper.compare.table import FLAG_TEXT

    return FLAG_TEXT.get(flag, flag)


def formatDiameters(values) -> str:
    """``(24.3, 18.9)`` -> ``"24 x 19"``; empty or ``None`` -> ``"-"``."""
    return " x ".join(f"{v:.0f}" for v in values) if values else "-"


class RSuperWidget(WidgetBase):
    """Panel: CT and facts, organ masks, tumours, one background job at a time, comparison table
    (the module template's life cycle is :class:`RSuperLib.WidgetBase.WidgetBase`)."""

    def __init__(self, parent=None) -> None:
        self.jobs = None
        self._rows = []
        self._lineNode = None
        WidgetBase.__init__(self, parent)

    def createLogic(self):
        return RSuperLogic()

    def setupPanel(self) -> None:
        self.jobs = Jobs.JobPanel(self.ui.progressBar, self.ui.statusLabel, self.ui.cancelButton,
                                  logEdit=self.ui.logTextEdit, onChanged=self.onParameterNodeModified)
        self.ui.loadFactsButton.connect("clicked(bool)", self.onLoadFacts)
        self.ui.createOrgansButton.connect("clicked(bool)", self.onCreateOrgans)
        self.ui.segmentTumoursButton.connect("clicked(bool)", self.onSegmentTumours)
        self.ui.compareButton.connect("clicked(bool)", self.onCompare)
        self.ui.comparisonTable.connect("itemSelectionChanged()", self.onComparisonRowSelected)
        self.ui.exportHtmlButton.connect("clicked(bool)", lambda: self.onExport("comparison.html"))
        self.ui.exportJsonButton.connect("clicked(bool)", lambda: self.onExport("comparison.json"))

    def cleanup(self) -> None:
        WidgetBase.cleanup(self)
        self.jobs.stop()

    def onSceneStartClose(self, caller, event) -> None:
        WidgetBase.onSceneStartClose(self, caller, event)
        self.clearComparison()  # the rows and the line belong to the closed scene

    def setDefaultParameters(self, parameterNode) -> None:
        if not parameterNode.inputVolume:
            parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        """Facts status, the organ source's fields, and which buttons can run now."""
        node = self._parameterNode
        volume = node.inputVolume if node else None
        fromModel = node is None or node.organSource == OrganSource.MODEL
        for name in ("organModelLabel", "organModelPathLineEdit"):
            getattr(self.ui, name).setVisible(fromModel)
        for name in ("organImportLabel", "organImportPathLineEdit"):
            getattr(self.ui, name).setVisible(not fromModel)
        facts = self.logic.facts(volume)
        if facts is None:
            self.ui.factsStatusLabel.text = _("none stored with this CT")
        else:
            self.ui.factsStatusLabel.text = _("{n} tumour(s) reported").format(n=len(facts.get("tumours", [])))
        idle = not self.jobs.busy and volume is not None
        self.ui.createOrgansButton.enabled = idle
        self.ui.segmentTumoursButton.enabled = idle
        self.ui.compareButton.enabled = idle and facts is not None and node.tumourSegmentation is not None
        self.ui.loadFactsButton.enabled = volume is not None

    # ------------------------------------------------------------------ actions
    def onLoadFacts(self) -> None:
        path = Dialogs.chooseFile(_("Load report facts"), _("Facts (*.json *.jsonl);;All files (*)"),
                                  parent=self.parent)
        if path and Install.ensureDependencies(slicer.util.mainWindow()):
            with slicer.util.tryWithErrorDisplay(_("Could not load the facts."), waitCursor=True):
                self.logic.loadFactsFile(self._parameterNode.inputVolume, path)
                self.onParameterNodeModified()

    def onCreateOrgans(self) -> None:
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not start the organ masks."), waitCursor=True):
            editor = self.ui.organModelPathLineEdit if node.organSource == OrganSource.MODEL \
                else self.ui.organImportPathLineEdit
            if not editor.currentPath:
                raise ValueError(_("Choose the model folder or the masks to import."))
            if not Install.ensureDependencies(slicer.util.mainWindow()):
                return
            editor.addCurrentPathToHistory()
            volume = node.inputVolume
            job = self.logic.startOrgans(volume, node.organSource, editor.currentPath, node.device)

            def done():
                segmentation = self.logic.loadOrgans(volume)
                node.organSegmentation = segmentation
                return _("Organ masks: {n} structures.").format(n=segmentation.GetSegmentation().GetNumberOfSegments())

            self.jobs.run(_("Organ masks"), job, done)

    def onSegmentTumours(self) -> None:
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not start the tumour segmentation."), waitCursor=True):
            checkpoint = self.ui.checkpointPathLineEdit.currentPath
            if not checkpoint:
                raise ValueError(_("Choose a model checkpoint (final.pt of a training job)."))
            if not Install.ensureDependencies(slicer.util.mainWindow()):
                return
            self.ui.checkpointPathLineEdit.addCurrentPathToHistory()
            volume = node.inputVolume
            job = self.logic.startTumours(volume, checkpoint, node.organSegmentation, node.device)

            def done():
                segmentation, records = self.logic.loadTumours(volume)
                node.tumourSegmentation = segmentation
                organs = sorted({r.get("organ") or "?" for r in records})
                return _("Tumours: {n} found ({organs}).").format(n=len(records), organs=", ".join(organs) or "-")

            self.jobs.run(_("Tumours"), job, done)

    def onCompare(self) -> None:
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not start the comparison."), waitCursor=True):
            if not Install.ensureDependencies(slicer.util.mainWindow()):
                return
            volume = node.inputVolume
            job = self.logic.startCompare(volume, node.tumourSegmentation, node.organSegmentation)

            def done():
                self.showComparison(self.logic.comparisonRows(volume))
                return _("Comparison ready.")

            self.jobs.run(_("Comparison"), job, done)

    def clearComparison(self) -> None:
        """An empty table, no line, nothing to export."""
        self._rows, self._lineNode = [], None
        self.ui.comparisonTable.setRowCount(0)
        self.ui.comparisonSummaryLabel.text = ""
        self.ui.exportHtmlButton.enabled = self.ui.exportJsonButton.enabled = False

    def showComparison(self, rows) -> None:
        """Fill the table (one row per AI tumour or report tumour) and the summary line."""
        self._rows = list(rows)
        table = self.ui.comparisonTable
        table.setRowCount(0)
        counts = {}
        for row in self._rows:
            counts[row.flag] = counts.get(row.flag, 0) + 1
            index = table.rowCount
            table.insertRow(index)
            organ = (row.organ or "?") + (f" ({row.subsegment})" if row.subsegment else "")
            cells = ("-" if row.ai_id is None else str(row.ai_id), organ, formatDiameters(row.ai_diameters_mm),
                     formatDiameters(row.report_diameters_mm), flagText(row.flag))
            for column, text in enumerate(cells):
                item = qt.QTableWidgetItem(text)
                tip = "\n".join(t for t in (row.message, row.report_sentence) if t)
                if tip:
                    item.setToolTip(tip)
                table.setItem(index, column, item)
        table.resizeColumnsToContents()
        self.ui.comparisonSummaryLabel.text = ", ".join(f"{n} {flagText(f)}" for f, n in sorted(counts.items())) or \
            _("Nothing to compare: no AI tumour and no reported tumour.")
        self.ui.exportHtmlButton.enabled = self.ui.exportJsonButton.enabled = True

    def onComparisonRowSelected(self) -> None:
        rows = {item.row() for item in self.ui.comparisonTable.selectedItems()}
        if len(rows) != 1:
            return
        row = self._rows[rows.pop()]
        if self._lineNode is not None and slicer.mrmlScene.IsNodePresent(self._lineNode):
            slicer.mrmlScene.RemoveNode(self._lineNode)
        self._lineNode = self.logic.showComparisonRow(row)
        if self._lineNode is None:
            self.ui.statusLabel.text = _("This tumour is only in the report: there is nothing to show in the CT.")

    def onExport(self, fileName: str) -> None:
        source = self.logic.workFolder(self._parameterNode.inputVolume) / fileName
        suffix = Path(fileName).suffix
        path = Dialogs.chooseFile(_("Export the comparison"), f"*{suffix}", fileName, save=True, parent=self.parent)
        if path:
            with slicer.util.tryWithErrorDisplay(_("Could not export the comparison.")):
                shutil.copyfile(source, path)


class RSuperLogic(ScriptedLoadableModuleLogic):
    """The workflow without the GUI. Each step writes its inputs to the CT's work folder and starts an
    ``rsuper`` command (a :class:`rsuper.jobs.background.BackgroundJob`); ``load*`` turn its outputs into nodes.
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        Install.coreOnPath()

    def getParameterNode(self):
        return RSuperParameterNode(super().getParameterNode())

    @staticmethod
    def workFolder(volumeNode) -> Path:
        """``<Slicer temporary folder>/RSuper/<node id>``: the files of this CT's steps."""
        folder = Path(slicer.app.temporaryPath) / "RSuper" / volumeNode.GetID()
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _writeCt(self, volumeNode) -> Path:
        from RSuperLib import Nodes

        path = self.workFolder(volumeNode) / "ct.nii.gz"
        Nodes.writeVolumeNode(volumeNode, str(path))
        return path

    # ---- facts
    @staticmethod
    def facts(volumeNode):
        """The report facts stored with the CT (a facts dict), or ``None``."""
        if volumeNode is None:
            return None
        from RSuperLib import Nodes

        return Nodes.factsFromNode(volumeNode)

    @staticmethod
    def loadFactsFile(volumeNode, path: str) -> dict:
        """Store the facts of this CT from a ``facts.json`` or ``facts.jsonl`` (the record named like the CT,
        or the only one); returns them."""
        from rsuper.compare.inputs import read_facts
        from RSuperLib import Nodes

        records = read_facts(path)
        facts = records.get(volumeNode.GetName())
        if facts is None and len(records) == 1:
            facts = next(iter(records.values()))
        if facts is None:
            raise ValueError(_("{path} has {n} cases and none is named {name}.").format(
                path=path, n=len(records), name=volumeNode.GetName()))
        Nodes.storeFacts(volumeNode, facts.to_dict())
        return facts.to_dict()

    # ---- organs
    def startOrgans(self, volumeNode, source: OrganSource, path: str, device: str = "cpu"):
        """Start ``rsuper organs`` (an nnU-Net model folder, or masks to import) for the CT."""
        from rsuper.jobs.commands import organs_command

        folder = self.workFolder(volumeNode)
        ct = self._writeCt(volumeNode)
        out = folder / "organs.nii.gz"
        out.unlink(missing_ok=True)
        argv = organs_command(ct, out, model_dir=path if source == OrganSource.MODEL else None,
                              import_path=path if source == OrganSource.IMPORT else None, device=device,
                              python=Jobs.pythonExecutable())
        return Jobs.startJob(argv, folder / "organs.log")

    def loadOrgans(self, volumeNode):
        """The organ masks as a segmentation with named, coloured organs (R-Super label map)."""
        from rsuper.anatomy.labels import RSUPER_IMPORT_LABELS
        from RSuperLib import Nodes

        return Nodes.readSegmentationNode(self.workFolder(volumeNode) / "organs.nii.gz", RSUPER_IMPORT_LABELS,
                                          f"{volumeNode.GetName()} organs", referenceVolumeNode=volumeNode)

    def _writeOrgans(self, volumeNode, segmentationNode):
        """The organ segmentation as a label NIfTI on the CT's grid (``None`` without one)."""
        if segmentationNode is None:
            return None
        from rsuper.anatomy.labels import RSUPER_IMPORT_LABELS
        from RSuperLib import Nodes

        path = self.workFolder(volumeNode) / "organs-for-tumours.nii.gz"
        Nodes.writeSegmentationNode(segmentationNode, volumeNode, RSUPER_IMPORT_LABELS, path)
        return path

    # ---- tumours
    def startTumours(self, volumeNode, checkpoint: str, organSegmentation=None, device: str = "cpu"):
        """Start ``rsuper predict`` with a trained checkpoint (restricted to the organs when given)."""
        from rsuper.jobs.commands import predict_command

        folder = self.workFolder(volumeNode)
        ct = self._writeCt(volumeNode)
        organs = self._writeOrgans(volumeNode, organSegmentation)
        out = folder / "tumours.nii.gz"
        for stale in (out, folder / "tumours.json"):
            stale.unlink(missing_ok=True)
        argv = predict_command(checkpoint, ct, out, organs=organs, device=device, python=Jobs.pythonExecutable())
        return Jobs.startJob(argv, folder / "tumours.log")

    def loadTumours(self, volumeNode):
        """``(segmentation, records)``: one segment per AI tumour, named with its organ and long axis
        (``rsuper.compare.segments.ai_tumour_label_map``)."""
        from rsuper.compare.segments import ai_tumour_label_map
        from RSuperLib import Nodes

        folder = self.workFolder(volumeNode)
        records = json.loads((folder / "tumours.json").read_text(encoding="utf-8")).get("tumours", [])
        segmentation = Nodes.readSegmentationNode(folder / "tumours.nii.gz", ai_tumour_label_map(records),
                                                  f"{volumeNode.GetName()} tumours", referenceVolumeNode=volumeNode)
        segmentation.SetAttribute(TUMOURS_JSON_ATTRIBUTE, str(folder / "tumours.json"))
        return segmentation, records

    def _writeTumourSegmentation(self, volumeNode, segmentationNode) -> Path:
        """Any tumour segmentation as an instance label NIfTI (segment n -> value n, by
        ``rsuper.compare.segments.segment_label_map``) on the CT's grid."""
        from rsuper.compare.segments import segment_label_map
        from RSuperLib import Nodes

        segmentation = segmentationNode.GetSegmentation()
        names = [segmentation.GetNthSegment(index).GetName() for index in range(segmentation.GetNumberOfSegments())]
        path = self.workFolder(volumeNode) / "tumours-segmentation.nii.gz"
        Nodes.writeSegmentationNode(segmentationNode, volumeNode, segment_label_map(names), path)
        return path

    # ---- comparison
    def startCompare(self, volumeNode, tumourSegmentation, organSegmentation=None):
        """Start ``rsuper compare``: the AI tumours against the report facts stored with the CT.

        The tumours are the model's own records when the segmentation came from Segment tumours; any other
        tumour segmentation (e.g. one drawn or edited by hand) is measured from its segments, which needs
        the organ segmentation to name their organs.
        """
        from rsuper.jobs.commands import compare_command

        facts = self.facts(volumeNode)
        if facts is None:
            raise ValueError(_("No report facts are stored with this CT."))
        folder = self.workFolder(volumeNode)
        ct = self._writeCt(volumeNode)
        factsPath = folder / "facts.json"
        factsPath.write_text(json.dumps(facts, ensure_ascii=False), encoding="utf-8")
        organs = self._writeOrgans(volumeNode, organSegmentation)
        recordsPath = tumourSegmentation.GetAttribute(TUMOURS_JSON_ATTRIBUTE)
        if recordsPath and Path(recordsPath).is_file():
            tumours = Path(recordsPath)
        else:
            if organs is None:
                raise ValueError(_("Measuring a tumour segmentation needs the organ segmentation."))
            tumours = self._writeTumourSegmentation(volumeNode, tumourSegmentation)
        for stale in ("comparison.json", "comparison.html"):
            (folder / stale).unlink(missing_ok=True)
        argv = compare_command(tumours, ct, organs, factsPath, folder / "comparison.json",
                               html=folder / "comparison.html", python=Jobs.pythonExecutable())
        return Jobs.startJob(argv, folder / "compare.log")

    def comparisonRows(self, volumeNode) -> list:
        """The rows of the finished comparison (:class:`rsuper.compare.table.ComparisonRow`), with each AI
        tumour's centre and longest diameter taken from the tumour labels that were compared."""
        from rsuper.compare.table import read_comparison_rows

        return read_comparison_rows(self.workFolder(volumeNode) / "comparison.json")

    @staticmethod
    def showComparisonRow(row):
        """Centre the slice views on the tumour and draw its longest diameter, labelled with the AI and
        report values; returns the line node (``None`` for a tumour only the report has)."""
        from RSuperLib import Nodes

        if row.centroid_ras is not None:
            slicer.modules.markups.logic().JumpSlicesToLocation(*[float(v) for v in row.centroid_ras], True)
        if row.longest_axis_ras is None:
            return None
        label = _("AI {ai} mm / report {report} mm").format(ai=formatDiameters(row.ai_diameters_mm),
                                                            report=formatDiameters(row.report_diameters_mm))
        p1, p2 = row.longest_axis_ras
        return Nodes.addLineMeasurement(list(p1), list(p2), label)


class RSuperTest(ScriptedLoadableModuleTest):
    """Self-test of the whole workflow on a synthetic CT from ``rsuper.data.phantom``, through the panel."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_Workflow()

    def _waitForJob(self, widget, timeout_s: float = 600.0) -> None:
        start = time.monotonic()
        while widget.jobs.busy:
            self.assertLess(time.monotonic() - start, timeout_s, "the background job did not finish in time")
            slicer.app.processEvents()
            time.sleep(0.05)

    def _trainTinyModel(self, folder: Path) -> Path:
        """A few training steps on three small phantoms: a real checkpoint for ``rsuper predict``."""
        import yaml
        from rsuper.data.phantom import make_cohort
        from rsuper.jobs.commands import train_command

        make_cohort(3, 21, folder / "cohort", shape=(64, 56, 48), spacing_mm=(3.0, 3.0, 5.0), n_tumours=(1, 2))
        config = {
            "data": {"manifest": str(folder / "cohort" / "manifest.csv"), "cache": str(folder / "cache"),
                     "spacing_mm": [6.0, 6.0, 6.0], "patch_size": [32, 32, 32], "batch_size": 1, "workers": 0},
            "model": {"class": "rsuper.model.unet:UNet3D", "kwargs": {"features": [4, 8, 16], "deep_supervision": 1}},
            "optim": {"warmup_steps": 1},
            "stages": [{"name": "masks", "steps": 2, "lr": 1e-3, "data": "masks", "report_weight": 0.0}],
            "device": "cpu", "log_every": 1,
        }
        (folder / "train.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        job = Jobs.startJob(train_command(folder / "train.yaml", folder / "job", python=Jobs.pythonExecutable()))
        self.assertEqual(job.wait(timeout=900), 0, "\n".join(job.log_tail(20)))
        return folder / "job" / "checkpoints" / "final.pt"

    def test_Workflow(self):
        """Facts, imported organ masks, tumours of a real checkpoint, and the comparison of the true tumours."""
        self.assertTrue(Install.ensureDependencies(), "R-Super's Python dependencies are not installed")
        import numpy as np
        from rsuper.anatomy.labels import RSUPER_IMPORT_LABELS
        from rsuper.compare.segments import segment_label_map
        from rsuper.data.phantom import make_phantom
        from rsuper.report.rules import RulesExtractor
        from RSuperLib import Nodes

        folder = Path(tempfile.mkdtemp(prefix="RSuperTest-", dir=slicer.app.temporaryPath))
        phantom = make_phantom(7, shape=(64, 56, 48), spacing_mm=(3.0, 3.0, 5.0), n_tumours=(2, 2))
        paths = phantom.save(folder / "case")
        volume = Nodes.arrayToVolumeNode(phantom.ct, phantom.affine, phantom.case_id)
        Nodes.storeFacts(volume, RulesExtractor().extract(phantom.case_id, phantom.report).to_dict())

        slicer.util.selectModule("RSuper")  # entered, as by a user: the panel is bound
        widget = slicer.modules.rsuper.widgetRepresentation().self()
        node = widget._parameterNode
        node.inputVolume = volume
        node.device = "cpu"
        self.assertIn("2", widget.ui.factsStatusLabel.text)

        # Organ masks: import the phantom's organ labels in the background.
        node.organSource = OrganSource.IMPORT
        widget.ui.organImportPathLineEdit.currentPath = str(paths["organs"])
        widget.ui.createOrgansButton.click()
        self._waitForJob(widget)
        organs = node.organSegmentation
        self.assertIsNotNone(organs, widget.ui.statusLabel.text)
        self.assertTrue(organs.GetSegmentation().GetSegmentIdBySegmentName("pancreas_head"))
        back = Nodes.segmentationNodeToLabelMap(organs, volume, RSUPER_IMPORT_LABELS)
        self.assertTrue(np.array_equal(np.asarray(back), phantom.organs))
        self.delayDisplay("Organ masks imported")

        # Tumours: a real (tiny) checkpoint through rsuper predict; the result is a segmentation.
        checkpoint = self._trainTinyModel(folder / "training")
        widget.ui.checkpointPathLineEdit.currentPath = str(checkpoint)
        widget.ui.segmentTumoursButton.click()
        self._waitForJob(widget)
        self.assertIsNotNone(node.tumourSegmentation, widget.ui.statusLabel.text)
        self.assertTrue((RSuperLogic.workFolder(volume) / "tumours.json").is_file())
        self.delayDisplay("Tumours segmented")

        # Comparison: the phantom's true tumours as the "AI" tumours agree with the report.
        trueNames = [f"true tumour {value}" for value in range(1, int(phantom.tumours.max()) + 1)]
        truth = Nodes.labelMapToSegmentationNode(phantom.tumours, phantom.affine, segment_label_map(trueNames),
                                                 "true tumours", referenceVolumeNode=volume)
        node.tumourSegmentation = truth
        widget.ui.compareButton.click()
        self._waitForJob(widget)
        flags = [row.flag for row in widget._rows]
        self.assertEqual(flags.count("agrees"), len(phantom.tumour_specs), (flags, widget.ui.statusLabel.text))
        index = next(i for i, row in enumerate(widget._rows) if row.longest_axis_ras is not None)
        widget.ui.comparisonTable.selectRow(index)
        line = widget._lineNode
        self.assertIsNotNone(line)
        self.assertAlmostEqual(line.GetLineLengthWorld(), widget._rows[index].ai_diameters_mm[0],
                               delta=max(phantom.spacing_mm))
        self.assertTrue((RSuperLogic.workFolder(volume) / "comparison.html").is_file())
        self.delayDisplay("AI versus report: compared, row shown in the views")

