"""Render the three Slicer modules' panels (their Qt Designer ``.ui`` files) to PNG figures, without 3D Slicer.

A documentation tool, not a project dependency. It needs PySide6 (plus numpy and matplotlib for the
loss-curve sample), best in a throwaway virtual environment::

    python3 -m venv /tmp/shotvenv
    /tmp/shotvenv/bin/pip install PySide6-Essentials numpy matplotlib
    QT_QPA_PLATFORM=offscreen /tmp/shotvenv/bin/python docs/tools/panel_figures.py   # writes docs/images/panel-*.png

CTK and qMRML widgets exist only inside Slicer, so each is replaced by the nearest Qt widget before the
file is loaded: ``ctkCollapsibleButton`` -> a ``QGroupBox`` styled like Slicer's collapsible section header,
``qMRMLNodeComboBox`` -> a ``QComboBox`` holding a sample node name, ``ctkPathLineEdit`` -> an editable
``QComboBox`` with a browse button, ``qMRMLWidget`` -> ``QWidget``. Everything else (layout, labels,
tool tips, object names) comes from the ``.ui`` file as Slicer loads it.

The panels are filled with sample content so the figures show them in use: the report tab holds a
report from ``rsuper/report/examples/reports.csv`` with the facts the real offline rules extractor finds
in it (highlighted as the module does); the comparison and training samples are illustrative values.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt  # noqa: E402
from PySide6.QtGui import QColor, QFont, QPalette, QPixmap, QTextCharFormat, QTextCursor  # noqa: E402
from PySide6.QtUiTools import QUiLoader  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QAbstractItemView,
    QApplication,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QStyleFactory,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QWidget,
)

MODULES = ("RSuper", "RSuperReportExtract", "RSuperTrain")
PANEL_WIDTH = 440

#: Sample node names shown by the node selectors (objectName -> text).
SAMPLE_NODES = {
    "inputVolumeSelector": "CT abdomen",
    "volumeSelector": "CT abdomen",
    "organSegmentationSelector": "CT abdomen organs",
    "tumourSegmentationSelector": "CT abdomen tumours",
}
#: Sample paths shown by the path editors (objectName -> text).
SAMPLE_PATHS = {
    "organModelPathLineEdit": "~/models/Dataset300_OrganSubSegments",
    "organImportPathLineEdit": "",
    "checkpointPathLineEdit": "~/runs/pancreas/checkpoints/final.pt",
    "reportsPathLineEdit": "~/study/reports.csv",
    "outputFolderPathLineEdit": "~/study/facts",
    "modelPathLineEdit": "",
    "dataFolderPathLineEdit": "~/study/train-data",
    "jobFolderPathLineEdit": "~/runs/pancreas",
    "initCheckpointPathLineEdit": "",
}
#: The example report shown in the Report Extract figure (two tumours in two organs, normal organs).
SAMPLE_REPORT = "demo_006"
#: Colours of the evidence highlights, one per tumour row (the module uses the same kind of palette).
HIGHLIGHTS = ("#ffe08a", "#b8e6b0", "#a8d4f5", "#f5b8d0", "#d8c4f0")

SECTION_STYLE = """
QGroupBox {
    border: 1px solid #b4b4b4; border-radius: 3px; margin-top: 24px; padding-top: 4px;
}
QGroupBox::title {
    subcontrol-origin: margin; subcontrol-position: top left; left: 0px; top: 0px;
    padding: 3px 8px; min-width: 404px;
    border: 1px solid #b4b4b4; border-radius: 3px;
    background: qlineargradient(x1:0, y1:0, x2:0, y2:1, stop:0 #fbfbfb, stop:1 #e4e4e4);
}
"""


class PathLineEditStandIn(QWidget):
    """Stand-in for ``ctkPathLineEdit``: an editable combo box (the path history) and a browse button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.combo = QComboBox(self)
        self.combo.setEditable(True)
        self.combo.setSizePolicy(self.combo.sizePolicy().horizontalPolicy(), self.combo.sizePolicy().verticalPolicy())
        layout.addWidget(self.combo, 1)
        browse = QToolButton(self)
        browse.setText("...")
        layout.addWidget(browse)

    def setPath(self, path: str) -> None:
        self.combo.setEditText(path)


def translate_ui(path: Path) -> tuple[bytes, set[str]]:
    """The ``.ui`` file with CTK/qMRML classes replaced by Qt stand-ins; also the names of collapsed sections."""
    tree = ET.parse(path)
    root = tree.getroot()
    collapsed: set[str] = set()
    for widget in root.iter("widget"):
        cls = widget.get("class")
        props = {p.get("name"): p for p in widget.findall("property")}
        if cls == "qMRMLWidget":
            widget.set("class", "QWidget")
        elif cls == "ctkCollapsibleButton":
            widget.set("class", "QGroupBox")
            if "text" in props:
                props["text"].set("name", "title")
            if "collapsed" in props:
                if props["collapsed"].findtext("bool") == "true":
                    collapsed.add(widget.get("name"))
                widget.remove(props["collapsed"])
        elif cls == "qMRMLNodeComboBox":
            widget.set("class", "QComboBox")
            for name in ("nodeTypes", "showChildNodeTypes", "noneEnabled", "addEnabled", "removeEnabled",
                         "noneDisplay"):
                if name in props:
                    widget.remove(props[name])
        elif cls == "ctkPathLineEdit":
            widget.set("class", "PathLineEditStandIn")
            for name in ("filters", "nameFilters", "settingKey"):
                if name in props:
                    widget.remove(props[name])
    for tag in ("customwidgets", "connections"):
        for element in root.findall(tag):
            root.remove(element)
    return ET.tostring(root, encoding="utf-8"), collapsed


def load_panel(path: Path) -> QWidget:
    """Load a translated ``.ui`` file into a widget (collapsed sections show their header only)."""
    data, collapsed = translate_ui(path)
    loader = QUiLoader()
    loader.registerCustomWidget(PathLineEditStandIn)
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    buffer.open(QIODevice.ReadOnly)
    panel = loader.load(buffer)
    if panel is None:
        raise RuntimeError(f"{path}: {loader.errorString()}")
    panel.setStyleSheet(SECTION_STYLE)
    for box in panel.findChildren(QGroupBox):
        title = box.title()
        if box.objectName() in collapsed:
            box.setTitle(f"\u25b8  {title}")
            for child in box.findChildren(QWidget):
                child.hide()
            box.setStyleSheet("QGroupBox { border: none; margin-top: 24px; padding-top: 0px; }")
            box.setFixedHeight(26)
        else:
            box.setTitle(f"\u25be  {title}")
    for name, text in SAMPLE_NODES.items():
        combo = panel.findChild(QComboBox, name)
        if combo is not None:
            combo.addItem(text)
    for name, text in SAMPLE_PATHS.items():
        editor = panel.findChild(PathLineEditStandIn, name)
        if editor is not None:
            editor.setPath(text)
    return panel


def fill_table(table: QTableWidget, rows: list[list[str]], headers: list[str] | None = None,
               colours: list[str] | None = None, colour_column: int = 0) -> None:
    """Put ``rows`` into ``table``, columns sized to their contents, the table as tall as its rows.

    ``colours``: background of cell ``colour_column`` per row (cycled).
    """
    if headers is not None:
        table.setColumnCount(len(headers))
        table.setHorizontalHeaderLabels(headers)
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = QTableWidgetItem(text)
            if colours and c == colour_column:
                item.setBackground(QColor(colours[r % len(colours)]))
            table.setItem(r, c, item)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeToContents)
    header.setStretchLastSection(True)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    table.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    table.setSelectionMode(QAbstractItemView.NoSelection)


def fit_tables(panel: QWidget) -> None:
    """Make every filled table exactly as tall as its header and rows (call once the panel is shown)."""
    for table in panel.findChildren(QTableWidget):
        if table.rowCount() == 0:
            continue
        table.resizeRowsToContents()
        rows = sum(table.rowHeight(r) for r in range(table.rowCount()))
        table.setFixedHeight(table.horizontalHeader().height() + rows + 2 * table.frameWidth() + 2)


def _progress(panel: QWidget, value: int, text: str | None = None) -> None:
    from PySide6.QtWidgets import QProgressBar

    bar = panel.findChild(QProgressBar, "progressBar")
    bar.setValue(value)
    if text is not None:
        bar.setFormat(text)


def _label(panel: QWidget, name: str, text: str) -> None:
    from PySide6.QtWidgets import QLabel

    panel.findChild(QLabel, name).setText(text)


def sample_report_extract(panel: QWidget) -> None:
    """A real example report, the rules extractor's facts, evidence highlighted as the module does."""
    from PySide6.QtWidgets import QLineEdit, QPushButton, QTextEdit

    from rsuper.report.rules import RulesExtractor

    with open(ROOT / "rsuper/report/examples/reports.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    case = next(row for row in rows if row["case_id"] == SAMPLE_REPORT)
    facts = RulesExtractor().extract(case["case_id"], case["report"])
    panel.findChild(QLineEdit, "caseIdLineEdit").setText(facts.case_id)
    editor = panel.findChild(QTextEdit, "reportTextEdit")
    editor.setPlainText(case["report"])
    cursor = QTextCursor(editor.document())
    for index, tumour in enumerate(facts.tumours):
        if tumour.evidence is None:
            continue
        fmt = QTextCharFormat()
        fmt.setBackground(QColor(HIGHLIGHTS[index % len(HIGHLIGHTS)]))
        cursor.setPosition(tumour.evidence.start)
        cursor.setPosition(tumour.evidence.end, QTextCursor.KeepAnchor)
        cursor.mergeCharFormat(fmt)
    editor.setMinimumHeight(190)
    table_rows = []
    for t in facts.tumours:
        count = f">={t.count}" if t.count_is_lower_bound else str(t.count)
        dims = " x ".join(f"{d:g}" for d in t.diameters_mm) or "?"
        table_rows.append([facts.case_id, t.organ, t.subsegment or "", dims, count, t.attenuation, t.malignancy])
    table = panel.findChild(QTableWidget, "factsTable")
    fill_table(table, table_rows, colours=list(HIGHLIGHTS), colour_column=1)
    table.setColumnHidden(0, True)  # as the module does for a single report
    _label(panel, "normalOrgansLabel", "Normal organs: " + (", ".join(facts.normal_organs) or "-"))
    panel.findChild(QWidget, "warningsLabel").setVisible(bool(facts.warnings))
    _label(panel, "statusLabel", f"Extracted {len(facts.tumours)} tumour record(s) with the offline rules; "
                                 "stored with CT abdomen.")
    _progress(panel, 100)
    for name in ("saveJsonButton", "saveCsvButton"):
        panel.findChild(QPushButton, name).setEnabled(True)
    for name in ("modelPathLabel", "modelPathLineEdit", "serverUrlLabel", "serverUrlLineEdit", "serverModelLabel",
                 "serverModelLineEdit"):
        panel.findChild(QWidget, name).hide()


def sample_rsuper(panel: QWidget) -> None:
    """Illustrative comparison rows (what the table shows after Compare)."""
    from PySide6.QtWidgets import QPushButton

    _label(panel, "factsStatusLabel", "2 tumours reported")
    panel.findChild(QWidget, "organImportLabel").hide()
    panel.findChild(QWidget, "organImportPathLineEdit").hide()
    rows = [
        ["1", "pancreas (body)", "24 x 19", "25 x 20", "agrees"],
        ["2", "liver (segment_7)", "13 x 11", "-", "ai_only"],
        ["-", "kidney_left", "-", "18", "report_only"],
    ]
    fill_table(panel.findChild(QTableWidget, "comparisonTable"), rows)
    _label(panel, "comparisonSummaryLabel", "1 agrees, 1 AI only, 1 report only. Click a row to centre the views "
                                            "on the tumour and draw its longest diameter.")
    _label(panel, "statusLabel", "Tumours: 2 found (liver 1, pancreas 1).")
    _progress(panel, 100)
    for name in ("exportHtmlButton", "exportJsonButton"):
        panel.findChild(QPushButton, name).setEnabled(True)


def _loss_events(steps: int = 1800, every: int = 20) -> list[dict]:
    """Illustrative progress events of a run in its second stage (decaying losses with noise)."""
    import numpy as np

    rng = np.random.default_rng(0)
    events = []
    for step in range(every, steps + 1, every):
        seg = 0.9 * math.exp(-step / 500) + 0.25 + 0.04 * rng.standard_normal()
        terms = {"seg_bce/head0": seg * 0.4, "seg_dice/head0": seg * 0.6}
        loss = seg
        if step > 1000:
            ball = 0.5 * math.exp(-(step - 1000) / 400) + 0.2 + 0.03 * rng.standard_normal()
            volume = 0.3 * math.exp(-(step - 1000) / 300) + 0.1 + 0.02 * rng.standard_normal()
            terms.update({"ball_tversky/head0": ball, "volume/head1": volume})
            loss += 0.1 * (ball + volume)
        events.append({"event": "progress", "global_step": step, "loss": loss, "terms": terms})
    return events


def sample_train(panel: QWidget) -> None:
    """Illustrative data summary and a run in progress (loss curve drawn by rsuper's own plot function)."""
    from PySide6.QtWidgets import QLabel, QPlainTextEdit, QPushButton

    from rsuper.evaluate.plots import plot_loss_curves

    fill_table(panel.findChild(QTableWidget, "summaryTable"),
               [["liver", "12", "140", "3"], ["pancreas", "20", "96", "0"], ["kidney", "8", "61", "2"]],
               headers=["Organ", "Mask cases", "Report cases", "Unlabelled"])
    _label(panel, "summaryLabel", "40 mask cases, 297 report cases, 5 without tumour supervision. "
                                  "2 problems: case_0113 has no organ mask; case_0240 facts name an unknown organ.")
    _label(panel, "stateLabel", "running - stage reports, step 1,800 of 40,000 (epoch 7), 2.1 samples/s, "
                                "ETA 9 h 12 min")
    _progress(panel, round(100 * 1800 / 40000))
    _label(panel, "lossLabel", "loss 0.318 - seg_bce 0.11, seg_dice 0.17, ball_tversky 0.24, volume 0.12")
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_loss_curves(_loss_events(), Path(tmp) / "loss.png", title="Training loss")
        pixmap = QPixmap(str(png))
    plot = panel.findChild(QLabel, "lossPlotLabel")
    scaled = pixmap.scaledToWidth(PANEL_WIDTH - 50, Qt.SmoothTransformation)
    plot.setPixmap(scaled)
    plot.setMinimumHeight(scaled.height() + 4)  # as the module does when it shows a new curve
    panel.findChild(QPlainTextEdit, "logTextEdit").setPlainText(
        "step 1780/40000 loss 0.3221 lr 9.6e-05\nstep 1790/40000 loss 0.3105 lr 9.6e-05\n"
        "step 1800/40000 loss 0.3180 lr 9.6e-05\ncheckpoint saved: checkpoints/latest.pt")
    panel.findChild(QPushButton, "startButton").setEnabled(False)
    panel.findChild(QPushButton, "stopButton").setEnabled(True)


SAMPLES = {"RSuper": sample_rsuper, "RSuperReportExtract": sample_report_extract, "RSuperTrain": sample_train}


def render(module: str, out_dir: Path) -> Path:
    """Write ``out_dir/panel-<module>.png`` and return its path."""
    panel = load_panel(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    SAMPLES[module](panel)
    panel.setFixedWidth(PANEL_WIDTH)
    panel.show()
    QApplication.processEvents()
    if QApplication.focusWidget() is not None:
        QApplication.focusWidget().clearFocus()  # no text cursor in the figure
    fit_tables(panel)
    QApplication.processEvents()
    for layout in [w.layout() for w in panel.findChildren(QWidget) if w.layout() is not None]:
        layout.invalidate()
    layout = panel.layout()
    layout.activate()
    height = layout.minimumSize().height()
    if layout.hasHeightForWidth():  # wrapped labels need more lines than the plain minimum assumes
        height = max(height, layout.totalHeightForWidth(PANEL_WIDTH))
    panel.setFixedHeight(height)
    QApplication.processEvents()
    out = out_dir / f"panel-{module}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not panel.grab().save(str(out)):
        raise RuntimeError(f"could not write {out}")
    panel.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="folder for panel-*.png")
    parser.add_argument("modules", nargs="*", default=list(MODULES), help="modules to render (default: all)")
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication([])
    app.setStyle(QStyleFactory.create("Fusion"))
    app.setPalette(QPalette(QColor("#efefef")))
    app.setFont(QFont("DejaVu Sans", 9))
    for module in args.modules:
        print(render(module, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
