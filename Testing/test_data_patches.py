"""Patch sampling: crops, targets, report supervision, augmentation, step sampler (rsuper.data.*)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS as LM
from rsuper.anatomy.labels import labels_for
from rsuper.data.augment import augment_intensity
from rsuper.data.classes import ClassList
from rsuper.data.crops import CaseGeometry, Crop, extract, mask_crop, report_crop
from rsuper.data.patches import PatchDataset, PatchOptions
from rsuper.data.phantom import TumourSpec
from rsuper.data.sampler import StepSampler, make_loader
from rsuper.report.schema import Tumour

from patch_helpers import make_case

CLASSES = ClassList()  # channels: liver, pancreas, kidney, liver_lesion, pancreas_lesion, kidney_lesion
LIVER, PANCREAS, KIDNEY = 0, 1, 2
N_ORGANS = 3
BODY = labels_for("pancreas", "body", LM)


@pytest.fixture(scope="module")
def cases():
    return {
        "mask_pancreas": make_case(1, "mask", [TumourSpec("pancreas", "head", 15.0)]),
        "mask_liver_kidney": make_case(2, "mask", [TumourSpec("liver", "segment_6", 20.0),
                                                   TumourSpec("kidney_left", None, 15.0)]),
        "report_body": make_case(3, "report", [TumourSpec("pancreas", "body", (14.0, 10.0))],
                                 facts_tumours=[Tumour("pancreas", "body", [14.0, 10.0])]),
        "report_multiple": make_case(4, "report", [TumourSpec("pancreas", "body", 12.0),
                                                   TumourSpec("liver", "segment_6", 18.0)],
                                     facts_tumours=[Tumour("pancreas", "body", [12.0], 2, True),
                                                    Tumour("liver", "segment_6", [18.0])]),
    }


def dataset(cases, names, patch=16, **kw):
    options = PatchOptions(patch_size=patch, **kw.pop("options", {}))
    return PatchDataset([cases[n] for n in names], CLASSES, options, seed=kw.pop("seed", 7), **kw)


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_samples_are_deterministic_and_follow_the_contract(cases):
    ds = dataset(cases, list(cases), patch=(16, 12, 8))
    first = ds[7]
    assert same(first, ds[7])
    fresh = dataset(cases, list(cases), patch=(16, 12, 8))
    fresh[8]  # another sample first: no hidden state
    assert same(first, fresh[7])
    assert not torch.equal(first["image"], ds[8]["image"])
    assert first["image"].shape == (1, 16, 12, 8) and first["image"].dtype == torch.float32
    assert first["target"].shape == (6, 16, 12, 8) and first["target"].dtype == torch.float32
    assert first["unknown"].dtype == torch.bool and first["chosen"].shape == (3, 16, 12, 8)
    assert first["diameters_mm"].shape == (10, 3) and first["volumes_mm3"].shape == (10,)
    assert first["is_report"].dtype == torch.bool and first["is_report"].ndim == 0
    assert first["case_index"].dtype == torch.int64
    torch.testing.assert_close(first["spacing_mm"], torch.tensor([3.0, 3.0, 5.0]))


def test_mixing_follows_report_fraction(cases):
    ds = dataset(cases, list(cases), patch=4, report_fraction=0.3, augment=False)
    drawn = [int(ds[i]["case_index"]) for i in range(300)]
    share = np.mean([ds.cases[i].kind == "report" for i in drawn])
    assert abs(share - 0.3) < 0.09  # 3 sigma of a binomial(300, 0.3) share is 0.08
    assert set(drawn) == set(range(4))
    only_masks = dataset(cases, ["mask_pancreas", "mask_liver_kidney"], patch=4, report_fraction=0.9)
    assert all(only_masks.cases[int(only_masks[i]["case_index"])].kind == "mask" for i in range(20))


def test_mask_crop_kinds(cases):
    geometry = CaseGeometry(cases["mask_pancreas"])
    rng = np.random.default_rng(0)
    kinds = Counter(mask_crop(geometry, (16,) * 3, labels_for("pancreas", None, LM), rng).kind for _ in range(2000))
    assert abs(kinds["tumour"] / 2000 - 0.9) < 0.025
    assert 0.03 < kinds["organ"] / 2000 < 0.07 and 0.03 < kinds["background"] / 2000 < 0.07
    healthy = CaseGeometry(make_case(5, "mask", []))
    kinds = Counter(mask_crop(healthy, (16,) * 3, labels_for("liver", None, LM), rng).kind for _ in range(1000))
    assert set(kinds) == {"organ", "background"} and abs(kinds["organ"] / 1000 - 0.9) < 0.04


def test_mask_patches_hold_tumours_in_the_right_lesion_channel(cases):
    ds = dataset(cases, ["mask_pancreas", "mask_liver_kidney"], patch=20)
    samples = [ds[i] for i in range(150)]
    with_tumour = [s for s in samples if s["target"][N_ORGANS:].any()]
    assert len(with_tumour) / len(samples) > 0.8
    for s in samples:
        assert not s["is_report"] and not s["chosen"].any() and not s["volumes_mm3"].any()
        assert not s["unknown"].any()
        lesion = s["target"][N_ORGANS:]
        if int(s["case_index"]) == 0:  # pancreas head tumour only
            assert not lesion[LIVER].any() and not lesion[KIDNEY].any()
            assert torch.all(s["target"][PANCREAS][lesion[PANCREAS] > 0] == 1)  # inside the organ mask
        else:
            assert not lesion[PANCREAS].any()


def test_tumour_in_an_organ_without_lesion_channel_is_unknown(cases):
    case = cases["mask_liver_kidney"]
    classes = ClassList(organs=("liver", "pancreas"), lesion_organs=("liver", "pancreas"))
    ds = PatchDataset([case], classes, PatchOptions(patch_size=64), augment=False)
    kidney_tumour = (case.tumours > 0) & np.isin(case.organs, labels_for("kidney", None, LM))
    out = ds.assemble(ds.state(0), Crop(np.zeros(3, np.int64), "background"))  # patch covers the volume
    inside = (slice(0, 64), slice(0, 56), slice(0, 48))
    assert np.array_equal(out["unknown"][2][inside], kidney_tumour) and np.array_equal(out["unknown"][3][inside],
                                                                                      kidney_tumour)
    liver_tumour = (case.tumours > 0) & np.isin(case.organs, labels_for("liver", None, LM))
    assert np.array_equal(out["target"][2][inside] > 0, liver_tumour) and not out["target"][3].any()


def test_report_crop_holds_the_whole_segment_with_the_reported_sizes(cases):
    case = cases["report_body"]
    ds = dataset(cases, ["report_body"], patch=32, options={"random_report_p": 0.0})
    total = int(np.isin(case.organs, BODY).sum())
    for i in range(10):
        s = ds[i]
        assert s["is_report"]
        chosen = s["chosen"]
        assert int(chosen[PANCREAS].sum()) == total and not chosen[LIVER].any() and not chosen[KIDNEY].any()
        assert torch.equal(s["unknown"][N_ORGANS + PANCREAS], chosen[PANCREAS])  # one tumour-bearing segment
        assert not s["target"][N_ORGANS:].any()
        assert not s["unknown"][N_ORGANS + LIVER].any() and not s["unknown"][:N_ORGANS].any()
        assert math.isclose(float(s["volumes_mm3"][0]), math.pi / 6 * 14.0 * 10.0 * 12.0, rel_tol=1e-5)
        assert not s["volumes_mm3"][1:].any()
        torch.testing.assert_close(s["diameters_mm"][0], torch.tensor([14.0, 10.0, 12.0]))


def test_report_unknown_is_exactly_the_tumour_segment_in_any_crop(cases):
    case = cases["report_body"]
    ds = dataset(cases, ["report_body"], patch=24)
    state, rng = ds.state(0), np.random.default_rng(3)
    kinds = set()
    for _ in range(20):
        crop = report_crop(state.geometry, (24,) * 3, state.report.groups, state.lesion_labels, rng, random_p=0.5)
        kinds.add(crop.kind)
        out = ds.assemble(state, crop)
        organs = extract(case.organs, crop.start, (24,) * 3)
        assert np.array_equal(out["unknown"][N_ORGANS + PANCREAS], np.isin(organs, BODY))
        assert not out["unknown"][N_ORGANS + LIVER].any() and not out["unknown"][N_ORGANS + KIDNEY].any()
        assert out["chosen"].any() == (crop.kind == "segment")
    assert "segment" in kinds and len(kinds) > 1


def test_multiple_tumours_exclude_the_organ_but_not_the_others(cases):
    ds = dataset(cases, ["report_multiple"], patch=32, options={"random_report_p": 0.0})
    assert "pancreas excluded" in " ".join(ds.report_reasons()["report_4"])
    for i in range(12):
        s = ds[i]
        assert s["is_report"] and s["chosen"][LIVER].any() and not s["chosen"][PANCREAS].any()
        assert torch.equal(s["unknown"][N_ORGANS + PANCREAS], s["target"][PANCREAS] > 0)  # whole pancreas
        assert math.isclose(float(s["volumes_mm3"].sum()), math.pi / 6 * 18.0**3, rel_tol=1e-5)


def test_segment_larger_than_the_patch_falls_back_to_a_random_crop(cases):
    ds = dataset(cases, ["report_body"], patch=6, options={"random_report_p": 0.0})
    samples = [ds[i] for i in range(20)]
    assert not any(bool(s["is_report"]) or s["chosen"].any() or s["volumes_mm3"].any() for s in samples)
    assert any(s["unknown"][N_ORGANS + PANCREAS].any() for s in samples)  # still no negatives there


def test_padding_outside_the_volume(cases):
    case = cases["mask_pancreas"]
    ds = dataset(cases, ["mask_pancreas"], patch=(80, 72, 64))
    out = ds.assemble(ds.state(0), Crop(np.array([-10, -5, -3]), "background"))
    assert np.all(out["image"][:10] == case.image.min()) and np.all(out["image"][:, :5] == case.image.min())
    np.testing.assert_array_equal(out["image"][10:74, 5:61, 3:51], case.image)
    assert not out["target"][:, :10].any() and not out["unknown"].any()
    assert out["target"][N_ORGANS + PANCREAS].sum() == (case.tumours > 0).sum()
    cut = extract(np.arange(24).reshape(2, 3, 4), np.array([1, -1, 2]), (3, 3, 3), pad_value=-1)
    assert cut[1:].min() == -1 and cut[:, 0].max() == -1 and cut[:, :, 2].max() == -1
    assert cut[0, 1, 0] == 12 + 0 + 2 and cut[0, 2, 1] == 12 + 4 + 3


def test_augment_is_finite_random_and_reproducible(cases):
    image = cases["mask_pancreas"].image[:24, :24, :24]
    out = augment_intensity(image, np.random.default_rng(1), p=1.0)
    assert out.dtype == np.float32 and out.shape == image.shape and np.isfinite(out).all()
    assert not np.allclose(out, image, atol=1e-3)
    np.testing.assert_array_equal(out, augment_intensity(image, np.random.default_rng(1), p=1.0))
    np.testing.assert_array_equal(augment_intensity(image, np.random.default_rng(1), p=0.0), image)


def test_step_sampler_ranks_are_disjoint_and_cover_every_index():
    steps, batch, world = 5, 3, 2
    seen = []
    for rank in range(world):
        it = iter(StepSampler(0, batch, rank, world))
        seen.append([next(it) for _ in range(steps * batch)])
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(steps * batch * world))
    resumed = iter(StepSampler(2, batch, 1, world))
    assert [next(resumed) for _ in range(batch)] == seen[1][2 * batch: 3 * batch]


def test_loader_with_workers_gives_the_same_batches(cases):
    ds = dataset(cases, list(cases), patch=8)
    plain, parallel = iter(make_loader(ds, 2, start_step=1)), iter(make_loader(ds, 2, start_step=1, workers=2))
    for _ in range(3):
        a, b = next(plain), next(parallel)
        assert same(a, b) and a["image"].shape == (2, 1, 8, 8, 8)
    assert same(next(iter(make_loader(ds, 2, start_step=0))), {k: torch.stack([ds[0][k], ds[1][k]]) for k in a})


def test_organ_channel_without_a_mask_is_unknown_everywhere(cases):
    classes = ClassList(organs=("liver", "uterus"), lesion_organs=("liver",))  # no uterus label in the map
    ds = PatchDataset([cases["mask_liver_kidney"]], classes, PatchOptions(patch_size=16))
    s = ds[0]
    assert s["unknown"][1].all() and not s["unknown"][0].any() and not s["target"][1].any()
    no_organs = make_case(2, "mask", [TumourSpec("liver", "segment_6", 20.0)], with_organs=False)
    s = PatchDataset([no_organs], classes, PatchOptions(patch_size=16))[0]  # one lesion channel: tumours assigned
    assert s["unknown"][:2].all() and not s["unknown"][2].any() and s["target"][2].any()
