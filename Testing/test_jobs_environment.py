"""rsuper.jobs.environment: a child interpreter that cannot see rsuper on its own imports this very rsuper."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import rsuper
from rsuper.jobs.background import BackgroundJob
from rsuper.jobs.environment import child_environment, child_python, package_root, prepend_path

#: ``-S``: no site-packages, so the venv's own way to rsuper (an installed or editable package) is off and
#: only PYTHONPATH can make it importable; the child prints where it found rsuper.
WHERE = [sys.executable, "-S", "-c", "import rsuper, sys; print(rsuper.__file__); print(sys.path[1])"]


def _run(env: dict[str, str], cwd: Path) -> BackgroundJob:
    job = BackgroundJob(WHERE, env=env, cwd=cwd).start()
    job.wait(timeout=60)
    return job


def test_package_root_holds_this_rsuper():
    assert (package_root() / "rsuper" / "__init__.py").resolve() == Path(rsuper.__file__).resolve()


def test_child_imports_the_same_rsuper(tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    env = child_environment({"PYTHONPATH": str(other)})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(package_root()), str(other)]
    job = _run(env, tmp_path)
    assert job.returncode == 0, job.log_tail()
    found, first_entry = job.log_tail(2)
    assert Path(found).resolve() == Path(rsuper.__file__).resolve()
    assert Path(first_entry) == package_root()
    # Without it the same child cannot import rsuper at all: the environment is what makes it work.
    job = _run({"PYTHONPATH": str(other)}, tmp_path)
    assert job.returncode != 0 and any("No module named 'rsuper'" in line for line in job.log_tail())


def test_prepend_path_keeps_one_copy_and_drops_empty_entries(tmp_path):
    root = str(tmp_path / "root")
    assert prepend_path(root, None) == root
    assert prepend_path(root, "") == root
    joined = os.pathsep.join(["/a", "", root + os.sep, "/b"])
    assert prepend_path(root, joined).split(os.pathsep) == [root, "/a", "/b"]


def test_child_python_prefers_the_named_interpreter_on_path(tmp_path, monkeypatch):
    assert child_python(()) == sys.executable
    assert child_python(("no-such-python-here",)) == sys.executable
    fake = tmp_path / "PythonFake"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ.get("PATH", ""))
    assert Path(child_python(("PythonFake",))) == fake
