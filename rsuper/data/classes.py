"""The model's output channels: organ channels, then one lesion channel per tumour organ.

The network is multi-label (one sigmoid per channel). Channel names are
``<organ>`` for organs and ``<organ>_lesion`` for lesions, organs in the facts
vocabulary of :mod:`rsuper.report.schema`; a paired organ given unsided
(``kidney``) covers both sides (channel ``kidney`` = left + right masks, and
``kidney_lesion`` holds tumours of either kidney).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rsuper.anatomy.labels import LabelMap, labels_for
from rsuper.report.schema import ORGANS, PAIRED_ORGANS

#: Default tumour organs (the paper's pancreas + kidney setting, plus liver).
DEFAULT_LESION_ORGANS: tuple[str, ...] = ("liver", "pancreas", "kidney")


def channel_organ(facts_organ: str, organs: tuple[str, ...]) -> str | None:
    """The channel organ among ``organs`` that holds a facts organ (``kidney_left`` -> ``kidney``)."""
    if facts_organ in organs:
        return facts_organ
    for unsided, sides in PAIRED_ORGANS.items():
        if facts_organ in sides and unsided in organs:
            return unsided
    return None


@dataclass(frozen=True)
class ClassList:
    """Organ and lesion channels of a model.

    Attributes:
        organs: organs with an organ channel (facts names, e.g. ``("liver", "pancreas", "kidney")``).
        lesion_organs: organs with a lesion channel.
    """

    organs: tuple[str, ...] = DEFAULT_LESION_ORGANS
    lesion_organs: tuple[str, ...] = DEFAULT_LESION_ORGANS

    def __post_init__(self) -> None:
        object.__setattr__(self, "organs", tuple(self.organs))
        object.__setattr__(self, "lesion_organs", tuple(self.lesion_organs))
        for name in (*self.organs, *self.lesion_organs):
            if name not in ORGANS:
                raise ValueError(f"unknown organ {name!r}; expected one of the facts vocabulary")
        if not self.lesion_organs:
            raise ValueError("at least one lesion organ is needed")
        if len(set(self.organs)) != len(self.organs) or len(set(self.lesion_organs)) != len(self.lesion_organs):
            raise ValueError("organ names must be unique")

    @property
    def names(self) -> list[str]:
        """Channel names, organs first: ``["liver", ..., "liver_lesion", ...]``."""
        return [*self.organs, *(f"{o}_lesion" for o in self.lesion_organs)]

    @property
    def n_channels(self) -> int:
        """C, the number of output channels."""
        return len(self.organs) + len(self.lesion_organs)

    @property
    def lesion_channels(self) -> tuple[int, ...]:
        """Indices of the lesion channels among all channels."""
        return tuple(range(len(self.organs), self.n_channels))

    def lesion_index(self, facts_organ: str) -> int | None:
        """Position (0..L-1) of the lesion channel holding a facts organ, or ``None``."""
        organ = channel_organ(facts_organ, self.lesion_organs)
        return None if organ is None else self.lesion_organs.index(organ)

    def organ_labels(self, label_map: LabelMap) -> list[list[int]]:
        """Label values of each organ channel in ``label_map`` (empty list: no mask for it)."""
        return [labels_for(o, None, label_map) for o in self.organs]

    def organ_target(self, organs: np.ndarray, label_map: LabelMap) -> np.ndarray:
        """Binary organ channels ``(len(organs), *organs.shape)`` uint8 from a label map array."""
        out = np.zeros((len(self.organs), *organs.shape), np.uint8)
        for c, values in enumerate(self.organ_labels(label_map)):
            if values:
                out[c] = np.isin(organs, values)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in checkpoints)."""
        return {"organs": list(self.organs), "lesion_organs": list(self.lesion_organs), "names": self.names}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ClassList":
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(data["organs"]), tuple(data["lesion_organs"]))
