"""Training checkpoints: atomic save, safe load (``weights_only``), and RNG state capture.

A checkpoint is a ``torch.save`` of a dict with ``"format": "rsuper-checkpoint"``
and ``"version": 1`` added to the caller's payload. It is loaded with
``torch.load(weights_only=True)``, which never runs code from the file, so a
payload may hold only tensors, dicts, lists, tuples, strings, numbers, booleans
and ``None`` (model, optimizer, scheduler and EMA ``state_dict()``s qualify);
:func:`save_checkpoint` checks this before writing.

Saving writes a temporary file in the target folder, flushes it to disk and
renames it over the target, so a crash mid-save leaves the previous checkpoint
intact.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "rsuper-checkpoint"
VERSION = 1

_PRIMITIVES = (str, int, float, bool, type(None), torch.dtype, torch.device, torch.Size)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable (e.g. truncated) or not an rsuper checkpoint."""


def _check_payload(value: Any, where: str) -> None:
    """Raise ``TypeError`` naming the first value ``torch.load(weights_only=True)`` would refuse."""
    if isinstance(value, torch.Tensor) or isinstance(value, _PRIMITIVES):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"checkpoint key {key!r} at {where} is not a str or int")
            _check_payload(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_payload(item, f"{where}[{i}]")
        return
    raise TypeError(f"checkpoint value at {where} has type {type(value).__name__}, which weights_only loading refuses")


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` (plus format/version) to ``path`` atomically; return the path.

    Raises:
        TypeError: the payload holds a value that :func:`load_checkpoint` could not read.
        ValueError: the payload uses the reserved keys ``format`` / ``version``.
    """
    path = Path(path)
    reserved = {"format", "version"} & set(payload)
    if reserved:
        raise ValueError(f"checkpoint payload must not set the reserved keys {sorted(reserved)}")
    data = {"format": FORMAT, "version": VERSION, **payload}
    _check_payload(data, "payload")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    if os.name == "posix":  # make the rename itself durable; Windows cannot open a folder for fsync
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors moved to ``map_location``).

    Raises:
        CheckpointError: the file is missing, truncated/corrupt, holds objects
            that weights_only loading refuses, or lacks the rsuper format tag or
            has another version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or not a torch file?): {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an rsuper checkpoint (no 'format': {FORMAT!r} field)")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{path} is rsuper checkpoint version {data.get('version')!r}; this code reads {VERSION}")
    return data


def rng_state() -> dict[str, Any]:
    """Global random states: Python ``random``, numpy's legacy global generator, torch CPU and CUDA.

    All values are weights_only-safe (numpy's key array becomes an int64 tensor).
    """
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the states captured by :func:`rng_state`.

    CUDA states are restored for as many devices as both the saved state and
    this machine have; they are skipped when CUDA is not available.
    """
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    nps = state["numpy"]
    keys = nps["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((nps["name"], keys, nps["pos"], nps["has_gauss"], nps["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        for device, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), device)
