"""Step-indexed sampling: the sample indices of a step depend on the step number only.

Step ``s`` of a run with per-process batch ``B`` and ``W`` processes uses the
global indices ``s·B·W + r·B + j`` (``j < B``) on rank ``r``. Since a
:class:`~rsuper.data.patches.PatchDataset` sample is a pure function of its
index, resuming at step ``s`` reproduces the batches an uninterrupted run
would have seen, without saving sampler state; ranks never share an index.
"""

from __future__ import annotations

from typing import Iterator

from torch.utils.data import DataLoader, Dataset, Sampler


class StepSampler(Sampler[int]):
    """Infinite sampler of global sample indices, step after step from ``start_step``.

    Args:
        start_step: first step to serve (0 for a fresh run, the saved step on resume).
        batch_size: samples per step and process.
        rank: this process's rank.
        world_size: number of processes.
    """

    def __init__(self, start_step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        if start_step < 0 or batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError("need start_step >= 0, batch_size >= 1 and 0 <= rank < world_size")
        self.start_step = int(start_step)
        self.batch_size = int(batch_size)
        self.rank = int(rank)
        self.world_size = int(world_size)

    def indices(self, step: int) -> range:
        """Global sample indices of this rank at ``step``."""
        first = (step * self.world_size + self.rank) * self.batch_size
        return range(first, first + self.batch_size)

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            yield from self.indices(step)
            step += 1


def make_loader(dataset: Dataset, batch_size: int, start_step: int = 0, workers: int = 0, rank: int = 0,
                world_size: int = 1, pin_memory: bool = False, prefetch_factor: int = 2) -> DataLoader:
    """An infinite :class:`DataLoader` whose ``k``-th batch is step ``start_step + k`` of this rank.

    Worker processes are persistent and prefetch ``prefetch_factor`` batches each;
    the batch order does not depend on ``workers`` (DataLoader keeps the sampler's order).
    """
    sampler = StepSampler(start_step, batch_size, rank, world_size)
    extra = {"persistent_workers": True, "prefetch_factor": prefetch_factor} if workers > 0 else {}
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=pin_memory, drop_last=True, **extra)
