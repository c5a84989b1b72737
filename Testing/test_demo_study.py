"""The demo study's case groups: per-group seeding and the healthy share of the held-out set."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np

from rsuper.demo.study import StudyOptions, _write_cases, case_folder

SMALL = StudyOptions(n_mask=1, n_report=1, n_test=4, phantom_shape=(48, 40, 32), phantom_spacing_mm=(4.0, 4.0, 6.0))


def _volumes(folder: Path) -> dict[str, np.ndarray]:
    return {case.name: np.asarray(nib.load(case / "ct.nii.gz").dataobj) for case in sorted(folder.iterdir())}


def test_held_out_cases_do_not_depend_on_the_number_of_report_cases(tmp_path: Path) -> None:
    ids_a = _write_cases(tmp_path / "a", SMALL, log=lambda message: None)
    ids_b = _write_cases(tmp_path / "b", replace(SMALL, n_report=3), log=lambda message: None)
    assert ids_a["test"] == ids_b["test"] and len(ids_b["report"]) == 3
    test_a, test_b = _volumes(tmp_path / "a" / "test_cases"), _volumes(tmp_path / "b" / "test_cases")
    assert all(np.array_equal(test_a[cid], test_b[cid]) for cid in ids_a["test"])
    train_a, train_b = _volumes(tmp_path / "a" / "cases"), _volumes(tmp_path / "b" / "cases")
    assert np.array_equal(train_a["mask_000"], train_b["mask_000"])
    assert np.array_equal(train_a["report_000"], train_b["report_000"])
    # Different groups and different positions still get different phantoms.
    assert not np.array_equal(train_b["report_000"], train_b["report_001"])
    assert not np.array_equal(train_a["mask_000"], train_a["report_000"])


def test_every_fourth_held_out_case_is_healthy(tmp_path: Path) -> None:
    ids = _write_cases(tmp_path, SMALL, log=lambda message: None)
    tumours = {cid: int(np.asarray(nib.load(tmp_path / "test_cases" / cid / "tumours.nii.gz").dataobj).max())
               for cid in ids["test"]}
    assert [cid for cid, n in tumours.items() if n == 0] == ["test_003"]


def test_phantom_tumours_have_the_study_attenuations(tmp_path: Path) -> None:
    for kinds in (("hypo",), ("hyper", "cystic")):
        out = tmp_path / "-".join(kinds)
        ids = _write_cases(out, replace(SMALL, n_report=3, attenuations=kinds), log=lambda message: None)
        seen = set()
        for group, cids in ids.items():
            folder = out / case_folder(group)
            for cid in cids:
                facts = json.loads((folder / cid / "facts.json").read_text(encoding="utf-8"))
                seen |= {t["attenuation"] for t in facts["tumours"]}
        assert seen and seen <= set(kinds)
