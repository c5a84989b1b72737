"""Preprocessing into the cache: orientation, resampling, normalisation, labels, resuming, failures, parallelism."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from rsuper.data import command_preprocess
from rsuper.data.cache import cached_case_ids, case_dir, load_cached_case
from rsuper.data.manifest import read_manifest
from rsuper.data.phantom import TumourSpec, make_cohort, make_phantom
from rsuper.data.preprocess import PreprocessOptions, preprocess_manifest, target_grid

SMALL = {"shape": (64, 56, 48), "spacing_mm": (3.0, 3.0, 5.0)}
FAST = PreprocessOptions(spacing_mm=(2.0, 2.0, 2.5))  # coarse target grid: quick tests


def _write_manifest(path: Path, rows: list[dict]) -> Path:
    cols = ["case_id", "ct", "organs", "tumours", "facts"]
    lines = [",".join(cols)] + [",".join(str(r.get(c, "")) for c in cols) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _arrays(cache: Path, case_id: str) -> dict[str, np.ndarray | None]:
    c = load_cached_case(cache, case_id, mmap=False)
    return {"image": c.image, "organs": c.organs, "tumours": c.tumours, "affine": c.affine}


@pytest.fixture(scope="module")
def cohort_src(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    make_cohort(3, 5, out, **SMALL)
    return out


@pytest.fixture
def cohort(cohort_src: Path, tmp_path: Path) -> Path:
    """A private copy (tests modify files)."""
    return Path(shutil.copytree(cohort_src, tmp_path / "cohort"))


def test_lps_and_ras_phantoms_give_the_same_cache(tmp_path: Path) -> None:
    specs = [TumourSpec("pancreas", "head", 20.0), TumourSpec("kidney_right", None, 16.0)]
    rows = []
    for orient in ("RAS", "LPS"):
        ph = make_phantom(3, tumours=specs, orientation=orient, case_id=orient.lower(), **SMALL)
        paths = ph.save(tmp_path / orient)
        rows.append({"case_id": orient.lower(), **{k: paths[k] for k in ("ct", "organs", "tumours")}})
    ras_img = nib.load(rows[0]["ct"])
    lps_img = nib.load(rows[1]["ct"])
    assert nib.aff2axcodes(lps_img.affine) == ("L", "P", "S")
    assert not np.array_equal(np.asanyarray(ras_img.dataobj), np.asanyarray(lps_img.dataobj))
    m = read_manifest(_write_manifest(tmp_path / "m.csv", rows))
    summary = preprocess_manifest(m, tmp_path / "cache", FAST, progress="none")
    assert summary.done == 2 and not summary.failed
    ras, lps = _arrays(tmp_path / "cache", "ras"), _arrays(tmp_path / "cache", "lps")
    for name in ("image", "organs", "tumours"):
        np.testing.assert_array_equal(ras[name], lps[name], err_msg=name)
    np.testing.assert_allclose(ras["affine"], lps["affine"], atol=1e-6)
    assert nib.aff2axcodes(ras["affine"]) == ("R", "A", "S")


def test_spacing_shape_and_field_of_view_after_resampling(cohort: Path, tmp_path: Path) -> None:
    m = read_manifest(cohort / "manifest.csv")
    preprocess_manifest(m, tmp_path / "cache", FAST, progress="none")
    c = load_cached_case(tmp_path / "cache", "phantom_000")
    src = nib.load(m.rows[0].ct)
    assert c.shape == (96, 84, 96)  # 64*3/2, 56*3/2, 48*5/2.5
    assert c.spacing_mm == (2.0, 2.0, 2.5)
    np.testing.assert_allclose(np.linalg.norm(c.affine[:3, :3], axis=0), c.spacing_mm)
    # the outer voxel edges (the field of view) are those of the source grid
    def corners(aff: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return np.stack([aff @ np.array([-0.5, -0.5, -0.5, 1.0]), aff @ np.array([*(np.asarray(shape) - 0.5), 1.0])])

    np.testing.assert_allclose(corners(c.affine, c.shape), corners(src.affine, src.shape), atol=1e-6)
    meta = json.loads((case_dir(tmp_path / "cache", "phantom_000") / "meta.json").read_text())
    assert meta["shape"] == [96, 84, 96] and meta["version"] == 1 and meta["kind"] == "mask"
    assert meta["has_organs"] and meta["has_tumours"] and meta["preprocess"] == FAST.to_dict()
    # tumours keep their world position (phantom_001 has two)
    c1 = load_cached_case(tmp_path / "cache", "phantom_001")
    src1 = nib.load(m.rows[1].tumours)
    src_t = np.asanyarray(src1.dataobj)
    assert set(np.unique(src_t)) == {0, 1, 2}
    for n in (1, 2):
        centre_src = src1.affine[:3, :3] @ np.argwhere(src_t == n).mean(0) + src1.affine[:3, 3]
        centre_new = c1.affine[:3, :3] @ np.argwhere(np.asarray(c1.tumours) == n).mean(0) + c1.affine[:3, 3]
        assert np.linalg.norm(centre_src - centre_new) < 1.0


def test_target_grid_round_trip_identity() -> None:
    aff = np.diag([3.0, 3.0, 5.0, 1.0])
    shape, scale, offset, new = target_grid((10, 11, 12), aff, (3.0, 3.0, 5.0))
    assert shape == (10, 11, 12)
    np.testing.assert_allclose(scale, 1.0)
    np.testing.assert_allclose(offset, 0.0)
    np.testing.assert_allclose(new, aff)


def test_normalisation_and_labels_without_resampling(cohort: Path, tmp_path: Path) -> None:
    m = read_manifest(cohort / "manifest.csv")
    opts = PreprocessOptions(spacing_mm=(3.0, 3.0, 5.0), hu_clip=(-500.0, 300.0))
    preprocess_manifest(m, tmp_path / "cache", opts, progress="none")
    for row in m:
        c = load_cached_case(tmp_path / "cache", row.case_id)
        hu = nib.load(row.ct).get_fdata().astype(np.float32)
        clipped = np.clip(hu, -500.0, 300.0)
        want = (clipped - clipped.mean()) / clipped.std()
        np.testing.assert_allclose(c.image, want, atol=1e-4)
        assert abs(float(c.image.mean())) < 1e-4 and abs(float(c.image.std()) - 1.0) < 1e-4
        np.testing.assert_array_equal(c.organs, np.asanyarray(nib.load(row.organs).dataobj))
        np.testing.assert_array_equal(c.tumours, np.asanyarray(nib.load(row.tumours).dataobj))
        assert c.image.dtype == np.float32 and c.organs.dtype == np.uint8 and c.tumours.dtype == np.uint16


def test_clip_range_and_label_values_after_resampling(cohort: Path, tmp_path: Path) -> None:
    m = read_manifest(cohort / "manifest.csv")
    preprocess_manifest(m, tmp_path / "cache", PreprocessOptions(spacing_mm=(1.5, 1.5, 2.5)), progress="none")
    row = m.rows[1]
    c = load_cached_case(tmp_path / "cache", row.case_id)
    # the lowest / highest normalised values are the clip bounds -991 / 500 HU (air and bone reach them)
    lo, hi = float(c.image.min()), float(c.image.max())
    std = (500.0 + 991.0) / (hi - lo)  # HU per unit of the z-scored image
    hu = np.asarray(c.image) * std + (-991.0 - lo * std)
    liver = np.isin(np.asarray(c.organs), list(range(24, 32))) & (np.asarray(c.tumours) == 0)
    src_organs = np.asanyarray(nib.load(row.organs).dataobj)
    src_hu = nib.load(row.ct).get_fdata()
    src_liver = np.isin(src_organs, list(range(24, 32))) & (np.asanyarray(nib.load(row.tumours).dataobj) == 0)
    assert abs(np.median(hu[liver]) - np.median(src_hu[src_liver])) < 5.0
    assert set(np.unique(c.organs)) == set(np.unique(src_organs))
    assert set(np.unique(c.tumours)) == set(np.unique(np.asanyarray(nib.load(row.tumours).dataobj)))


def test_binary_tumour_mask_is_split_into_instances(tmp_path: Path) -> None:
    ph = make_phantom(4, tumours=[TumourSpec("liver", "segment_7", 24.0), TumourSpec("kidney_left", None, 16.0),
                                  TumourSpec("pancreas", "tail", 14.0)], **SMALL)
    paths = ph.save(tmp_path / "case")
    binary = (ph.tumours > 0).astype(np.uint8) * 255
    nib.save(nib.Nifti1Image(binary, ph.affine), tmp_path / "binary.nii.gz")
    m = read_manifest(_write_manifest(tmp_path / "m.csv", [
        {"case_id": "inst", "ct": paths["ct"], "tumours": paths["tumours"]},
        {"case_id": "bin", "ct": paths["ct"], "tumours": tmp_path / "binary.nii.gz"},
    ]))
    preprocess_manifest(m, tmp_path / "cache", FAST, progress="none")
    inst = np.asarray(load_cached_case(tmp_path / "cache", "inst").tumours)
    split = np.asarray(load_cached_case(tmp_path / "cache", "bin").tumours)
    assert split.dtype == np.uint16 and set(np.unique(split)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(split > 0, inst > 0)
    for value in (1, 2, 3):  # each component is exactly one instance of the instance map
        assert len(np.unique(inst[split == value])) == 1
    assert ndi.label(split > 0, structure=np.ones((3, 3, 3)))[1] == 3


def _mtimes(cache: Path) -> dict[str, int]:
    return {str(p.relative_to(cache)): p.stat().st_mtime_ns for p in (cache / "cases").rglob("*.npy")}


def test_resume_skips_and_redoes_changed_cases(cohort: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = preprocess_manifest(read_manifest(cohort / "manifest.csv"), cache, FAST, progress="none")
    assert (first.done, first.skipped, first.failed) == (3, 0, [])
    before = _mtimes(cache)
    again = preprocess_manifest(read_manifest(cohort / "manifest.csv"), cache, FAST, progress="none")
    assert (again.done, again.skipped) == (0, 3) and _mtimes(cache) == before
    # a changed organ mask: that case (only) is preprocessed again
    organs_path = cohort / "phantom_001" / "organs.nii.gz"
    img = nib.load(organs_path)
    data = np.asanyarray(img.dataobj).copy()
    data[data == 6] = 0  # the spleen removed
    nib.save(nib.Nifti1Image(data, img.affine), organs_path)
    redo = preprocess_manifest(read_manifest(cohort / "manifest.csv"), cache, FAST, progress="none")
    assert (redo.done, redo.skipped) == (1, 2)
    after = _mtimes(cache)
    assert {k for k in after if after[k] != before[k]} == {f"cases/phantom_001/{n}.npy" for n in
                                                          ("image", "organs", "tumours")}
    assert 6 not in np.unique(load_cached_case(cache, "phantom_001").organs)
    # changed facts only: meta.json is rewritten, the arrays are not
    facts_path = cohort / "phantom_002" / "facts.json"
    facts = json.loads(facts_path.read_text())
    facts["normal_organs"] = ["spleen"]
    facts_path.write_text(json.dumps(facts))
    meta_only = preprocess_manifest(read_manifest(cohort / "manifest.csv"), cache, FAST, progress="none")
    assert (meta_only.done, meta_only.skipped) == (1, 2) and _mtimes(cache) == after
    assert load_cached_case(cache, "phantom_002").facts.normal_organs == ["spleen"]
    # other options: everything again
    other = preprocess_manifest(read_manifest(cohort / "manifest.csv"), cache,
                                PreprocessOptions(spacing_mm=(3.0, 3.0, 3.0)), progress="none")
    assert (other.done, other.skipped) == (3, 0)
    assert load_cached_case(cache, "phantom_000").spacing_mm == (3.0, 3.0, 3.0)


def test_incomplete_case_is_redone_and_never_read(cohort: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    preprocess_manifest(read_manifest(cohort / "manifest.csv"), cache, FAST, progress="none")
    (case_dir(cache, "phantom_001") / "meta.json").unlink()  # as if killed before meta.json was written
    (cache / "index.json").unlink()
    assert cached_case_ids(cache) == ["phantom_000", "phantom_002"]
    with pytest.raises(FileNotFoundError):
        load_cached_case(cache, "phantom_001")
    s = preprocess_manifest(read_manifest(cohort / "manifest.csv"), cache, FAST, progress="none")
    assert (s.done, s.skipped) == (1, 2)
    assert cached_case_ids(cache) == ["phantom_000", "phantom_001", "phantom_002"]


def test_broken_cases_are_recorded_and_never_stop_the_others(cohort: Path, tmp_path: Path) -> None:
    rows = [dict(case_id=f"phantom_00{i}", ct=f"phantom_00{i}/ct.nii.gz", organs=f"phantom_00{i}/organs.nii.gz",
                 tumours=f"phantom_00{i}/tumours.nii.gz") for i in range(3)]
    (cohort / "junk.nii.gz").write_bytes(b"\x1f\x8b junk" * 10)
    rows.insert(1, {"case_id": "gone", "ct": "nope/ct.nii.gz"})
    rows.insert(2, {"case_id": "mismatch", "ct": "phantom_000/ct.nii.gz", "organs": "phantom_001/organs.nii.gz",
                    "tumours": "phantom_002/tumours.nii.gz"})
    rows.append({"case_id": "junk", "ct": "junk.nii.gz"})
    rows.append({"case_id": "phantom_000", "ct": "phantom_000/ct.nii.gz"})  # duplicate id
    # a different grid for "mismatch": shift the organ mask's affine by 1 mm
    img = nib.load(cohort / "phantom_001" / "organs.nii.gz")
    aff = img.affine.copy()
    aff[1, 3] += 1.0
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), aff), cohort / "shifted.nii.gz")
    rows[2]["organs"] = "shifted.nii.gz"
    m = read_manifest(_write_manifest(cohort / "broken.csv", rows))
    cache = tmp_path / "cache"
    s = preprocess_manifest(m, cache, FAST, progress="none")
    assert s.done == 3 and [f[0] for f in s.failed] == ["gone", "mismatch", "junk", "phantom_000"]
    reasons = dict(s.failed)
    assert "not found" in reasons["gone"] and "geometry mismatch" in reasons["mismatch"]
    assert "cannot read" in reasons["junk"] and "more than once" in reasons["phantom_000"]
    errors = [json.loads(x) for x in (cache / "errors.jsonl").read_text().splitlines()]
    assert [e["case_id"] for e in errors] == ["gone", "mismatch", "junk", "phantom_000"]
    assert all(e["reason"] for e in errors)
    assert cached_case_ids(cache) == ["phantom_000", "phantom_001", "phantom_002"]
    assert not case_dir(cache, "gone").exists() and not case_dir(cache, "mismatch").exists()
    # a fixed case is done by the next run; errors.jsonl describes the latest run only
    rows[1]["ct"] = "phantom_001/ct.nii.gz"
    m = read_manifest(_write_manifest(cohort / "broken.csv", rows))
    s2 = preprocess_manifest(m, cache, FAST, progress="none")
    assert (s2.done, s2.skipped) == (1, 3) and "gone" not in dict(s2.failed)
    assert "gone" not in (cache / "errors.jsonl").read_text()


def test_two_workers_give_the_same_cache_as_one(cohort: Path, tmp_path: Path) -> None:
    m = read_manifest(cohort / "manifest.csv")
    one = preprocess_manifest(m, tmp_path / "one", FAST, workers=1, progress="none")
    two = preprocess_manifest(m, tmp_path / "two", FAST, workers=2, progress="none")
    assert (one.done, two.done) == (3, 3) and not two.failed
    assert cached_case_ids(tmp_path / "one") == cached_case_ids(tmp_path / "two") == m.case_ids()
    for case_id in m.case_ids():
        a, b = _arrays(tmp_path / "one", case_id), _arrays(tmp_path / "two", case_id)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"{case_id} {name}")
        meta = [json.loads((case_dir(root, case_id) / "meta.json").read_text()) for root in (tmp_path / "one",
                                                                                           tmp_path / "two")]
        assert meta[0] == meta[1]


def test_load_cached_case_memory_maps_and_restores_facts(cohort: Path, tmp_path: Path) -> None:
    m = read_manifest(cohort / "manifest.csv")
    rows = [{"case_id": "report_only", "ct": m.rows[0].ct, "organs": m.rows[0].organs, "facts": m.rows[0].facts_path},
            {"case_id": "ct_only", "ct": m.rows[0].ct}]
    m2 = read_manifest(_write_manifest(tmp_path / "m.csv", rows))
    preprocess_manifest(m2, tmp_path / "cache", FAST, progress="none")
    rep = load_cached_case(tmp_path / "cache", "report_only")
    assert isinstance(rep.image, np.memmap) and not rep.image.flags.writeable
    assert rep.kind == "report" and rep.tumours is None and rep.organs is not None
    assert rep.facts == m.rows[0].facts and rep.label_map.labels == m.label_map.labels
    bare = load_cached_case(tmp_path / "cache", "ct_only", mmap=False)
    assert not isinstance(bare.image, np.memmap) and bare.kind == "unlabelled"
    assert bare.organs is None and bare.facts is None
    assert not (case_dir(tmp_path / "cache", "ct_only") / "organs.npy").exists()


# ------------------------------------------------------------------ command
def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rsuper")
    sub = parser.add_subparsers()
    command_preprocess.add_parser(sub).set_defaults(_run=command_preprocess.run)
    args = parser.parse_args(argv)
    return args._run(args)


def test_preprocess_command_exit_codes(cohort: Path, tmp_path: Path, capsys) -> None:
    cache = tmp_path / "cache"
    base = ["preprocess", "--manifest", str(cohort / "manifest.csv"), "--cache", str(cache), "--spacing", "2", "2",
            "2.5"]
    assert _cli(base + ["--progress", "jsonl"]) == 0
    events = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events][0] == "start" and events[-1]["event"] == "summary"
    assert sum(e["event"] == "progress" for e in events) == 3 and events[-1]["done"] == 3
    assert load_cached_case(cache, "phantom_000").spacing_mm == (2.0, 2.0, 2.5)
    os.remove(cohort / "phantom_002" / "ct.nii.gz")
    assert _cli(base + ["--progress", "none"]) == 1
    err = capsys.readouterr().err
    assert "failed: phantom_002" in err and "0 preprocessed, 2 already cached, 1 failed" in err
    assert _cli(["preprocess", "--manifest", str(tmp_path / "none.csv"), "--cache", str(cache)]) == 2
    assert _cli(base + ["--workers", "0"]) == 2
    assert _cli(base + ["--hu-clip", "100", "-100"]) == 2
