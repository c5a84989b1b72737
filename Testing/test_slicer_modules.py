"""What of the three Slicer modules runs without the Slicer application.

The module files import ``slicer.ScriptedLoadableModule``, ``qt`` and the parameter-node wrapper, which only
the application has, so they are not imported here. Instead:

* their calls into ``rsuper`` and ``RSuperLib`` are checked against the real code: every name they import
  exists, and every call's arguments bind to the real signature (a renamed function or keyword fails here,
  not in front of a user);
* their pure helpers and the logic methods that only call ``rsuper`` / ``RSuperLib`` are taken from the module
  file's syntax tree and run on real data: the training options reach ``rsuper`` in order, a training run
  started as the panel starts it is followed to its end; ``RSuperLib.Jobs`` starts children that import
  this ``rsuper``;
* the steps the modules and their self-tests chain (extract, organ import, compare) run as real
  ``rsuper`` child processes on a synthetic CT, and give what the self-tests assert inside Slicer;
* the widget life cycle the three panels share (``RSuperLib.WidgetBase``) runs on a real MRML scene, with
  stand-ins only for the application's widget base class, ``loadUI`` and the parameter-node wrapper.
"""

from __future__ import annotations

import ast
import csv
import importlib
import inspect
import json
import os
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest

from rsuper.data.phantom import make_phantom
from rsuper.jobs.background import BackgroundJob
from rsuper.jobs.commands import compare_command, extract_command, organs_command

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("RSuper", "RSuperReportExtract", "RSuperTrain")
LIB = ROOT / "RSuper" / "RSuperLib"
ENV = {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}


def _tree(module: str) -> ast.Module:
    path = ROOT / module / f"{module}.py"
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _definition(module: str, qualname: str) -> ast.FunctionDef | ast.ClassDef:
    node: ast.AST = _tree(module)
    for part in qualname.split("."):
        node = next(n for n in node.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part)
    return node


def _load(module: str, qualname: str, **names):
    """The function / class ``qualname`` of a module file, compiled alone (decorators dropped) with the
    standard-library modules it uses and ``names`` as its globals."""
    node = _definition(module, qualname)
    node.decorator_list = []
    namespace = {"Path": Path, "csv": csv, "os": os, "json": json, "_": str, **names}
    exec(compile(ast.Module([node], []), f"{module}.py:{qualname}", "exec"), namespace)
    return namespace[node.name]


# ------------------------------------------------------------------------------- calls into rsuper / RSuperLib


def _rsuper_imports(module: str) -> list[tuple[str, str]]:
    return [(n.module, alias.name) for n in ast.walk(_tree(module)) if isinstance(n, ast.ImportFrom)
            and n.module and n.module.split(".")[0] == "rsuper" for alias in n.names]


@pytest.mark.parametrize("module", MODULES)
def test_rsuper_names_the_modules_use_exist(module):
    imports = _rsuper_imports(module)
    assert imports
    for package, name in imports:
        assert hasattr(importlib.import_module(package), name), f"{module}: {package}.{name}"


@pytest.mark.parametrize("module", MODULES)
def test_rsuper_calls_bind_to_the_real_signatures(module):
    """Each call of an imported rsuper function or class binds (positional count, keyword names)."""
    real = {name: getattr(importlib.import_module(package), name) for package, name in _rsuper_imports(module)}
    checked = 0
    for call in ast.walk(_tree(module)):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in real):
            continue
        target = real[call.func.id]
        if not callable(target) or isinstance(target, dict):
            continue
        signature = inspect.signature(target)
        positional = [None] * len([a for a in call.args if not isinstance(a, ast.Starred)])
        keywords = {k.arg: None for k in call.keywords if k.arg is not None}
        signature.bind_partial(*positional, **keywords)  # TypeError on an unknown keyword or too many arguments
        checked += 1
    assert checked >= 2


def _lib_functions(name: str) -> set[str]:
    tree = ast.parse((LIB / f"{name}.py").read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


@pytest.mark.parametrize("module", MODULES)
def test_rsuperlib_names_the_modules_use_exist(module):
    """``from RSuperLib import X`` -> RSuperLib/X.py; ``X.f(...)`` -> ``f`` defined there; ``from RSuperLib.X
    import C`` -> ``C`` defined there."""
    tree = _tree(module)
    submodules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "RSuperLib":
            submodules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("RSuperLib."):
            sub = node.module.split(".", 1)[1]
            assert (LIB / f"{sub}.py").is_file(), sub
            for alias in node.names:
                assert alias.name in _lib_functions(sub), f"{module}: RSuperLib.{sub}.{alias.name}"
    assert submodules
    for sub in submodules:
        assert (LIB / f"{sub}.py").is_file(), f"{module}: RSuperLib/{sub}.py"
        defined = _lib_functions(sub)
        used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                and n.value.id == sub}
        assert used <= defined, (module, sub, used - defined)


# ------------------------------------------------------------------------------- pure helpers


def test_utf16_offsets_match_qt_positions():
    utf16Offset = _load("RSuperReportExtract", "utf16Offset")
    text = "Liver \U0001f600 lesion 2 cm"
    start = text.index("lesion")
    assert utf16Offset(text, start) == start + 1  # the emoji is two UTF-16 units
    assert utf16Offset("plain", 3) == 3


def test_diameters_and_durations_read_as_shown():
    formatDiameters = _load("RSuper", "formatDiameters")
    assert formatDiameters([24.4, 18.6]) == "24 x 19" and formatDiameters([]) == "-" and formatDiameters(None) == "-"
    formatDuration = _load("RSuperTrain", "formatDuration")
    assert formatDuration(3725) == "1 h 2 min" and formatDuration(75) == "1 min 15 s" and formatDuration(None) == "?"


def test_training_options_go_to_rsuper_in_order():
    """The panel's options reach ``rsuper.jobs.train_setup.training_overrides`` each as the option it names
    (test_jobs_train_setup checks what the trainer makes of them)."""
    from rsuper.jobs.train_setup import training_overrides

    overrides = _load("RSuperTrain", "RSuperTrainLogic.overrides")
    options = SimpleNamespace(masksSteps=300, reportsSteps=700, patchSize=64, batchSize=3, device="cuda",
                              reportWeight=0.25, volumeWeight=0.5, ballWeight=2.0)
    assert overrides(options) == training_overrides(masks_steps=300, reports_steps=700, patch_size=64, batch_size=3,
                                                    device="cuda", report_weight=0.25, volume_weight=0.5,
                                                    ball_weight=2.0)


def _data_folder(root: Path, n_mask: int = 2, n_report: int = 2) -> dict[str, object]:
    """Phantoms in the data-folder layout of docs/slicer.md (as the RSuperTrain self-test builds it)."""
    for sub in ("images", "labels", "organs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    phantoms = {}
    with open(root / "facts.jsonl", "w", encoding="utf-8") as facts:
        for index in range(n_mask + n_report):
            phantom = make_phantom(40 + index, shape=(64, 56, 48), spacing_mm=(3.0, 3.0, 5.0), n_tumours=(1, 2),
                                   case_id=f"case_{index:02d}")
            files = phantom.save(root / "tmp" / phantom.case_id)
            shutil.move(str(files["ct"]), root / "images" / f"{phantom.case_id}_0000.nii.gz")
            shutil.move(str(files["organs"]), root / "organs" / f"{phantom.case_id}.nii.gz")
            if index < n_mask:
                shutil.move(str(files["tumours"]), root / "labels" / f"{phantom.case_id}.nii.gz")
            else:
                facts.write(json.dumps(phantom.facts.to_dict()) + "\n")
            phantoms[phantom.case_id] = phantom
    shutil.rmtree(root / "tmp")
    return phantoms


def _train_logic():
    """``RSuperTrainLogic``'s start / resume / launch, compiled alone, on the real ``RSuperLib.Jobs``."""
    jobs = _rsuperlib("Jobs")
    logic = SimpleNamespace()
    for name in ("start", "resume", "_launch"):
        setattr(logic, name, _load("RSuperTrain", f"RSuperTrainLogic.{name}", Jobs=jobs, RSuperTrainLogic=logic))
    return logic


@pytest.mark.slow
def test_training_run_followed_to_its_end(tmp_path):
    """Start as the panel does (train.yaml of the data folder, the options as overrides, a quiet trainer),
    follow with TrainingRun: events come from the job folder, and the run ends with final.pt."""
    from rsuper.jobs.training import TrainingJobWatcher, TrainingRun

    _data_folder(tmp_path / "data", n_mask=2, n_report=1)
    job = tmp_path / "job"
    options = SimpleNamespace(masksSteps=2, reportsSteps=2, patchSize=32, batchSize=1, device="cpu",
                              reportWeight=0.1, volumeWeight=1.0, ballWeight=1.0)
    overrides = _load("RSuperTrain", "RSuperTrainLogic.overrides")(options)
    overrides.update({"data.spacing_mm": [6.0, 6.0, 6.0], "model.kwargs": {"features": [4, 8, 16],
                                                                           "deep_supervision": 1},
                      "data.workers": 0, "log_every": 1})
    process = _train_logic().start(str(tmp_path / "data"), str(job), overrides)
    assert process.argv[process.argv.index("--progress") + 1] == "none"
    run = TrainingRun(TrainingJobWatcher(job), process)
    events, waited = [], 0.0
    while run.running and waited < 900:
        events += run.poll()
        time.sleep(0.2)
        waited += 0.2
    events += run.poll()
    assert run.returncode == 0, "\n".join(process.log_tail(30) + run.watcher.log_tail(30))
    assert process.poll() == [] and (job / "launcher.log").is_file()  # nothing came through the pipe
    assert [e["event"] for e in events if e["event"] in ("finished",)] == ["finished"]
    assert max(e.get("global_step", 0) for e in events) == 4
    assert run.watcher.final_checkpoint() == job / "checkpoints" / "final.pt"
    # a watcher alone (re-attached) sees the same end
    alone = TrainingRun(TrainingJobWatcher(job))
    assert not alone.running and alone.returncode == 0 and len(alone.poll()) == len(events)


# ------------------------------------------------------------------------------- the chained steps


def _run(argv: list[str], timeout: float = 300) -> BackgroundJob:
    job = BackgroundJob(argv, env=ENV).start()
    code = job.wait(timeout=timeout)
    assert code == 0, "\n".join(job.log_tail(30))
    return job


def test_report_table_extraction_writes_facts_and_table(tmp_path):
    """The Report Extract module's background command (``--csv`` added) on two phantom reports."""
    from rsuper.report.table import read_facts_csv

    phantoms = [make_phantom(seed, shape=(64, 56, 48), spacing_mm=(3.0, 3.0, 5.0), n_tumours=(1, 2))
                for seed in (5, 6)]
    reports = tmp_path / "reports.csv"
    with open(reports, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["case_id", "report"]] + [[p.case_id, p.report] for p in phantoms])
    argv = extract_command(reports, tmp_path / "facts.jsonl") + ["--csv", str(tmp_path / "facts.csv")]
    job = _run(argv)
    assert any(e.get("event") == "end" for e in job.poll())
    table = {f.case_id: f for f in read_facts_csv(tmp_path / "facts.csv")}
    for phantom in phantoms:
        assert sorted(t.diameters_mm[0] for t in table[phantom.case_id].tumours) == \
            sorted(t.diameters_mm[0] for t in phantom.facts.tumours)


@pytest.mark.slow
def test_workflow_of_the_rsuper_self_test(tmp_path):
    """What RSuperTest asserts inside Slicer, on the same phantom: imported organ masks are the phantom's,
    the phantom's true tumours agree with its report, and each AI row's line is its long axis."""
    from rsuper.compare.table import comparison_rows
    from rsuper.report.rules import RulesExtractor

    phantom = make_phantom(7, shape=(64, 56, 48), spacing_mm=(3.0, 3.0, 5.0), n_tumours=(2, 2))
    paths = phantom.save(tmp_path / "case")
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(RulesExtractor().extract(phantom.case_id, phantom.report).to_dict()))

    organs = tmp_path / "organs.nii.gz"
    _run(organs_command(paths["ct"], organs, import_path=paths["organs"]))
    assert np.array_equal(np.asarray(nib.load(organs).dataobj), phantom.organs)

    out = tmp_path / "comparison.json"
    _run(compare_command(paths["tumours"], paths["ct"], organs, facts, out, html=tmp_path / "comparison.html"))
    image = nib.load(paths["tumours"])
    rows = comparison_rows(json.loads(out.read_text()), labels=np.asarray(image.dataobj), affine=image.affine)
    assert [r.flag for r in rows].count("agrees") == len(phantom.tumour_specs)
    for row in rows:
        if row.longest_axis_ras is not None:
            length = float(np.linalg.norm(np.subtract(*row.longest_axis_ras)))
            assert abs(length - row.ai_diameters_mm[0]) <= max(phantom.spacing_mm)
    assert (tmp_path / "comparison.html").stat().st_size > 1000


def _rsuperlib(name: str):
    """An ``RSuperLib`` file that needs no Slicer application at import (as Slicer imports it: by name)."""
    if str(LIB.parent) not in sys.path:
        sys.path.insert(0, str(LIB.parent))
    return importlib.import_module(f"RSuperLib.{name}")


def test_module_children_run_this_rsuper(tmp_path):
    """RSuperLib.Jobs starts children with the interpreter rsuper.jobs.environment picks and an environment in
    which a child without site-packages (``-S``) imports this very rsuper."""
    from rsuper.jobs.environment import child_python

    jobs = _rsuperlib("Jobs")
    assert jobs.pythonExecutable() == child_python()
    job = jobs.startJob([sys.executable, "-S", "-c", "import rsuper; print(rsuper.__file__)"], tmp_path / "child.log")
    assert job.wait(timeout=60) == 0, job.log_tail()
    assert Path(job.log_tail(1)[0]).resolve() == (ROOT / "rsuper" / "__init__.py").resolve()
    assert (tmp_path / "child.log").read_text().strip() == job.log_tail(1)[0]


def test_self_test_training_config_is_valid(tmp_path):
    """The configuration RSuperTest trains its tiny checkpoint with (built in ``_trainTinyModel``) is one that
    ``rsuper train`` accepts: a renamed key or section fails here, not inside Slicer."""
    from rsuper.train.config import config_from_dict

    method = _definition("RSuper", "RSuperTest._trainTinyModel")
    assign = next(n for n in ast.walk(method) if isinstance(n, ast.Assign)
                  and [ast.unparse(t) for t in n.targets] == ["config"])
    config = eval(compile(ast.Expression(assign.value), "RSuper.py:_trainTinyModel", "eval"), {"folder": tmp_path})
    parsed = config_from_dict(config)
    assert parsed.data.manifest == str(tmp_path / "cohort" / "manifest.csv")
    assert [s.steps for s in parsed.stages] == [2] and parsed.device == "cpu" and parsed.log_every == 1
    assert tuple(parsed.data.patch_size) == (32, 32, 32)


# ------------------------------------------------------------------------------- the shared widget base


class _ModuleWidgetStandIn:
    """Stand-in for the part of Slicer's ``ScriptedLoadableModuleWidget`` a subclass relies on (it needs the
    application): the module name from the class name, the parent widget, the layout, the resource path."""

    def __init__(self, parent=None):
        super().__init__()
        self.moduleName = type(self).__name__[:-len("Widget")]
        self.parent = parent
        self.layout = SimpleNamespace(addWidget=lambda widget: None)

    def setup(self):
        pass

    def cleanup(self):
        pass

    def resourcePath(self, name):
        return str(ROOT / self.moduleName / "Resources" / name)


def _widget_base_module(monkeypatch, scene, loaded):
    """RSuperLib/WidgetBase.py on the real MRML scene and VTKObservationMixin of slicer-core, with stand-ins for
    the application-only parts (the widget base class, loadUI, childWidgetVariables, translation)."""
    import types
    import xml.etree.ElementTree as ET

    slicer = pytest.importorskip("slicer")
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("slicer-core (MRML classes) is not installed")

    def loadUI(path):
        loaded.append(Path(path))
        return SimpleNamespace(path=Path(path), setMRMLScene=lambda s: loaded.append(s))

    def childWidgetVariables(widget):
        names = {w.get("name") for w in ET.parse(widget.path).getroot().iter("widget")}
        return SimpleNamespace(**{name: SimpleNamespace(name=name) for name in names})

    for name, attributes in (("slicer.ScriptedLoadableModule", {"ScriptedLoadableModuleWidget": _ModuleWidgetStandIn}),
                             ("slicer.i18n", {"tr": str})):
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    monkeypatch.setattr(slicer.util, "loadUI", loadUI, raising=False)
    monkeypatch.setattr(slicer.util, "childWidgetVariables", childWidgetVariables, raising=False)
    spec = importlib.util.spec_from_file_location("_WidgetBaseUnderTest", LIB / "WidgetBase.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _WrapperStandIn:
    """A ``@parameterNodeWrapper`` object (one per ``getParameterNode()`` call, as Slicer's): observers go to the
    real parameter node; ``connectGui`` / ``disconnectGui`` are counted per node in ``bound``."""

    def __init__(self, node, bound):
        self.parameterNode, self.bound = node, bound

    def connectGui(self, ui):
        tag = object()
        self.bound[tag] = self.parameterNode
        return tag

    def disconnectGui(self, tag):
        self.bound.pop(tag, None)

    def AddObserver(self, event, callback, priority=0.0):
        return self.parameterNode.AddObserver(event, callback, priority)

    def RemoveObserver(self, tag):
        self.parameterNode.RemoveObserver(tag)


def test_widget_base_life_cycle(monkeypatch):
    """The template life cycle of RSuperLib.WidgetBase on a real MRML scene: hooks in order, the panel of the
    module's .ui, the parameter node bound and observed only while the module is shown, a new one after the
    scene closes (only for a shown module), nothing observed after cleanup; and no warning on the way."""
    import warnings

    import slicer

    scene = slicer.vtkMRMLScene()
    loaded, calls, modified, bound = [], [], [], {}
    base = _widget_base_module(monkeypatch, scene, loaded)

    def getParameterNode():
        nodes = [scene.GetNthNodeByClass(i, "vtkMRMLScriptedModuleNode")
                 for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode"))]
        return _WrapperStandIn(nodes[0] if nodes else scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode"), bound)

    class RSuperWidget(base.WidgetBase):
        def createLogic(self):
            calls.append("createLogic")
            return SimpleNamespace(getParameterNode=getParameterNode)

        def setupPanel(self):
            calls.append(("setupPanel", self.logic is not None, self._parameterNode))

        def setDefaultParameters(self, parameterNode):
            calls.append(("defaults", parameterNode.parameterNode))

        def onParameterNodeModified(self, caller=None, event=None):
            modified.append(self._parameterNode.parameterNode if self._parameterNode else None)

    def bound_nodes():
        return sorted(n.GetID() for n in bound.values())

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parent = SimpleNamespace(isEntered=True)
        widget = RSuperWidget(parent)
        widget.setup()
        first = widget._parameterNode.parameterNode
        assert calls == ["createLogic", ("setupPanel", True, None), ("defaults", first)]
        assert loaded == [ROOT / "RSuper" / "Resources" / "UI" / "RSuper.ui", scene]
        assert "comparisonTable" in vars(widget.ui) and bound_nodes() == [first.GetID()]
        del modified[:]
        first.Modified()
        assert modified == [first]

        widget.exit()  # another module shown
        first.Modified()
        assert modified == [first] and bound_nodes() == []
        widget.enter()
        widget.enter()  # entering twice binds once
        assert bound_nodes() == [first.GetID()]
        del modified[:]
        first.Modified()
        assert modified == [first]

        scene.Clear(0)  # the module is shown: a new parameter node at once
        second = widget._parameterNode.parameterNode
        assert second is not first and bool(scene.IsNodePresent(second)) and bound_nodes() == [second.GetID()]
        del modified[:]
        first.Modified()
        second.Modified()
        assert modified == [second]

        widget.exit()
        parent.isEntered = False
        scene.Clear(0)  # not shown: the panel keeps no parameter node until entered
        assert widget._parameterNode is None and bound_nodes() == []
        widget.enter()
        third = widget._parameterNode.parameterNode
        assert third is not second and bound_nodes() == [third.GetID()]

        widget.cleanup()
        assert widget.Observations == []
        del modified[:]
        scene.Clear(0)
        third.Modified()
        assert modified == []
