"""Learning-rate schedule: the reference's exponential warm-up, then polynomial decay.

The factor multiplies the optimizer's base learning rate at optimizer step
``s`` (0-based), with ``W`` warm-up steps and ``S`` total steps::

    factor(s) = exp(10 * (s / W - 1))               for s < W   (exp(-10) ~ 4.5e-5 at s = 0)
              = max(0, 1 - (s - W) / (S - W)) ** 0.9  for s >= W  (1 at s = W, 0 from s = S on)

The reference applies the same formulas per 1,000-iteration "epoch"; here they
run per step, which gives the same curve without the staircase.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

POLY_POWER = 0.9


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (formula in the module docstring)."""
    if step < warmup_steps:
        return math.exp(10.0 * (step / warmup_steps - 1.0))
    remaining = 1.0 - (step - warmup_steps) / (total_steps - warmup_steps)
    return max(0.0, remaining) ** POLY_POWER


def make_scheduler(optimizer: Optimizer, total_steps: int, warmup_steps: int) -> LambdaLR:
    """A ``LambdaLR`` applying :func:`lr_factor`; call ``scheduler.step()`` after each optimizer step.

    Its ``state_dict()`` holds only the step count, so a resumed run rebuilds the
    scheduler with the same arguments and loads the state. Build it *before*
    ``optimizer.load_state_dict``: creating a ``LambdaLR`` resets the groups'
    ``lr`` to step 0's value, and ``scheduler.load_state_dict`` does not set it back.

    Raises:
        ValueError: unless ``0 <= warmup_steps < total_steps``.
    """
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"need 0 <= warmup_steps < total_steps, got {warmup_steps} and {total_steps}")

    def factor(step: int) -> float:
        return lr_factor(step, total_steps, warmup_steps)

    return LambdaLR(optimizer, factor)
