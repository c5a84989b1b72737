"""Small phantom cases for the patch-sampling tests (CachedCase built directly, no cache on disk)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rsuper.data.case import CachedCase
from rsuper.data.phantom import TumourSpec, make_phantom
from rsuper.report.schema import ReportFacts, Tumour

SHAPE = (64, 56, 48)
SPACING_MM = (3.0, 3.0, 5.0)


def normalise(ct: np.ndarray) -> np.ndarray:
    """Clip to [-991, 500] HU and z-score, float32 (as the cache does)."""
    img = np.clip(ct, -991, 500).astype(np.float32)
    return (img - img.mean()) / img.std()


def make_case(seed: int, kind: str, tumours: Sequence[TumourSpec] | None = None,
              facts_tumours: Sequence[Tumour] | None = None, with_organs: bool = True) -> CachedCase:
    """A ``"mask"`` or ``"report"`` CachedCase from a phantom.

    Args:
        seed: phantom seed.
        kind: ``"mask"`` (tumour map kept) or ``"report"`` (tumour map dropped, facts kept).
        tumours: explicit phantom tumours (``None``: one or two random ones).
        facts_tumours: replace the phantom's facts tumours (to test exclusions).
        with_organs: keep the organ mask.
    """
    phantom = make_phantom(seed, SHAPE, SPACING_MM, tumours=None if tumours is None else list(tumours),
                           n_tumours=(1, 2))
    facts = phantom.facts
    if facts_tumours is not None:
        facts = ReportFacts(case_id=facts.case_id, tumours=list(facts_tumours))
    return CachedCase(
        case_id=f"{kind}_{seed}", image=normalise(phantom.ct),
        organs=phantom.organs if with_organs else None,
        tumours=phantom.tumours.astype(np.uint16) if kind == "mask" else None,
        spacing_mm=phantom.spacing_mm, facts=facts, label_map=phantom.label_map, affine=phantom.affine,
    )
