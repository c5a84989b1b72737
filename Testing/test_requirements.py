"""rsuper.requirements: the list matches pyproject.toml, and missing / too-old packages are found."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from rsuper import requirements as req

ROOT = Path(__file__).resolve().parents[1]


def test_list_matches_pyproject_without_torch():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert req.REQUIREMENTS == [d for d in deps if not d.startswith("torch")]
    assert [d for d in deps if d.startswith("torch")] == [req.TORCH_REQUIREMENT]


def test_this_environment_has_everything():
    assert req.missing_requirements() == []
    assert req.missing_requirements([req.TORCH_REQUIREMENT]) == []


def test_missing_and_too_old_packages_are_reported():
    numpy_version = metadata.version("numpy")
    reqs = ["rsuper-no-such-package-here>=1.0", "numpy>=999.0", "numpy>=1.0", "pyyaml"]
    assert req.missing_requirements(reqs) == ["rsuper-no-such-package-here>=1.0", "numpy>=999.0"]
    assert req.describe_missing(reqs) == [
        "rsuper-no-such-package-here>=1.0: not installed",
        f"numpy>=999.0: {numpy_version} installed",
    ]
    installed = req.release_tuple(numpy_version)
    ceiling = f"numpy<{installed[0]}.{installed[1]}"  # below the installed release: too new
    assert req.missing_requirements([ceiling]) == [ceiling]
    assert req.missing_requirements([f"numpy=={numpy_version.split('+')[0]}"]) == []


@pytest.mark.parametrize("version, expected", [
    ("2.13.0+cpu", (2, 13, 0)), ("1.3rc1", (1, 3)), ("v4.66.1", (4, 66, 1)), ("0.25.dev3", (0, 25)),
    ("2024.1", (2024, 1)), ("abc", ()),
])
def test_release_tuple(version, expected):
    assert req.release_tuple(version) == expected


def test_version_clauses():
    r = req.parse_requirement("llama-cpp-python[server] >= 0.3, < 1.0 ; python_version >= '3.10'")
    assert r.name == "llama-cpp-python" and r.extras == "[server]" and r.clauses == [(">=", "0.3"), ("<", "1.0")]
    assert r.satisfied_by("0.3") and r.satisfied_by("0.3.0") and r.satisfied_by("0.9.9")
    assert not r.satisfied_by("0.2.99") and not r.satisfied_by("1.0.0")
    assert req.parse_requirement("torch>=2.3").satisfied_by("2.13.0+cpu")  # 13 > 3 as numbers, not text
    assert not req.parse_requirement("torch!=2.13.0").satisfied_by("2.13")
    assert req.parse_requirement("scipy").satisfied_by("0.1")
    with pytest.raises(ValueError):
        req.parse_requirement("numpy~=1.24")
    with pytest.raises(ValueError):
        req.parse_requirement(">=1.0")


def test_texts_for_the_user():
    question = req.install_question(["monai>=1.3: not installed"])
    assert "monai>=1.3: not installed" in question and "Install them now?" in question
    text = req.offline_instructions(["monai>=1.3", "nibabel>=5.0"], python="/opt/Slicer/bin/PythonSlicer")
    assert '"/opt/Slicer/bin/PythonSlicer" -m pip install --no-index --find-links FOLDER "monai>=1.3" ' \
           '"nibabel>=5.0"' in text
    assert 'pip download --dest FOLDER "monai>=1.3" "nibabel>=5.0"' in text


def _top_level_imports(path: Path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots = set()
    for node in tree.body:  # module level only: imports inside functions run on demand
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_slicer_adapter_imports_nothing_heavy_at_import(tmp_path):
    """The installer must load before the requirements exist; no adapter file imports torch at import time."""
    import py_compile
    import sys

    lib = ROOT / "RSuper" / "RSuperLib"
    files = sorted(lib.glob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "Nodes.py", "ProcessPoller.py", "Install.py", "Dialogs.py"}
    for f in files:
        py_compile.compile(str(f), doraise=True, cfile=str(tmp_path / f"{f.stem}.pyc"))
        assert "torch" not in _top_level_imports(f), f
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    assert _top_level_imports(lib / "Install.py") <= stdlib
    assert _top_level_imports(lib / "__init__.py") == set()
