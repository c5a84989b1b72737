"""Thin wrappers of ``slicer.util`` message boxes and ``qt.QFileDialog`` (needs the Slicer application)."""

from __future__ import annotations

from typing import Any

import qt
import slicer.util


def confirm(title: str, text: str, parent: Any = None) -> bool:
    """An OK / Cancel question; ``True`` for OK."""
    return bool(slicer.util.confirmOkCancelDisplay(text, windowTitle=title, parent=parent))


def showError(title: str, text: str, details: str = "", parent: Any = None) -> None:
    """An error message; ``details`` (e.g. the log tail) go into the box's expandable details."""
    if details:
        slicer.util.errorDisplay(text, windowTitle=title, parent=parent, detailedText=details)
    else:
        slicer.util.errorDisplay(text, windowTitle=title, parent=parent)


def showInfo(title: str, text: str, parent: Any = None) -> None:
    """An information message."""
    slicer.util.infoDisplay(text, windowTitle=title, parent=parent)


def chooseFile(title: str, nameFilter: str = "", directory: str = "", save: bool = False,
               parent: Any = None) -> str | None:
    """A file chosen by the user (to open, or to ``save`` to), or ``None`` when cancelled.

    ``nameFilter`` is Qt's, e.g. ``"Reports (*.csv *.jsonl)"``.
    """
    dialog = qt.QFileDialog.getSaveFileName if save else qt.QFileDialog.getOpenFileName
    path = dialog(parent, title, directory, nameFilter)
    return path or None


def chooseDirectory(title: str, directory: str = "", parent: Any = None) -> str | None:
    """A folder chosen by the user, or ``None`` when cancelled."""
    path = qt.QFileDialog.getExistingDirectory(parent, title, directory)
    return path or None
