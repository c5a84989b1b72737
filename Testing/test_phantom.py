"""The synthetic abdominal CT phantom: anatomy, tumours, orientation, files, report and facts."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS as LM
from rsuper.anatomy.labels import labels_for
from rsuper.data.phantom import Phantom, TumourPlacementError, TumourSpec, make_cohort, make_phantom
from rsuper.data.phantom_report import round_mm
from rsuper.data.phantom_tumours import random_specs
from rsuper.report.schema import ReportFacts, validate_facts

SPACING = (1.5, 1.5, 2.5)  # non-isotropic on purpose
SPECS = [
    TumourSpec("pancreas", "head", (18.0, 15.0, 12.0), "hypo"),
    TumourSpec("pancreas", "tail", 12.0, "cystic"),
    TumourSpec("liver", "segment_7", (30.0, 24.0), "hyper"),
    TumourSpec("kidney_left", None, (22.0, 18.0, 16.0), "hypo", "malignant"),
]


@pytest.fixture(scope="module")
def with_tumours() -> Phantom:
    return make_phantom(21, spacing_mm=SPACING, tumours=SPECS)


@pytest.fixture(scope="module")
def healthy() -> Phantom:
    return make_phantom(22, tumours=[])


def _centre(ph: Phantom, mask: np.ndarray) -> np.ndarray:
    return ph.world_mm(np.argwhere(mask)).mean(axis=0)


def test_same_seed_same_case_other_seed_other_case() -> None:
    a, b, c = (make_phantom(s, shape=(64, 56, 48), spacing_mm=(3.0, 3.0, 5.0)) for s in (5, 5, 6))
    for name in ("ct", "organs", "tumours", "affine"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.report == b.report and a.facts == b.facts
    assert not np.array_equal(a.ct, c.ct)
    assert not np.array_equal(a.organs, c.organs)


def test_types_and_hu_bands(healthy: Phantom) -> None:
    assert healthy.ct.dtype == np.int16 and healthy.organs.dtype == np.uint8
    assert healthy.ct.shape == healthy.organs.shape == healthy.tumours.shape == (128, 112, 96)
    assert not healthy.tumours.any() and healthy.facts.tumours == []
    assert set(np.unique(healthy.organs)) == set(LM.labels), "every organ of the map is drawn"
    bands = {  # organ: (low, high) median HU
        "liver_segment_5": (45, 75), "spleen": (35, 65), "kidney_left": (120, 180), "kidney_right": (120, 180),
        "pancreas_body": (30, 60), "aorta": (150, 200), "postcava": (140, 195), "gall_bladder": (-10, 30),
        "lung_left": (-950, -700), "bladder": (-10, 30), "femur_left": (250, 900),
    }
    for name, (lo, hi) in bands.items():
        median = float(np.median(healthy.ct[healthy.organs == LM.label_of(name)]))
        assert lo <= median <= hi, f"{name}: median {median} HU not in [{lo}, {hi}]"
    corner = healthy.ct[:8, :8, :]
    assert np.median(corner) < -900, "air outside the body"
    liver = healthy.ct[np.isin(healthy.organs, labels_for("liver"))].astype(float)
    assert 5.0 < liver.std() < 25.0, "noise of about 10-15 HU"


def test_laterality_in_world_coordinates() -> None:
    for orientation in ("RAS", "LPS", "SPL"):
        ph = make_phantom(3, shape=(64, 56, 48), spacing_mm=(3.0, 3.0, 5.0), tumours=[], orientation=orientation)
        assert "".join(nib.aff2axcodes(ph.affine)) == orientation
        x = {name: _centre(ph, ph.organs == LM.label_of(name))[0]
             for name in ("kidney_left", "kidney_right", "spleen", "pancreas_head", "pancreas_tail",
                          "liver_segment_6", "femur_left", "lung_left")}
        # RAS+ world: +x is the patient's right, so the patient's left has x < 0.
        assert x["kidney_left"] < 0 < x["kidney_right"]
        assert x["spleen"] < 0 < x["liver_segment_6"]
        assert x["pancreas_tail"] < x["pancreas_head"] and x["pancreas_head"] > 0
        assert x["femur_left"] < 0 and x["lung_left"] < 0


def test_tumours_lie_in_their_subsegment_with_the_ellipsoid_volume(with_tumours: Phantom) -> None:
    ph = with_tumours
    assert [t.instance for t in ph.tumour_specs] == [1, 2, 3, 4]
    assert int(ph.tumours.max()) == 4
    voxel = float(np.prod(SPACING))
    for spec, t in zip(SPECS, ph.tumour_specs):
        mask = ph.tumours == t.instance
        assert np.isin(ph.organs[mask], labels_for(spec.organ, spec.subsegment)).all()
        assert t.diameters_mm == spec.full_diameters()
        volume = mask.sum() * voxel
        assert abs(volume / t.volume_mm3 - 1.0) < 0.15, f"{t.organ}: {volume:.0f} vs {t.volume_mm3:.0f} mm^3"
        np.testing.assert_allclose(_centre(ph, mask), t.centre_mm, atol=2.0)
        organ_hu = np.median(ph.ct[np.isin(ph.organs, labels_for(spec.organ, spec.subsegment)) & ~mask])
        tumour_hu = np.median(ph.ct[mask])
        if spec.attenuation == "hypo":
            assert 25 < organ_hu - tumour_hu < 75
        elif spec.attenuation == "hyper":
            assert 25 < tumour_hu - organ_hu < 75
        else:
            assert -10 < tumour_hu < 20


def test_report_states_every_tumour_and_facts_hold_the_truth(with_tumours: Phantom) -> None:
    ph = with_tumours
    validate_facts(ph.facts, ph.report)  # includes evidence spans
    assert len(ph.facts.tumours) == len(SPECS)
    findings = ph.report.split("IMPRESSION:")[0]
    truth = sorted((t.organ, t.subsegment, t.attenuation, t.malignancy) for t in ph.tumour_specs)
    assert sorted((f.organ, f.subsegment, f.attenuation, f.malignancy) for f in ph.facts.tumours) == truth
    for placed in ph.tumour_specs:
        (fact,) = [f for f in ph.facts.tumours if (f.organ, f.subsegment) == (placed.organ, placed.subsegment)]
        n = len(fact.diameters_mm)
        assert 1 <= n <= 3 and fact.count == 1
        assert fact.diameters_mm == [float(round_mm(d)) for d in placed.diameters_mm[:n]]
        as_mm = " x ".join(str(int(d)) for d in fact.diameters_mm) + " mm"
        as_cm = [f"{d / 10:.1f}" for d in fact.diameters_mm]
        forms = (as_mm, " x ".join(as_cm) + " cm", " x ".join(c + " cm" for c in as_cm))
        assert any(form in fact.evidence.text for form in forms), fact.evidence.text
        assert fact.evidence.text in findings
    for organ in ph.facts.normal_organs:
        assert organ not in {t.organ for t in ph.tumour_specs}
    assert "FINDINGS:" in ph.report and "IMPRESSION:" in ph.report


def test_random_tumours_and_healthy_cases() -> None:
    small = dict(shape=(64, 56, 48), spacing_mm=(3.0, 3.0, 5.0))
    seen_units = set()
    for seed in range(4):
        ph = make_phantom(seed, n_tumours=(1, 3), **small)
        validate_facts(ph.facts, ph.report)
        assert len(ph.tumour_specs) == len(ph.facts.tumours) == int(ph.tumours.max())
        for t in ph.tumour_specs:
            assert t.organ in ("pancreas", "liver", "kidney_left", "kidney_right")
            assert np.isin(ph.organs[ph.tumours == t.instance], labels_for(t.organ, t.subsegment)).all()
            assert 5.0 <= t.diameters_mm[0] <= 40.0
        seen_units |= {u for u in (" mm", " cm") if u in ph.report.split("IMPRESSION:")[1]}
    assert seen_units == {" mm", " cm"}, "sizes are written in both units across seeds"
    healthy = make_phantom(0, n_tumours=0, **small)
    assert not healthy.tumours.any() and not healthy.facts.tumours
    normal = healthy.facts.normal_organs
    assert normal and len(set(normal)) == len(normal)


def test_drawn_tumours_respect_the_size_floor_and_attenuation_choice() -> None:
    rng = np.random.default_rng(5)
    specs = random_specs(rng, 60, min_diameter_mm=16.0, attenuations=("hypo",))
    assert {s.attenuation for s in specs} == {"hypo"}
    assert min(s.diameters_mm[0] for s in specs) >= 16.0
    both = random_specs(np.random.default_rng(5), 60, attenuations=("hyper", "cystic"))
    assert {s.attenuation for s in both} == {"hyper", "cystic"}
    # Every kind allowed draws exactly what the default draws (the demo's phantoms stay the same).
    assert random_specs(np.random.default_rng(9), 20) == random_specs(
        np.random.default_rng(9), 20, attenuations=("hypo", "hyper", "cystic"))
    ph = make_phantom(3, shape=(64, 56, 48), spacing_mm=(3.0, 3.0, 5.0), n_tumours=2, min_diameter_mm=16.0,
                      attenuations=("hyper",))
    assert ph.tumour_specs and all(t.attenuation == "hyper" for t in ph.tumour_specs)
    for bad in ((), ("bright",)):
        with pytest.raises(ValueError, match="attenuations"):
            random_specs(rng, 1, attenuations=bad)


def test_contrast_option_sets_the_tumour_to_organ_difference() -> None:
    small = dict(shape=(64, 56, 48), spacing_mm=(3.0, 3.0, 5.0))
    specs = [TumourSpec("liver", None, 24.0, "hypo"), TumourSpec("kidney_left", None, 18.0, "hyper")]
    weak = make_phantom(4, tumours=specs, contrast_hu=(40.0, 40.0), **small)
    strong = make_phantom(4, tumours=specs, contrast_hu=(100.0, 100.0), **small)
    hypo, hyper = (s.hu - w.hu for s, w in zip(strong.tumour_specs, weak.tumour_specs))
    assert hypo == pytest.approx(-60.0) and hyper == pytest.approx(60.0)
    inside = strong.tumours == 1
    assert strong.ct[inside].mean() < weak.ct[inside].mean() - 40.0


def test_impossible_or_invalid_tumours_fail_clearly() -> None:
    small = dict(shape=(64, 56, 48), spacing_mm=(3.0, 3.0, 5.0))
    with pytest.raises(TumourPlacementError, match="adrenal_left"):
        make_phantom(1, tumours=[TumourSpec("adrenal_left", None, 40.0)], **small)
    with pytest.raises(ValueError, match="side"):
        make_phantom(1, tumours=[TumourSpec("kidney", None, 10.0)], **small)
    with pytest.raises(ValueError, match="upper_pole"):
        make_phantom(1, tumours=[TumourSpec("kidney_left", "upper_pole", 10.0)], **small)
    with pytest.raises(ValueError, match="attenuation"):
        make_phantom(1, tumours=[TumourSpec("liver", None, 10.0, "bright")], **small)


def test_save_round_trips_through_nibabel(with_tumours: Phantom, tmp_path) -> None:
    paths = with_tumours.save(tmp_path / "case")
    for kind, dtype in (("ct", np.int16), ("organs", np.uint8), ("tumours", np.uint8)):
        img = nib.load(paths[kind])
        np.testing.assert_allclose(img.affine, with_tumours.affine, atol=1e-5)
        data = np.asarray(img.dataobj)
        assert data.dtype == dtype
        np.testing.assert_array_equal(data, getattr(with_tumours, kind))
    assert paths["report"].read_text(encoding="utf-8") == with_tumours.report
    facts = ReportFacts.from_dict(json.loads(paths["facts"].read_text(encoding="utf-8")))
    assert facts == with_tumours.facts
    validate_facts(facts, paths["report"].read_text(encoding="utf-8"))


def test_make_cohort_writes_cases_and_tables(tmp_path) -> None:
    rows = make_cohort(3, seed=7, out_dir=tmp_path, shape=(64, 56, 48), spacing_mm=(3.0, 3.0, 5.0))
    assert [r["case_id"] for r in rows] == ["phantom_000", "phantom_001", "phantom_002"]
    with open(tmp_path / "manifest.csv", newline="", encoding="utf-8") as fh:
        manifest = list(csv.DictReader(fh))
    assert [m["case_id"] for m in manifest] == ["phantom_000", "phantom_001", "phantom_002"]
    for m in manifest:
        for key in ("ct", "organs", "tumours", "report", "facts"):
            assert (tmp_path / m[key]).is_file()
    with open(tmp_path / "reports.csv", newline="", encoding="utf-8") as fh:
        reports = {r["case_id"]: r["report"] for r in csv.DictReader(fh)}
    for m in manifest:
        assert reports[m["case_id"]] == (tmp_path / m["report"]).read_text(encoding="utf-8")
    assert len(set(reports.values())) == 3, "cases differ"
