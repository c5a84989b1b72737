"""Argument lists of the ``rsuper`` sub-commands that a GUI runs as child processes.

Every builder returns ``[python, "-m", "rsuper", SUBCOMMAND, ...]`` ready for
:class:`rsuper.jobs.background.BackgroundJob` (or :func:`subprocess.Popen`);
commands that report progress get ``--progress jsonl`` so that the child writes
one JSON event per line on stdout (:mod:`rsuper.progress`). ``rsuper compare``
has no progress option: it is one short step and only its exit status and
stderr matter.

Paths are passed as given (``str(path)``); relative paths resolve against the
child's working directory, so GUIs should pass absolute ones.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence

__all__ = [
    "EXTRACTORS", "rsuper_command", "extract_command", "organs_command", "predict_command", "compare_command",
    "train_command", "override_argument", "TRAIN_PROGRESS",
]

#: ``extractor`` values of :func:`extract_command` (the ``--backend`` choices of ``rsuper extract``).
EXTRACTORS: tuple[str, ...] = ("rules", "transformers", "openai")
#: ``progress`` values of :func:`train_command` (the ``--progress`` choices of ``rsuper train``).
TRAIN_PROGRESS: tuple[str, ...] = ("jsonl", "none", "bar", "auto")


def _path(value: str | os.PathLike[str]) -> str:
    return os.fspath(value)


def rsuper_command(subcommand: str, *args: str, python: str = sys.executable) -> list[str]:
    """``[python, "-m", "rsuper", subcommand, *args]``."""
    return [python, "-m", "rsuper", subcommand, *args]


def extract_command(
    input_csv: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    extractor: str = "rules",
    model: str | os.PathLike[str] | None = None,
    server_url: str | None = None,
    python: str = sys.executable,
) -> list[str]:
    """``rsuper extract``: tumour facts of a CSV / JSONL of reports (columns ``case_id,report``).

    Args:
        input_csv: the reports file.
        out_path: facts JSON Lines to write (appended; a re-run resumes).
        extractor: ``rules`` (offline), ``transformers`` (a local model folder or ``.gguf``, ``model``)
            or ``openai`` (a local OpenAI-compatible server at ``server_url``; ``model`` optionally names
            the served model).
        model: see ``extractor``.
        server_url: base URL of the server for ``openai``.
        python: the interpreter that has ``rsuper`` installed.

    Raises:
        ValueError: an unknown extractor, or the model / URL it needs is missing.
    """
    if extractor not in EXTRACTORS:
        raise ValueError(f"extractor {extractor!r} not one of {EXTRACTORS}")
    argv = rsuper_command("extract", "--reports", _path(input_csv), "--out", _path(out_path),
                          "--backend", extractor, python=python)
    if extractor == "transformers":
        if model is None:
            raise ValueError("the transformers extractor needs a model folder or .gguf file")
        argv += ["--model", _path(model)]
    elif extractor == "openai":
        if not server_url:
            raise ValueError("the openai extractor needs the URL of a local OpenAI-compatible server")
        argv += ["--url", server_url]
        if model is not None:
            argv += ["--model", _path(model)]
    return argv + ["--progress", "jsonl"]


def organs_command(
    ct: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
    out: str | os.PathLike[str],
    model_dir: str | os.PathLike[str] | None = None,
    import_path: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    python: str = sys.executable,
) -> list[str]:
    """``rsuper organs``: organ / sub-segment masks predicted by an nnU-Net model folder, or imported.

    Args:
        ct: a CT NIfTI, a folder of them, or several; with ``import_path`` the CT the masks belong to
            (checked against them; may be ``None`` there).
        out: output ``.nii.gz`` (one CT) or folder (several).
        model_dir: a trained nnU-Net v2 model folder (exactly one of ``model_dir`` / ``import_path``).
        import_path: masks to convert (TotalSegmentator folder or one multi-label NIfTI).
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (prediction only).
        python: the interpreter that has ``rsuper`` installed.

    Raises:
        ValueError: neither or both of ``model_dir`` and ``import_path``; no CT for a prediction.
    """
    if (model_dir is None) == (import_path is None):
        raise ValueError("give exactly one of model_dir (predict) and import_path (convert masks)")
    cts = [] if ct is None else [ct] if isinstance(ct, (str, os.PathLike)) else list(ct)
    if model_dir is not None:
        if not cts:
            raise ValueError("a prediction needs at least one CT")
        argv = rsuper_command("organs", "--model", _path(model_dir), python=python)
    else:
        argv = rsuper_command("organs", "--import", _path(import_path), python=python)  # type: ignore[arg-type]
    if cts:
        argv += ["--ct", *map(_path, cts)]
    argv += ["--out", _path(out)]
    if model_dir is not None:
        argv += ["--device", device]
    return argv + ["--progress", "jsonl"]


def predict_command(
    checkpoint: str | os.PathLike[str],
    ct: str | os.PathLike[str],
    out: str | os.PathLike[str],
    organs: str | os.PathLike[str] | None = None,
    probabilities: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    python: str = sys.executable,
) -> list[str]:
    """``rsuper predict``: tumour instances of a CT (or a folder) with an ``rsuper train`` checkpoint.

    Args:
        checkpoint: ``final.pt`` of a training job.
        ct: CT NIfTI or folder.
        out: tumour label NIfTI (``tumours.json`` is written beside it) or folder.
        organs: organ mask on the CT's grid (default: the model's own organ channels).
        probabilities: also write the lesion probabilities here.
        device: ``cpu``, ``cuda`` ...
        python: the interpreter that has ``rsuper`` installed.
    """
    argv = rsuper_command("predict", "--model", _path(checkpoint), "--ct", _path(ct), "--out", _path(out),
                          python=python)
    if organs is not None:
        argv += ["--organs", _path(organs)]
    if probabilities is not None:
        argv += ["--probabilities", _path(probabilities)]
    return argv + ["--device", device, "--progress", "jsonl"]


def compare_command(
    tumours: str | os.PathLike[str],
    ct: str | os.PathLike[str] | None,
    organs: str | os.PathLike[str] | None,
    facts: str | os.PathLike[str],
    out_json: str | os.PathLike[str],
    html: str | os.PathLike[str] | None = None,
    case_id: str | None = None,
    report: str | os.PathLike[str] | None = None,
    python: str = sys.executable,
) -> list[str]:
    """``rsuper compare``: the AI's tumours against the report's (no progress events: one short step).

    Args:
        tumours: ``tumours.json`` of ``rsuper predict`` or a tumour label NIfTI (then ``organs`` is needed).
        ct: the CT (pictures in the HTML, HU of a NIfTI's tumours), or ``None``.
        organs: the organ mask, or ``None``.
        facts: ``facts.jsonl`` or one case's ``facts.json``.
        out_json: the comparison JSON to write (:mod:`rsuper.compare.table` reads it).
        html: also write the HTML page.
        case_id: the case in ``facts`` (default: the tumours file's case).
        report: the report text file, to show whole sentences.
        python: the interpreter that has ``rsuper`` installed.
    """
    argv = rsuper_command("compare", "--tumours", _path(tumours), "--facts", _path(facts), "--out", _path(out_json),
                          python=python)
    for option, value in (("--ct", ct), ("--organs", organs), ("--html", html), ("--report", report)):
        if value is not None:
            argv += [option, _path(value)]
    if case_id is not None:
        argv += ["--case-id", case_id]
    return argv


def override_argument(key: str, value: object) -> str:
    """``KEY=VALUE`` for ``rsuper train --set``; the value is written as JSON (valid YAML, which the trainer
    parses), so strings stay strings (``"1e-3"`` is not read as a number) and lists / booleans keep their type.
    """
    if not key or "=" in key:
        raise ValueError(f"bad configuration key {key!r}")
    return f"{key}={json.dumps(value, allow_nan=False)}"


def train_command(
    config: str | os.PathLike[str] | None,
    job_dir: str | os.PathLike[str],
    overrides: Mapping[str, object] | None = None,
    resume: bool = False,
    init_from: str | os.PathLike[str] | None = None,
    progress: str = "jsonl",
    python: str = sys.executable,
) -> list[str]:
    """``rsuper train``: a new run in ``job_dir`` from ``config``, or (``resume``) continue the run there.

    Args:
        config: ``train.yaml``; ignored (may be ``None``) when resuming.
        job_dir: the job folder the trainer writes and :class:`rsuper.jobs.training.TrainingJobWatcher` follows.
        overrides: configuration values by dotted key (``{"stages.0.steps": 200}``), one ``--set`` each.
        resume: continue the run in ``job_dir`` from its ``latest.pt``.
        init_from: fine-tune: start from these weights (a new run only).
        progress: what the trainer writes on stdout (one of :data:`TRAIN_PROGRESS`): ``jsonl`` events for a
            caller that reads the pipe, ``none`` for one that follows the job folder instead (a quiet trainer
            does not depend on the pipe's reader, so it outlives a GUI that exits).
        python: the interpreter that has ``rsuper`` installed.

    Raises:
        ValueError: a new run without ``config``; ``init_from`` with ``resume``; an unknown ``progress``.
    """
    if progress not in TRAIN_PROGRESS:
        raise ValueError(f"progress {progress!r} not one of {TRAIN_PROGRESS}")
    if resume:
        if init_from is not None:
            raise ValueError("init_from starts a new run; it cannot be combined with resume")
        argv = rsuper_command("train", "--resume", _path(job_dir), python=python)
    else:
        if config is None:
            raise ValueError("a new training run needs a config file")
        argv = rsuper_command("train", "--config", _path(config), "--job", _path(job_dir), python=python)
    for key, value in (overrides or {}).items():
        argv += ["--set", override_argument(key, value)]
    if init_from is not None:
        argv += ["--init", _path(init_from)]
    return argv + ["--progress", progress]
