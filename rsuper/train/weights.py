"""Pick the network weights out of a training checkpoint (EMA weights when present)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

_EMA_PREFIX = "module."


def checkpoint_weights(checkpoint: dict[str, Any], ema: bool = True) -> dict[str, Tensor]:
    """The model ``state_dict`` stored in a checkpoint.

    Args:
        checkpoint: a loaded ``rsuper`` checkpoint (see :mod:`rsuper.train.trainer`).
        ema: prefer the EMA average (the weights to segment with) over the raw
            weights; falls back to the raw ones when the run had no EMA.
    """
    averaged = checkpoint.get("ema") if ema else None
    if averaged:
        # ModelEMA is a torch AveragedModel: its state holds the copy under "module." plus n_averaged.
        return {k[len(_EMA_PREFIX):]: v for k, v in averaged.items() if k.startswith(_EMA_PREFIX)}
    return checkpoint["model"]
