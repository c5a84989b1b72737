"""Which of rsuper's Python requirements are missing or too old (for the Slicer module's first run).

:data:`REQUIREMENTS` repeats the ``dependencies`` of ``pyproject.toml`` except
torch, which 3D Slicer gets from the PyTorch extension (the right CUDA build
for the machine); :data:`TORCH_REQUIREMENT` is torch's floor.
``Testing/test_requirements.py`` checks that the two lists agree.

Versions are compared without the ``packaging`` library, which is not always
installed in the Python of a fresh application: the release numbers are
compared as integer tuples (``2.13.0+cpu`` -> ``(2, 13, 0)``, ``1.3rc1`` ->
``(1, 3)``), which is exact for the floors used here.
"""

from __future__ import annotations

import re
from importlib import metadata

__all__ = [
    "REQUIREMENTS", "TORCH_REQUIREMENT", "Requirement", "parse_requirement", "release_tuple", "installed_version",
    "unmet", "missing_requirements", "describe_missing", "install_question", "offline_instructions",
]

#: rsuper's runtime requirements (``pyproject.toml``), torch excluded.
REQUIREMENTS: list[str] = [
    "numpy>=1.24",
    "jsonschema>=4.18",
    "pyyaml>=6.0",
    "tqdm>=4.66",
    "rich>=13.0",
    "httpx>=0.25",
    "nibabel>=5.0",
    "scipy>=1.10",
    "matplotlib>=3.7",
    "monai>=1.3",
    "nnunetv2>=2.5",
]

#: torch's floor; installed through 3D Slicer's PyTorch extension when possible.
TORCH_REQUIREMENT = "torch>=2.3"

_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*$")
_CLAUSE = re.compile(r"^(>=|<=|==|!=|>|<)\s*([0-9][A-Za-z0-9.+!*-]*)$")
_OPS = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


class Requirement:
    """A parsed requirement: ``name``, optional ``extras`` and version clauses ``[(op, version), ...]``.

    Only the comparison operators ``>= <= > < == !=`` are understood (comma-separated);
    environment markers (after ``;``) are ignored.
    """

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        spec = self.text.split(";", 1)[0]
        m = _REQ.match(spec)
        if not m:
            raise ValueError(f"cannot read requirement {text!r}")
        self.name = m.group(1)
        self.extras = m.group(2) or ""
        self.clauses: list[tuple[str, str]] = []
        rest = m.group(3)
        for clause in filter(None, (c.strip() for c in rest.split(","))):
            c = _CLAUSE.match(clause)
            if not c:
                raise ValueError(f"unsupported version clause {clause!r} in requirement {text!r}")
            self.clauses.append((c.group(1), c.group(2)))

    def satisfied_by(self, version: str) -> bool:
        """Whether an installed ``version`` meets every clause (release numbers compared, zero-padded)."""
        have = release_tuple(version)
        for op, wanted in self.clauses:
            want = release_tuple(wanted)
            width = max(len(have), len(want))
            a, b = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
            if not _OPS[op](a, b):
                return False
        return True

    def __repr__(self) -> str:
        return f"Requirement({self.text!r})"


def parse_requirement(text: str) -> Requirement:
    """:class:`Requirement` of a requirement string such as ``"numpy>=1.24"``."""
    return Requirement(text)


def release_tuple(version: str) -> tuple[int, ...]:
    """Leading release numbers of a version string: ``"2.13.0+cpu"`` -> ``(2, 13, 0)``; ``"1.3rc1"`` -> ``(1, 3)``."""
    numbers = []
    for part in version.strip().lstrip("vV").split("."):
        m = re.match(r"\d+", part)
        if not m:
            break
        numbers.append(int(m.group()))
        if m.end() != len(part):  # "3rc1", "0+cpu": the release part ends here
            break
    return tuple(numbers)


def installed_version(name: str) -> str | None:
    """Installed version of a distribution (``importlib.metadata``), or ``None`` when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def unmet(reqs: list[str] | None = None) -> list[tuple[str, str | None]]:
    """``(requirement, installed version or None)`` for each requirement that is not met, in list order."""
    out = []
    for text in REQUIREMENTS if reqs is None else reqs:
        req = parse_requirement(text)
        version = installed_version(req.name)
        if version is None or not req.satisfied_by(version):
            out.append((text, version))
    return out


def missing_requirements(reqs: list[str] | None = None) -> list[str]:
    """The requirement strings (ready for ``pip install``) that are missing or too old.

    Args:
        reqs: requirement strings; default :data:`REQUIREMENTS`.
    """
    return [text for text, _ in unmet(reqs)]


def describe_missing(reqs: list[str] | None = None) -> list[str]:
    """One line per unmet requirement for people: ``"monai>=1.3: not installed"``,
    ``"numpy>=1.24: 1.21.0 installed"``."""
    return [f"{text}: {'not installed' if version is None else version + ' installed'}"
            for text, version in unmet(reqs)]


def install_question(problems: list[str]) -> str:
    """The text asking the user to install what is missing (``problems`` as from :func:`describe_missing`)."""
    listed = "\n".join(f"  \u2022 {line}" for line in problems)
    return (
        "R-Super needs these Python packages, which are missing or too old:\n\n"
        f"{listed}\n\n"
        "Install them now? This needs a network connection and can take several minutes; "
        "3D Slicer may have to be restarted afterwards."
    )


def offline_instructions(reqs: list[str], python: str = "PythonSlicer") -> str:
    """How to install ``reqs`` without a network: from a folder of wheels downloaded on another machine.

    Args:
        reqs: requirement strings (e.g. :func:`missing_requirements`).
        python: the interpreter to install into (3D Slicer's ``PythonSlicer``).
    """
    quoted = " ".join(f'"{r}"' for r in reqs)
    return (
        "To install without a network connection, download the wheels on a machine that has one "
        "(same operating system and Python version):\n\n"
        f"  pip download --dest FOLDER {quoted}\n\n"
        "copy FOLDER here, then run:\n\n"
        f'  "{python}" -m pip install --no-index --find-links FOLDER {quoted}\n\n'
        "and restart 3D Slicer. torch is best installed with the PyTorch extension (PyTorch Utils module)."
    )
