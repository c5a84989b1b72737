"""Exponential moving average (EMA) of the model weights, with the reference's warm-up rule.

After the ``t``-th update (``t = 0, 1, ...``) every parameter is::

    ema <- decay_t * ema + (1 - decay_t) * weights,   decay_t = min(1 - 1 / (t + 1), alpha)

so the first update copies the weights (decay 0), the second averages them
equally (0.5), and from ``t = 1 / (1 - alpha) - 1`` on the decay stays at
``alpha`` (0.99 in the reference). Buffers (e.g. normalisation statistics) are
copied, not averaged.

Built on ``torch.optim.swa_utils.AveragedModel``: its update counter
``n_averaged`` is exactly ``t``, its first update copies, it keeps buffers in
sync when ``use_buffers=False``, and ``n_averaged`` is a buffer, so
``state_dict()`` / ``load_state_dict()`` resume the average exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel


def ema_decay(t: int, alpha: float) -> float:
    """``decay_t = min(1 - 1 / (t + 1), alpha)``."""
    return min(1.0 - 1.0 / (t + 1), alpha)


class ModelEMA(AveragedModel):
    """EMA copy of ``model``: call :meth:`update_parameters` after each optimizer step.

    ``ema.module`` is the averaged network (use it in eval mode for validation
    and inference); ``ema(x)`` forwards to it.

    Args:
        model: the network being trained (deep-copied).
        alpha: the largest decay (0.99 as the reference).
        device: where the copy lives (``None`` = same as ``model``).
    """

    def __init__(self, model: nn.Module, alpha: float = 0.99, device: torch.device | str | None = None) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"EMA alpha must be in [0, 1), got {alpha}")
        super().__init__(model, device=device, multi_avg_fn=self._average, use_buffers=False)
        self.alpha = alpha

    def _average(self, averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        """In place: ``averaged += (1 - decay_t) * (current - averaged)`` with ``t = num_averaged``."""
        weight = 1.0 - ema_decay(int(num_averaged), self.alpha)
        # The fused list update used by torch's own get_ema_multi_avg_fn.
        torch._foreach_lerp_(averaged, current, weight)
