"""First-run installation of rsuper's Python requirements inside 3D Slicer (needs the Slicer application).

Nothing is installed at import time. A module calls :func:`ensureDependencies`
when the user starts something that needs the packages; the list of what is
missing, the texts and the version checks come from ``rsuper.requirements``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from typing import Any

#: The user declined the installation in this session: do not ask again.
_declined = False


def coreOnPath() -> str | None:
    """Make ``import rsuper`` work: put the folder holding the bundled ``rsuper/`` package on ``sys.path``.

    Looks in this module's folder and the one above it (the extension's install tree, or a source
    checkout). Returns the folder added, or ``None`` when ``rsuper`` was importable already or not found.
    """
    if importlib.util.find_spec("rsuper") is not None:
        return None
    moduleDir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for candidate in (moduleDir, os.path.dirname(moduleDir)):
        if os.path.isfile(os.path.join(candidate, "rsuper", "__init__.py")):
            sys.path.insert(0, candidate)
            importlib.invalidate_caches()
            return candidate
    return None


def _requirementsModule() -> Any:
    coreOnPath()
    from rsuper import requirements

    return requirements


def _pipEnsureModule() -> Any:
    """``slicer.pydeps`` (Slicer >= 5.11) or ``slicer.packaging`` (its earlier name), if either has pip_ensure."""
    for name in ("slicer.pydeps", "slicer.packaging"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "pip_ensure"):
            return module
    return None


def _installTorch(requirement: str) -> None:
    """torch through the PyTorch extension (the right CUDA build for this machine), else pip."""
    import slicer

    try:
        import PyTorchUtils
    except ImportError:
        PyTorchUtils = None
    if PyTorchUtils is not None:
        floor = requirement[len("torch"):]
        PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=floor)
    else:
        slicer.util.pip_install(requirement)


def _installPackages(reqs: list[str]) -> None:
    """The packages in ``reqs`` with ``pip_ensure`` (torch left to the PyTorch extension) or ``pip_install``."""
    import slicer

    pydeps = _pipEnsureModule()
    if pydeps is not None:
        from packaging.requirements import Requirement

        pydeps.pip_ensure([Requirement(r) for r in reqs], skip_packages=["torch"], prompt_install=False,
                          requester="R-Super")
    else:
        slicer.util.pip_install(" ".join(reqs))


def ensureDependencies(parent: Any = None) -> bool:
    """Check rsuper's requirements and torch; if some are missing, ask once, install them, and say how it went.

    Returns:
        ``True`` when everything needed is importable afterwards. ``False`` when the user declined (not
        asked again in this session) or the installation failed (the error box explains how to install
        offline from a folder of wheels).
    """
    global _declined
    import slicer

    from . import Dialogs

    req = _requirementsModule()
    torchMissing = req.describe_missing([req.TORCH_REQUIREMENT])
    packages = req.missing_requirements()
    if not torchMissing and not packages:
        return True
    if _declined:
        return False
    allMissing = ([req.TORCH_REQUIREMENT] if torchMissing else []) + packages
    if not Dialogs.confirm("R-Super: install Python packages",
                           req.install_question(torchMissing + req.describe_missing()), parent):
        _declined = True
        return False
    steps = (["torch"] if torchMissing else []) + (["packages"] if packages else [])
    progress = slicer.util.createProgressDialog(parent=parent, labelText="Installing Python packages...",
                                                maximum=len(steps))
    try:
        for index, step in enumerate(steps):
            progress.labelText = ("Installing torch (PyTorch extension)..." if step == "torch"
                                  else f"Installing {', '.join(packages)}...")
            progress.value = index
            slicer.app.processEvents()
            if step == "torch":
                _installTorch(req.TORCH_REQUIREMENT)
            else:
                _installPackages(packages)
        progress.value = len(steps)
    except Exception:
        progress.close()
        Dialogs.showError("R-Super: installation failed",
                          "The Python packages could not be installed.\n\n"
                          + req.offline_instructions(allMissing, sys.executable),
                          details=traceback.format_exc(), parent=parent)
        return False
    progress.close()
    importlib.invalidate_caches()
    still = req.missing_requirements([req.TORCH_REQUIREMENT] + req.REQUIREMENTS)
    if still:
        Dialogs.showError("R-Super: installation incomplete",
                          "These packages are still missing or too old: " + ", ".join(still) + "\n\n"
                          + req.offline_instructions(still, sys.executable), parent=parent)
        return False
    return True
