"""Build the segmentation network named in the configuration, and normalise its output.

A model spec is a mapping ``{"class": <where>, "kwargs": {...}}`` (config keys
``model.class`` and ``model.kwargs``). ``<where>`` is one of

* ``"package.module:Name"`` or ``"package.module.Name"`` (importable module), or
* ``"/path/to/file.py:Name"`` (a Python file loaded by path, handy inside Slicer
  where the user cannot change ``sys.path``).

``Name`` is a ``torch.nn.Module`` class (or any callable returning one). It is
called as ``Name(in_channels=..., out_channels=..., **kwargs)``.

Output contract (:func:`as_heads`): the module's ``forward(x)`` with ``x``
``(B, in_channels, X, Y, Z)`` returns logits as a tensor ``(B, C, X, Y, Z)``, a
list/tuple of such tensors (final head first, then deep-supervision heads), a
dict whose ``"segmentation"`` entry is one of those, or MONAI ``DynUNet``'s
stacked ``(B, n_heads, C, X, Y, Z)`` tensor.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F

DEFAULT_MODEL_SPEC: dict[str, Any] = {"class": "rsuper.model.unet:UNet3D", "kwargs": {}}


class ModelSpecError(ValueError):
    """The model spec is malformed, or its class cannot be found or built."""


def _split_target(target: str) -> tuple[str, str]:
    """``"a.b:C"`` / ``"a.b.C"`` / ``"file.py:C"`` -> (module or file, attribute name)."""
    if ":" in target and not target.endswith(":"):
        module, name = target.rsplit(":", 1)
        # A Windows drive ("C:\\models\\net.py") leaves a path, not a name, after the colon.
        if not any(sep in name for sep in "/\\"):
            return module, name
    module, _, name = target.rpartition(".")
    if not module or not name:
        raise ModelSpecError(
            f"model class {target!r} is not of the form 'package.module:Class' or 'package.module.Class'"
        )
    return module, name


def _load_module(module: str) -> Any:
    if module.endswith(".py"):
        path = Path(module).expanduser()
        if not path.is_file():
            raise ModelSpecError(f"model file {str(path)!r} does not exist")
        spec = importlib.util.spec_from_file_location(f"rsuper_user_model_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ModelSpecError(f"cannot load model file {str(path)!r}")
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        return loaded
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelSpecError(f"cannot import module {module!r} for the model class: {exc}") from exc


def resolve_class(target: str) -> Any:
    """The object named by ``target`` (see the module docstring for the forms)."""
    if not isinstance(target, str) or not target.strip():
        raise ModelSpecError(f"model class must be a non-empty string, got {target!r}")
    module_name, name = _split_target(target.strip())
    module = _load_module(module_name)
    try:
        return getattr(module, name)
    except AttributeError:
        raise ModelSpecError(f"module {module_name!r} has no attribute {name!r}") from None


def build_model(spec: Mapping[str, Any], in_channels: int, out_channels: int) -> nn.Module:
    """Instantiate ``spec["class"](in_channels=..., out_channels=..., **spec["kwargs"])``.

    Raises:
        ModelSpecError: missing/invalid keys, unknown class, kwargs that clash with
            the injected channel counts, or a result that is not an ``nn.Module``.
    """
    if not isinstance(spec, Mapping) or "class" not in spec:
        raise ModelSpecError(f"model spec needs a 'class' key, got {spec!r}")
    unknown = set(spec) - {"class", "kwargs"}
    if unknown:
        raise ModelSpecError(f"unknown model spec keys {sorted(unknown)} (allowed: 'class', 'kwargs')")
    kwargs = dict(spec.get("kwargs") or {})
    clash = {"in_channels", "out_channels"} & set(kwargs)
    if clash:
        raise ModelSpecError(f"model kwargs must not set {sorted(clash)}: they follow from the data and class list")
    factory = resolve_class(spec["class"])
    if not callable(factory):
        raise ModelSpecError(f"model class {spec['class']!r} is not callable")
    try:
        model = factory(in_channels=in_channels, out_channels=out_channels, **kwargs)
    except TypeError as exc:
        raise ModelSpecError(f"cannot build {spec['class']!r} with kwargs {kwargs}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"{spec['class']!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def as_heads(output: Any) -> list[Tensor]:
    """Normalise a model output to a list of full-resolution logits ``(B, C, X, Y, Z)``.

    Accepts the forms listed in the module docstring. Heads smaller than the
    first (final) head are upsampled trilinearly to its size.

    Raises:
        TypeError: an unsupported output type.
        ValueError: wrong dimensionality, or heads that disagree in batch or
            channel count or are larger than the final head.
    """
    if isinstance(output, Mapping):
        if "segmentation" not in output:
            raise TypeError(f"model output dict has no 'segmentation' key (keys: {sorted(map(str, output))})")
        output = output["segmentation"]
    if isinstance(output, Tensor):
        if output.ndim == 6:
            heads = list(output.unbind(dim=1))
        elif output.ndim == 5:
            heads = [output]
        else:
            raise ValueError(
                f"model output must be (B, C, X, Y, Z) or (B, heads, C, X, Y, Z), got {tuple(output.shape)}"
            )
    elif isinstance(output, (list, tuple)) and output and all(isinstance(h, Tensor) for h in output):
        heads = list(output)
    else:
        raise TypeError(f"unsupported model output of type {type(output).__name__}")
    first = heads[0]
    if any(h.ndim != 5 for h in heads):
        raise ValueError(f"every head must be (B, C, X, Y, Z), got shapes {[tuple(h.shape) for h in heads]}")
    size = first.shape[2:]
    result = [first]
    for h in heads[1:]:
        if h.shape[:2] != first.shape[:2] or any(a > b for a, b in zip(h.shape[2:], size)):
            raise ValueError(f"head of shape {tuple(h.shape)} does not fit the final head {tuple(first.shape)}")
        if h.shape[2:] != size:
            h = F.interpolate(h, size=size, mode="trilinear", align_corners=False)
        result.append(h)
    return result


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) scalar parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
