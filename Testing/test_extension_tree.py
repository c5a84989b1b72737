"""The Slicer extension tree is consistent: every module file is listed in its CMakeLists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("RSuper", "RSuperReportExtract", "RSuperTrain")


def _listed(cmake: str, variable: str, module: str) -> set[str]:
    m = re.search(rf"set\({variable}\s+(.*?)\)", cmake, re.S)
    assert m, f"{variable} not set"
    return {x.replace("${MODULE_NAME}", module) for x in m.group(1).split()}


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
        scripts = _listed(cmake, "MODULE_PYTHON_SCRIPTS", mod)
        on_disk_py = {str(p.relative_to(folder)) for p in folder.rglob("*.py")}
        assert on_disk_py == scripts, (mod, on_disk_py ^ scripts)
        resources = _listed(cmake, "MODULE_PYTHON_RESOURCES", mod)
        on_disk_res = {str(p.relative_to(folder)) for p in (folder / "Resources").rglob("*") if p.is_file()}
        assert on_disk_res == resources, (mod, on_disk_res ^ resources)
        assert (folder / "Resources" / "Icons" / f"{mod}.png").is_file()
