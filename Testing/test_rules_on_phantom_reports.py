"""The rules extractor reads the phantom generator's reports back to their facts truth.

The phantom reports are written by a different component with its own
phrasing templates, so this is an independent check of the extractor.
"""

from collections import Counter

import numpy as np
import pytest

from rsuper.data.phantom_report import write_report
from rsuper.data.phantom_tumours import random_specs
from rsuper.report.rules import RulesExtractor


class _Written:
    """A tumour as the report writer sees it (explicit diameters and malignancy)."""

    def __init__(self, spec):
        self.organ = spec.organ
        self.subsegment = spec.subsegment
        self.diameters_mm = list(spec.full_diameters())
        self.attenuation = spec.attenuation
        self.malignancy = spec.malignancy or "suspicious"


def _key(t):
    return (t.organ, tuple(round(d, 1) for d in t.diameters_mm), t.count, t.count_is_lower_bound)


@pytest.mark.parametrize("seed", range(60))
def test_rules_recover_phantom_report_facts(seed):
    rng = np.random.default_rng(seed)
    specs = random_specs(rng, int(rng.integers(0, 4)))
    report, truth = write_report(f"p{seed}", [_Written(s) for s in specs], rng)
    got = RulesExtractor().extract(truth.case_id, report)
    assert Counter(map(_key, got.tumours)) == Counter(map(_key, truth.tumours)), report
    got_sub = sorted((t.organ, t.subsegment) for t in got.tumours)
    assert got_sub == sorted((t.organ, t.subsegment) for t in truth.tumours), report
    assert set(got.normal_organs) >= set(truth.normal_organs), report
