"""The Slicer extension tree is consistent: what CMake ships, the panels (.ui), the module files, the catalog entry.

No 3D Slicer here: everything is read as files (CMake lists, Qt Designer XML, Python syntax trees, JSON).
"""

import ast
import fnmatch
import json
import py_compile
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("RSuper", "RSuperReportExtract", "RSuperTrain")
#: The widget base class the three module panels share (RSuper/RSuperLib/WidgetBase.py).
WIDGET_BASE = ROOT / "RSuper" / "RSuperLib" / "WidgetBase.py"
#: Modules a module file may import at its top level (besides the standard library). Not rsuper: its
#: dependencies may not be installed yet when Slicer loads the module, so it is imported inside functions.
ALLOWED_TOP_LEVEL = {"slicer", "qt", "ctk", "vtk", "RSuperLib"}
#: Keys of a catalog entry (ExtensionsIndex schema slicer-extension-catalog-entry v1.0.2) and the required ones.
CATALOG_KEYS = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
                "dicom_support_rule", "build_subdirectory", "enabled", "tier"}
CATALOG_REQUIRED = {"$schema", "category", "scm_url"}
#: Widget classes a parameter-node field of each type can be bound to (slicer.parameterNodeWrapper connectors).
BINDABLE = {"int": {"QSpinBox", "QSlider", "QDoubleSpinBox", "ctkSliderWidget"},
            "float": {"QDoubleSpinBox", "ctkSliderWidget", "ctkDoubleSpinBox"},
            "str": {"QLineEdit", "QLabel", "QTextEdit"}, "bool": {"QCheckBox", "QPushButton"},
            "enum": {"QComboBox", "ctkComboBox"}, "choice": {"QComboBox", "ctkComboBox"},
            "node": {"qMRMLNodeComboBox"}, "path": {"ctkPathLineEdit", "ctkDirectoryButton"}}


def _set_list(cmake: str, variable: str, module: str = "") -> list[str]:
    m = re.search(rf"set\({variable}\s+(.*?)\)", cmake, re.S)
    assert m, f"{variable} not set"
    return [x.replace("${MODULE_NAME}", module) for x in m.group(1).split()]


def _cmake_var(cmake: str, name: str) -> str:
    m = re.search(rf'set\({name}\s+"([^"]*)"\)', cmake)
    assert m, f"{name} not set"
    return m.group(1)


def _files(folder: Path, pattern: str = "*") -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob(pattern)
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def _ui(module: str) -> ET.Element:
    return ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui").getroot()


def _object_names(module: str) -> dict[str, str]:
    """objectName -> class of every widget (and layout) in the module's .ui."""
    root = _ui(module)
    names = {w.get("name"): w.get("class") for w in root.iter("widget")}
    names.update({w.get("name"): w.get("class") for w in root.iter("layout")})
    return names


def _tree(module: str) -> ast.Module:
    path = ROOT / module / f"{module}.py"
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# ---------------------------------------------------------------------------------------------- CMake


def test_top_level_cmake_adds_every_module():
    top = (ROOT / "CMakeLists.txt").read_text()
    assert "project(RSuper)" in top and 'EXTENSION_CATEGORY "Segmentation"' in top
    for mod in MODULES:
        assert f"add_subdirectory({mod})" in top


def test_every_module_file_is_listed():
    for mod in MODULES:
        folder = ROOT / mod
        cmake = (folder / "CMakeLists.txt").read_text()
        assert f"set(MODULE_NAME {mod})" in cmake
        scripts = _set_list(cmake, "MODULE_PYTHON_SCRIPTS", mod)
        assert len(scripts) == len(set(scripts)), (mod, "listed twice")
        assert _files(folder, "*.py") == set(scripts), (mod, _files(folder, "*.py") ^ set(scripts))
        resources = _set_list(cmake, "MODULE_PYTHON_RESOURCES", mod)
        on_disk = _files(folder / "Resources")
        assert {f"Resources/{p}" for p in on_disk} == set(resources), (mod, on_disk, resources)
        assert f"Resources/UI/{mod}.ui" in resources and f"Resources/Icons/{mod}.png" in resources
        assert "slicerMacroBuildScriptedModule(" in cmake and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" \
            in cmake


def test_adapter_package_ships_with_the_main_module():
    """RSuperLib (imported by all three modules) is listed, __init__ included, in RSuper/CMakeLists.txt."""
    scripts = _set_list((ROOT / "RSuper" / "CMakeLists.txt").read_text(), "MODULE_PYTHON_SCRIPTS", "RSuper")
    assert "RSuperLib/__init__.py" in scripts
    assert {s for s in scripts if s.startswith("RSuperLib/")} == \
        {f"RSuperLib/{p}" for p in _files(ROOT / "RSuper" / "RSuperLib", "*.py")}


def test_core_package_ships_inside_the_extension():
    """Every file of rsuper/ is listed in the top CMakeLists, and the lists go to the scripted-modules folder."""
    top = (ROOT / "CMakeLists.txt").read_text()
    scripts = _set_list(top, "RSUPER_CORE_SCRIPTS")
    resources = _set_list(top, "RSUPER_CORE_RESOURCES")
    on_disk = {f"rsuper/{p}" for p in _files(ROOT / "rsuper")}
    assert set(scripts) == {p for p in on_disk if p.endswith(".py")}, set(scripts) ^ {p for p in on_disk
                                                                                       if p.endswith(".py")}
    assert set(resources) == {p for p in on_disk if not p.endswith(".py")}, set(resources) ^ on_disk
    call = re.search(r"ctkMacroCompilePythonScript\((.*?)\)\n", top, re.S)
    assert call, "no ctkMacroCompilePythonScript call for rsuper/"
    args = " ".join(call.group(1).split())
    for part in ('SCRIPTS "${RSUPER_CORE_SCRIPTS}"', 'RESOURCES "${RSUPER_CORE_RESOURCES}"',
                 "SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR}",
                 "DESTINATION_DIR ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}",
                 "INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}", "NO_INSTALL_SUBDIR"):
        assert part in args, part
    assert top.index("ctkMacroCompilePythonScript(") > top.index("include(${Slicer_USE_FILE})")


def test_core_resources_are_also_pip_package_data():
    """What the extension ships beside the code, the pip package ships too (pyproject package-data)."""
    tomllib = pytest.importorskip("tomllib")
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    resources = _set_list((ROOT / "CMakeLists.txt").read_text(), "RSUPER_CORE_RESOURCES")
    for resource in resources:
        parts = resource.split("/")
        matched = any(
            fnmatch.fnmatch("/".join(parts[len(package.split(".")):]), pattern)
            for package, patterns in package_data.items() if parts[:len(package.split("."))] == package.split(".")
            for pattern in patterns)
        assert matched, f"{resource} is not in pyproject's package-data"


# ---------------------------------------------------------------------------------------------- panels


@pytest.mark.parametrize("module", MODULES)
def test_ui_file_is_a_slicer_panel(module):
    """Valid Qt Designer XML: a qMRMLWidget named after the module on top, unique object names,
    CTK/qMRML classes declared as custom widgets, node selectors fed the scene."""
    root = _ui(module)
    assert root.tag == "ui" and root.get("version") == "4.0"
    assert root.findtext("class") == module
    top = root.find("widget")
    assert top is not None and top.get("class") == "qMRMLWidget" and top.get("name") == module
    names = [w.get("name") for w in root.iter("widget")] + [w.get("name") for w in root.iter("layout")]
    assert len(names) == len(set(names)), "duplicate object names"
    used = {w.get("class") for w in root.iter("widget")}
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    custom = {c for c in used if c.startswith(("ctk", "qMRML", "qSlicer"))}
    assert custom <= declared, custom - declared
    fed = {c.findtext("receiver") for c in root.iter("connection")
           if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)" and c.findtext("sender") == module}
    selectors = {w.get("name") for w in root.iter("widget") if w.get("class") == "qMRMLNodeComboBox"}
    assert fed == selectors, selectors ^ fed


def _ui_names_used(source: str) -> set[str]:
    """``self.ui.<name>`` / ``widget.ui.<name>`` and ``getattr(self.ui, "<name>")`` in a source text."""
    used = set(re.findall(r"\bui\.([A-Za-z_]\w*)", source))
    for group in re.findall(r"for name in \(([^)]*)\):\n\s+getattr\(self\.ui, name\)", source):
        used |= set(re.findall(r'"(\w+)"', group))
    return used


@pytest.mark.parametrize("module", MODULES)
def test_every_ui_name_the_module_uses_exists(module):
    """Every panel widget the module file (or the shared widget base) names is a widget of the module's .ui."""
    used = _ui_names_used((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    assert len(used) > 5
    used |= _ui_names_used(WIDGET_BASE.read_text(encoding="utf-8"))
    names = _object_names(module)
    missing = sorted(u for u in used if u not in names)
    assert not missing, missing


@pytest.mark.parametrize("module", MODULES)
def test_every_button_of_the_ui_is_used(module):
    """No dead controls: each button, path editor and table of the .ui is used by the module code (or bound to
    a parameter-node field)."""
    used = _ui_names_used((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    active = {name for name, cls in _object_names(module).items()
              if cls in ("QPushButton", "ctkPathLineEdit", "QTableWidget", "QTabWidget", "QTextEdit",
                         "QPlainTextEdit", "QProgressBar")}
    bound = {w.get("name") for w in _ui(module).iter("widget")
             if any(p.get("name") == "SlicerParameterName" for p in w.findall("property"))}
    assert not active - used - bound, sorted(active - used - bound)


@pytest.mark.parametrize("module", MODULES)
def test_resource_paths_exist(module):
    """Literal ``resourcePath("...")`` of the module file, and the panel WidgetBase loads for it."""
    source = (ROOT / module / f"{module}.py").read_text(encoding="utf-8")
    for path in re.findall(r'resourcePath\("([^"]+)"\)', source):
        assert (ROOT / module / "Resources" / path).is_file(), path
    base = WIDGET_BASE.read_text(encoding="utf-8")
    loaded = re.findall(r'resourcePath\(f"([^"]+)"\)', base)
    assert loaded == ["UI/{self.moduleName}.ui"]
    # Slicer's moduleName is the widget class name without "Widget".
    assert f"{module}Widget" in {c.name for c in _tree(module).body if isinstance(c, ast.ClassDef)}
    assert (ROOT / module / "Resources" / loaded[0].replace("{self.moduleName}", module)).is_file()


def _methods(cls: ast.ClassDef) -> dict[str, ast.FunctionDef]:
    return {f.name: f for f in cls.body if isinstance(f, ast.FunctionDef)}


@pytest.mark.parametrize("module", MODULES)
def test_widgets_keep_only_their_own_wiring(module):
    """Each widget subclasses RSuperLib.WidgetBase, creates its own logic, fills only the base's hooks (the
    template life cycle stays in the base), and an override of a life-cycle step calls the base's step."""
    base_tree = ast.parse(WIDGET_BASE.read_text(encoding="utf-8"))
    base = next(c for c in base_tree.body if isinstance(c, ast.ClassDef) and c.name == "WidgetBase")
    base_methods = _methods(base)
    classes = {c.name: c for c in _tree(module).body if isinstance(c, ast.ClassDef)}
    widget = classes[f"{module}Widget"]
    assert [ast.unparse(b) for b in widget.bases] == ["WidgetBase"]
    methods = _methods(widget)
    template_steps = {"setup", "enter", "exit", "initializeParameterNode", "setParameterNode", "onSceneEndClose"}
    assert not template_steps & set(methods), template_steps & set(methods)
    create = methods["createLogic"]
    returned = [n.value for n in ast.walk(create) if isinstance(n, ast.Return)]
    assert [ast.unparse(r) for r in returned] == [f"{module}Logic()"]
    assert "setupPanel" in methods
    for name in ("cleanup", "onSceneStartClose", "__init__"):
        if name in methods:
            calls = {ast.unparse(n.func) for n in ast.walk(methods[name]) if isinstance(n, ast.Call)}
            assert f"WidgetBase.{name}" in calls, (module, name)
    for name, method in methods.items():
        if name in base_methods:  # an override keeps the base's arguments
            assert [a.arg for a in method.args.args] == [a.arg for a in base_methods[name].args.args], name


@pytest.mark.parametrize("module", MODULES)
def test_module_description_is_shared(module):
    """The module class describes itself through RSuperLib.WidgetBase.describeModule (one category)."""
    classes = {c.name: c for c in _tree(module).body if isinstance(c, ast.ClassDef)}
    calls = [n for n in ast.walk(classes[module]) if isinstance(n, ast.Call) and ast.unparse(n.func) ==
             "describeModule"]
    assert len(calls) == 1 and len(calls[0].args) == 3
    source = WIDGET_BASE.read_text(encoding="utf-8")
    assert re.search(r'^CATEGORY = "Segmentation\.R-Super"$', source, re.M)


def _parameter_fields(module: str) -> dict[str, str]:
    """Field -> kind (int, float, str, bool, enum, choice, node, path) of the @parameterNodeWrapper class."""
    tree = _tree(module)
    enums = {c.name for c in tree.body if isinstance(c, ast.ClassDef)
             and any(getattr(b, "attr", getattr(b, "id", "")) == "Enum" for b in c.bases)}
    wrapped = [c for c in tree.body if isinstance(c, ast.ClassDef)
               and any(getattr(d, "id", "") == "parameterNodeWrapper" for d in c.decorator_list)]
    assert len(wrapped) == 1, "one @parameterNodeWrapper class per module"
    fields = {}
    for stmt in wrapped[0].body:
        if not isinstance(stmt, ast.AnnAssign):
            continue
        text = ast.unparse(stmt.annotation)
        base = re.sub(r"^Annotated\[(\w+),.*\]$", r"\1", text)
        if "Choice(" in text:
            kind = "choice"
        elif base in enums:
            kind = "enum"
        elif base.startswith("vtkMRML"):
            kind = "node"
        elif base in ("Path", "pathlib.Path"):
            kind = "path"
        else:
            kind = base
        fields[stmt.target.id] = kind
    return fields


@pytest.mark.parametrize("module", MODULES)
def test_parameter_names_bind_to_fitting_widgets(module):
    """Each ``SlicerParameterName`` of the .ui is a field of the module's parameter node, bound to a widget
    class that slicer.parameterNodeWrapper can connect to that field's type; every field is shown."""
    fields = _parameter_fields(module)
    bound = {}
    for widget in _ui(module).iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.findtext("string")] = widget.get("class")
    assert set(bound) == set(fields), set(bound) ^ set(fields)
    for name, cls in bound.items():
        assert cls in BINDABLE[fields[name]], (name, cls, fields[name])


# ---------------------------------------------------------------------------------------------- Python


@pytest.mark.parametrize("path", [ROOT / m / f"{m}.py" for m in MODULES]
                         + sorted((ROOT / "RSuper" / "RSuperLib").glob("*.py")), ids=lambda p: p.name)
def test_module_files_compile(path, tmp_path):
    py_compile.compile(str(path), cfile=str(tmp_path / "out.pyc"), doraise=True)


@pytest.mark.parametrize("module", MODULES)
def test_module_top_level_imports(module):
    """Only Slicer's own modules, RSuperLib and the standard library at import time (rsuper's dependencies
    may not be installed yet when Slicer loads the module)."""
    for node in _tree(module).body:
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            roots = [node.module.split(".")[0]]
        else:
            continue
        for name in roots:
            assert name in ALLOWED_TOP_LEVEL or name in sys.stdlib_module_names, (module, name)


@pytest.mark.parametrize("module", MODULES)
def test_module_classes_follow_slicer_conventions(module):
    """<Module>, <Module>Widget, <Module>Logic and <Module>Test classes; the test runs every test_ method."""
    tree = _tree(module)
    classes = {c.name: c for c in tree.body if isinstance(c, ast.ClassDef)}
    for suffix in ("", "Widget", "Logic", "Test"):
        assert module + suffix in classes, module + suffix
    test = classes[module + "Test"]
    methods = {f.name for f in test.body if isinstance(f, ast.FunctionDef)}
    run = next(f for f in test.body if isinstance(f, ast.FunctionDef) and f.name == "runTest")
    called = {n.func.attr for n in ast.walk(run) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert {m for m in methods if m.startswith("test_")} <= called
    assert any(m.startswith("test_") for m in methods)


# ---------------------------------------------------------------------------------------------- catalog


def test_catalog_entry_matches_cmake():
    """RSuper.json (the ExtensionsIndex entry) has the schema's fields and agrees with CMakeLists.txt."""
    top = (ROOT / "CMakeLists.txt").read_text()
    entry = json.loads((ROOT / "RSuper.json").read_text())
    project = re.search(r"project\((\w+)\)", top).group(1)
    assert project == "RSuper" and not project.startswith("Slicer")
    assert CATALOG_REQUIRED <= set(entry) <= CATALOG_KEYS, set(entry) ^ CATALOG_KEYS
    assert re.fullmatch(r"https://raw\.githubusercontent\.com/Slicer/Slicer/main/Schemas/"
                        r"slicer-extension-catalog-entry-schema-v\d+\.\d+\.\d+\.json#", entry["$schema"])
    assert entry["category"] == _cmake_var(top, "EXTENSION_CATEGORY")
    depends = _cmake_var(top, "EXTENSION_DEPENDS").split()
    assert entry.get("build_dependencies", []) == ([] if depends == ["NA"] else depends)
    assert entry["scm_url"] == _cmake_var(top, "EXTENSION_HOMEPAGE")
    assert entry["scm_url"].rsplit("/", 1)[-1].startswith("Slicer")
    assert entry.get("tier", 1) in (1, 3, 5)


def test_icon_and_screenshot_urls_name_files_of_this_repository():
    top = (ROOT / "CMakeLists.txt").read_text()
    homepage = _cmake_var(top, "EXTENSION_HOMEPAGE")
    raw = homepage.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    urls = [_cmake_var(top, "EXTENSION_ICONURL")] + _cmake_var(top, "EXTENSION_SCREENSHOTURLS").split()
    assert len(urls) >= 2
    for url in urls:
        assert url.startswith(raw), url
        assert (ROOT / url[len(raw):]).is_file(), url
