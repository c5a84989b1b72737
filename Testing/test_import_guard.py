"""The core package must never import Slicer, Qt, VTK or CTK."""

import ast
from pathlib import Path

FORBIDDEN = {"slicer", "qt", "vtk", "ctk", "PythonQt", "slicer_core", "PySide6", "PyQt5", "PyQt6"}
CORE = Path(__file__).resolve().parents[1] / "rsuper"


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_has_no_gui_imports():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10, "the core package was not found"
    bad = {str(f.relative_to(CORE)): sorted(_imported_roots(f) & FORBIDDEN) for f in files}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"core modules import GUI toolkits: {bad}"


def test_guard_detects_a_forbidden_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\nif True:\n    from vtk.util import numpy_support\n")
    assert _imported_roots(f) & FORBIDDEN == {"vtk"}
