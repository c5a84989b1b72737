"""R-Super: the segmentation network.

* :class:`rsuper.model.unet.UNet3D`: the default 3D U-Net (MONAI DynUNet) with
  deep supervision and multi-label (sigmoid) logits.
* :mod:`rsuper.model.registry`: :func:`build_model` from a ``{"class", "kwargs"}``
  spec (any ``torch.nn.Module``, see ``docs/custom-models.md``),
  :func:`as_heads` to normalise any model's output to a list of full-resolution
  heads, :func:`count_parameters`.

The names are loaded on first use, so importing this package does not import
torch (command-line start-up stays fast).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "UNet3D": "rsuper.model.unet",
    "DEFAULT_MODEL_SPEC": "rsuper.model.registry",
    "ModelSpecError": "rsuper.model.registry",
    "as_heads": "rsuper.model.registry",
    "build_model": "rsuper.model.registry",
    "count_parameters": "rsuper.model.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
