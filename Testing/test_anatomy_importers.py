"""Importing organ masks made elsewhere (one file per structure, or one multi-label file)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from rsuper.anatomy.importers import GeometryError, import_masks, to_rsuper_labels
from rsuper.anatomy.labels import (
    RSUPER_IMPORT_LABELS, RSUPER_ORGAN_LABELS, WHOLE_LIVER_LABEL, WHOLE_PANCREAS_LABEL, LabelMap,
)
from rsuper.anatomy.pancreas_split import split_pancreas
from rsuper.data.phantom import make_phantom

LM = RSUPER_IMPORT_LABELS
SMALL = {"shape": (64, 56, 48), "spacing_mm": (3.0, 3.0, 5.0), "n_tumours": 0}


def save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


def values(*names: str) -> list[int]:
    return [LM.label_of(n) for n in names]


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(7, orientation="LPS", **SMALL)


def totalsegmentator_folder(folder: Path, ph) -> Path:
    """Binary masks named as TotalSegmentator names them, from the phantom's truth."""
    folder.mkdir()
    org = ph.organs
    lung_left = org == LM.label_of("lung_left")
    k = np.argwhere(lung_left)[:, 2].mean()  # LPS array: k still runs along the patient's axis
    upper = np.zeros_like(lung_left)
    upper[:, :, int(k):] = True
    masks = {
        "liver": np.isin(org, range(24, 32)),
        "pancreas": np.isin(org, values("pancreas_head", "pancreas_body", "pancreas_tail")),
        "kidney_left": org == LM.label_of("kidney_left"),
        "kidney_right": org == LM.label_of("kidney_right"),
        "gallbladder": org == LM.label_of("gall_bladder"),
        "inferior_vena_cava": org == LM.label_of("postcava"),
        "small_bowel": org == LM.label_of("intestine"),
        "urinary_bladder": org == LM.label_of("bladder"),
        "duodenum": org == LM.label_of("duodenum"),
        "spleen": org == LM.label_of("spleen"),
        "lung_upper_lobe_left": lung_left & upper,
        "lung_lower_lobe_left": lung_left & ~upper,
        "stomach": np.zeros_like(lung_left),  # empty organ
        "vertebrae_L1": np.zeros_like(lung_left),  # known, no R-Super label
        "mystery_gland": org == LM.label_of("spleen"),  # unknown name
    }
    for name, mask in masks.items():
        save(folder / f"{name}.nii.gz", mask.astype(np.uint8), ph.affine)
    return folder


def test_totalsegmentator_folder(tmp_path: Path, phantom) -> None:
    ph = phantom
    ct = save(tmp_path / "ct.nii.gz", ph.ct, ph.affine)
    got = import_masks(totalsegmentator_folder(tmp_path / "segmentations", ph), reference_ct=ct)
    assert got.label_map is RSUPER_IMPORT_LABELS
    assert got.labels.dtype == np.uint8 and got.labels.shape == ph.organs.shape
    np.testing.assert_allclose(got.affine, ph.affine)
    org = ph.organs
    expected = {
        WHOLE_LIVER_LABEL: np.isin(org, range(24, 32)),
        WHOLE_PANCREAS_LABEL: np.isin(org, values("pancreas_head", "pancreas_body", "pancreas_tail")),
    }
    for name in ("kidney_left", "kidney_right", "gall_bladder", "postcava", "intestine", "bladder",
                 "duodenum", "spleen", "lung_left"):
        expected[LM.label_of(name)] = org == LM.label_of(name)
    for value, mask in expected.items():
        np.testing.assert_array_equal(got.labels == value, mask, err_msg=LM.name_of(value))
    assert got.unknown_names == ["mystery_gland"]
    text = "\n".join(got.messages)
    assert "stomach.nii.gz: empty" in text
    assert "vertebrae_L1" in text and "mystery_gland" in text
    # mystery_gland (same voxels as the spleen) is skipped, so no overlap is reported.
    assert "overlaps" not in text
    assert got.has_whole_pancreas

    split = split_pancreas(got.labels, got.affine, got.label_map)
    assert not (split.labels == WHOLE_PANCREAS_LABEL).any()
    for name in ("pancreas_head", "pancreas_body", "pancreas_tail"):
        v = LM.label_of(name)
        a, b = split.labels == v, org == v
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.8, name


def test_rsuper_folder_keeps_sub_segments_over_whole_organs(tmp_path: Path, phantom) -> None:
    ph = phantom
    folder = tmp_path / "segmentations"
    folder.mkdir()
    for value, name in RSUPER_ORGAN_LABELS.labels.items():
        if value:
            save(folder / f"{name}.nii.gz", (ph.organs == value).astype(np.uint8), ph.affine)
    # R-Super's split_labels also writes the unions.
    save(folder / "liver.nii.gz", np.isin(ph.organs, range(24, 32)).astype(np.uint8), ph.affine)
    save(folder / "pancreas.nii.gz", np.isin(ph.organs, [32, 33, 34]).astype(np.uint8), ph.affine)
    got = import_masks(folder)
    np.testing.assert_array_equal(got.labels, ph.organs)
    assert not got.has_whole_pancreas
    assert got.unknown_names == [] and not any("overlaps" in m for m in got.messages)


def test_overlapping_files_later_wins(tmp_path: Path) -> None:
    folder = tmp_path / "masks"
    folder.mkdir()
    a = np.zeros((6, 6, 6), np.uint8)
    b = np.zeros_like(a)
    a[0:4] = 1
    b[2:6] = 1
    save(folder / "kidney_left.nii.gz", a, np.eye(4))
    save(folder / "spleen.nii.gz", b, np.eye(4))
    got = import_masks(folder)
    assert (got.labels[2:6] == LM.label_of("spleen")).all()
    assert (got.labels[0:2] == LM.label_of("kidney_left")).all()
    assert any("spleen.nii.gz overlaps kidney_left (72 voxels)" in m for m in got.messages)


def test_geometry_mismatch_names_both_files(tmp_path: Path) -> None:
    folder = tmp_path / "masks"
    folder.mkdir()
    mask = np.ones((6, 6, 6), np.uint8)
    save(folder / "spleen.nii.gz", mask, np.eye(4))
    ct = save(tmp_path / "ct.nii.gz", np.zeros((6, 6, 7), np.int16), np.eye(4))
    with pytest.raises(GeometryError, match=r"spleen\.nii\.gz: shape \(6, 6, 6\) differs from .*ct\.nii\.gz"):
        import_masks(folder, reference_ct=ct)
    shifted = np.eye(4)
    shifted[0, 3] = 0.5
    ct2 = save(tmp_path / "ct2.nii.gz", np.zeros((6, 6, 6), np.int16), shifted)
    with pytest.raises(GeometryError, match=r"spleen\.nii\.gz: affine differs from .*ct2\.nii\.gz by up to 0\.5"):
        import_masks(folder, reference_ct=ct2)
    nearly = np.eye(4)
    nearly[0, 3] = 1e-4  # within the tolerance
    ct3 = save(tmp_path / "ct3.nii.gz", np.zeros((6, 6, 6), np.int16), nearly)
    assert (import_masks(folder, reference_ct=ct3).labels == LM.label_of("spleen")).all()
    # Without a reference CT the files of a folder must agree with the first one.
    save(folder / "stomach.nii.gz", mask, shifted)
    with pytest.raises(GeometryError, match=r"stomach\.nii\.gz: affine differs from .*spleen\.nii\.gz"):
        import_masks(folder)


def test_multilabel_file_with_dataset_json(tmp_path: Path) -> None:
    data = np.zeros((8, 8, 8), np.uint8)
    data[0:2] = 1
    data[2:4] = 7
    data[4:6] = 63
    data[6, :, :] = 26
    data[7, 0, 0] = 99
    dataset = {"channel_names": {"0": "CT"}, "file_ending": ".nii.gz", "labels": {
        "background": 0, "spleen": 1, "pancreas": 7, "inferior_vena_cava": 63, "vertebrae_S1": 26,
        "unheard_of": 99, "liver": 5}}
    (tmp_path / "dataset.json").write_text(json.dumps(dataset))
    path = save(tmp_path / "seg.nii.gz", data, np.diag([0.8, 0.8, 2.0, 1.0]))
    got = import_masks(path, label_map=tmp_path / "dataset.json")
    assert (got.labels[0:2] == LM.label_of("spleen")).all()
    assert (got.labels[2:4] == WHOLE_PANCREAS_LABEL).all()
    assert (got.labels[4:6] == LM.label_of("postcava")).all()
    assert (got.labels[6] == 0).all() and got.labels[7, 0, 0] == 0
    assert got.unknown_names == ["unheard_of"]
    assert any("vertebrae_S1" in m for m in got.messages)
    np.testing.assert_allclose(got.affine, np.diag([0.8, 0.8, 2.0, 1.0]))


def test_multilabel_file_defaults_to_the_rsuper_map(tmp_path: Path, phantom) -> None:
    ph = phantom
    path = save(tmp_path / "organs.nii.gz", ph.organs, ph.affine)
    got = import_masks(path, reference_ct=save(tmp_path / "ct.nii.gz", ph.ct, ph.affine))
    np.testing.assert_array_equal(got.labels, ph.organs)
    assert got.unknown_names == [] and got.messages == []
    # Our own LabelMap JSON, with other values, is read too.
    custom = LabelMap({0: "background", 10: "Kidney Left", 20: "gizmo"}, {0: (0, 0, 0), 10: (1, 2, 3), 20: (4, 5, 6)})
    (tmp_path / "map.json").write_text(json.dumps(custom.to_dict()))
    data = np.zeros((4, 4, 4), np.int16)
    data[0], data[1] = 10, 20
    got = import_masks(save(tmp_path / "c.nii.gz", data, np.eye(4)), label_map=tmp_path / "map.json")
    assert (got.labels[0] == LM.label_of("kidney_left")).all() and (got.labels[1] == 0).all()
    assert got.unknown_names == ["gizmo"]


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        import_masks(tmp_path / "nothing_here")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no NIfTI files"):
        import_masks(empty)
    with pytest.raises(ValueError, match="single multi-label file"):
        import_masks(empty, label_map=RSUPER_IMPORT_LABELS)
    four_d = save(tmp_path / "4d.nii.gz", np.zeros((4, 4, 4, 2), np.uint8), np.eye(4))
    with pytest.raises(ValueError, match=r"4d\.nii\.gz: not a 3D image"):
        import_masks(four_d)
    squeezable = save(tmp_path / "sq.nii.gz", np.ones((4, 4, 4, 1), np.uint8), np.eye(4))
    assert import_masks(squeezable).labels.shape == (4, 4, 4)
    fractional = save(tmp_path / "prob.nii.gz", np.full((4, 4, 4), 0.5, np.float32), np.eye(4))
    with pytest.raises(ValueError, match=r"prob\.nii\.gz: .*whole numbers"):
        import_masks(fractional)
    outside = save(tmp_path / "big.nii.gz", np.full((4, 4, 4), 200, np.uint8), np.eye(4))
    with pytest.raises(ValueError, match=r"big\.nii\.gz: label values \[200\] are not in label map"):
        import_masks(outside)


def test_to_rsuper_labels() -> None:
    source = LabelMap({0: "background", 1: "gallbladder", 2: "kidney_cyst_right", 3: "kidney_right", 4: "blob",
                       5: "heart"}, {v: (v, v, v) for v in range(6)}, name="ts")
    array = np.array([[[0, 1, 2, 3, 4, 5]]], np.uint16)
    labels, unknown = to_rsuper_labels(array, source)
    assert labels.dtype == np.uint8
    assert labels.ravel().tolist() == [0, LM.label_of("gall_bladder"), LM.label_of("kidney_right"),
                                       LM.label_of("kidney_right"), 0, 0]
    assert unknown == ["blob"]
    assert to_rsuper_labels(np.array([[[0, 1]]]), source)[1] == []  # only names present are reported
    with pytest.raises(ValueError, match=r"\[9\]"):
        to_rsuper_labels(np.array([[[9]]]), source)
