"""Which Python runs the ``rsuper`` child processes of a GUI, and the environment that lets it import ``rsuper``.

A GUI such as 3D Slicer may hold ``rsuper`` as a plain folder (bundled with the
extension) rather than as an installed package; a child interpreter then finds
it only through ``PYTHONPATH``. :func:`child_environment` puts the folder that
holds the ``rsuper`` package running here first on that path, so the child
imports the very same code. Standard library only.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["PREFERRED_PYTHONS", "child_python", "package_root", "prepend_path", "child_environment"]

#: Interpreters preferred over this one for child processes, first found wins: 3D Slicer's ``PythonSlicer``
#: (Slicer's Python with Slicer's environment, without the application).
PREFERRED_PYTHONS: tuple[str, ...] = ("PythonSlicer",)


def child_python(preferred: Sequence[str] = PREFERRED_PYTHONS) -> str:
    """The first of ``preferred`` found on ``PATH``, else this interpreter (:data:`sys.executable`)."""
    for name in preferred:
        found = shutil.which(name)
        if found:
            return found
    return sys.executable


def package_root() -> Path:
    """The folder holding the ``rsuper`` package that is running (``<root>/rsuper/__init__.py``)."""
    return Path(__file__).resolve().parents[2]


def prepend_path(folder: str | os.PathLike[str], search_path: str | None) -> str:
    """``search_path`` (an ``os.pathsep``-separated list such as ``PYTHONPATH``) with ``folder`` first.

    Empty entries are dropped (an empty entry means the working directory to Python) and a later copy of
    ``folder`` is removed, so the result has ``folder`` exactly once.
    """
    first = os.fspath(folder)
    rest = [p for p in (search_path or "").split(os.pathsep) if p and os.path.normpath(p) != os.path.normpath(first)]
    return os.pathsep.join([first, *rest])


def child_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables to set for a child that runs ``python -m rsuper ...``: ``{"PYTHONPATH": ...}``.

    Args:
        base: the environment whose ``PYTHONPATH`` is extended (default: this process's).

    Returns:
        only the changed variables, for :class:`rsuper.jobs.background.BackgroundJob` (``env`` is laid over
        this process's environment there).
    """
    environ = os.environ if base is None else base
    return {"PYTHONPATH": prepend_path(package_root(), environ.get("PYTHONPATH"))}
