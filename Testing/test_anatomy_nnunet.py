"""nnU-Net v2 organ models: folder checks, the real predictor on a tiny real model, ``rsuper organs``."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import aff2axcodes, apply_orientation, axcodes2ornt, ornt_transform

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("nnUNet_n_proc_DA", "0")

import nnunet_helpers as helpers  # noqa: E402

from rsuper.anatomy import command_organs  # noqa: E402
from rsuper.anatomy.labels import RSUPER_IMPORT_LABELS  # noqa: E402
from rsuper.anatomy.nnunet_model import NnunetModel, NnunetModelError  # noqa: E402
from rsuper.anatomy.nnunet_runner import (  # noqa: E402
    OrganPredictor, labels_from_nnunet, nnunet_input, predict_organs,
)
from rsuper.data.phantom import make_phantom  # noqa: E402

HELD_OUT_SEEDS = (7, 8)


@pytest.fixture(scope="session")
def untrained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with its random initial weights (for geometry and error handling)."""
    return helpers.build_tiny_model(tmp_path_factory.mktemp("nnunet_untrained"), iterations=0)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model after its short training (about 30 s)."""
    return helpers.build_tiny_model(tmp_path_factory.mktemp("nnunet_trained"))


def _save_ct(folder: Path, name: str, seed: int = 7, orientation: str = "RAS") -> tuple[Path, object]:
    phantom = make_phantom(seed, helpers.SHAPE, helpers.SPACING_MM, n_tumours=0, orientation=orientation)
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(phantom.ct, phantom.affine), str(path))
    return path, phantom


def _copy_model(model: Path, dest: Path, folder_name: str | None = None) -> Path:
    target = dest / helpers.DATASET / (folder_name or model.name)
    shutil.copytree(model, target)
    return target


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))


def _cli(argv: list[str]) -> tuple[int, str, str]:
    """Run ``rsuper organs`` with a parser of its own; returns (exit code, stdout, stderr)."""
    parser = argparse.ArgumentParser(prog="rsuper")
    sub = parser.add_subparsers()
    command_organs.add_parser(sub)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = command_organs.run(parser.parse_args(["organs", *argv]))
        except SystemExit as exc:
            code = int(exc.code)
    return code, out.getvalue(), err.getvalue()


# --- model folder checks ------------------------------------------------------------------------


def test_open_reads_the_model_folder_or_its_dataset_folder(untrained_model: Path) -> None:
    model = NnunetModel.open(untrained_model)
    assert model.folder == untrained_model
    assert model.labels == {"background": 0, **{o: i for i, o in enumerate(helpers.ORGANS, start=1)}}
    assert model.file_ending == ".nii.gz"
    assert model.channel_names == {"0": "CT"}
    assert model.folds == (0,)
    assert model.configuration == "3d_fullres" and model.trainer_name == "nnUNetTrainer"
    assert NnunetModel.open(untrained_model.parent).folder == untrained_model


def _no_dataset_json(f: Path) -> None:
    (f / "dataset.json").unlink()


def _no_plans_json(f: Path) -> None:
    (f / "plans.json").unlink()


def _no_checkpoint(f: Path) -> None:
    (f / "fold_0" / "checkpoint_final.pth").unlink()


def _truncated_checkpoint(f: Path) -> None:
    ckpt = f / "fold_0" / "checkpoint_final.pth"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])


def _region_labels(f: Path) -> None:
    data = json.loads((f / "dataset.json").read_text())
    data["labels"]["kidneys"] = [3, 4]
    (f / "dataset.json").write_text(json.dumps(data))


def _plans_not_json(f: Path) -> None:
    (f / "plans.json").write_text("{ not json")


@pytest.mark.parametrize(
    "damage, expected",
    [
        (_no_dataset_json, "no dataset.json"),
        (_no_plans_json, "no plans.json"),
        (_no_checkpoint, "no fold_*/checkpoint_final.pth"),
        (_truncated_checkpoint, "truncated or not a PyTorch checkpoint"),
        (_region_labels, "region-based"),
        (_plans_not_json, "not valid JSON"),
    ],
)
def test_each_broken_model_folder_gets_its_message(untrained_model: Path, tmp_path: Path, damage, expected) -> None:
    folder = _copy_model(untrained_model, tmp_path)
    damage(folder)
    with pytest.raises(NnunetModelError) as info:
        NnunetModel.open(folder)
    assert expected in str(info.value)
    assert str(folder) in str(info.value)


def test_missing_fold_unknown_configuration_and_ambiguous_folders(untrained_model: Path, tmp_path: Path) -> None:
    with pytest.raises(NnunetModelError, match=r"fold_1/checkpoint_final\.pth: no such checkpoint"):
        NnunetModel.open(untrained_model, folds=[1])
    with pytest.raises(NnunetModelError, match="folds must be numbers or 'all'"):
        NnunetModel.open(untrained_model, folds=["first"])
    lowres = _copy_model(untrained_model, tmp_path / "a", "nnUNetTrainer__nnUNetPlans__3d_lowres")
    with pytest.raises(NnunetModelError, match="configuration '3d_lowres'.*not in the plans"):
        NnunetModel.open(lowres)
    _copy_model(untrained_model, tmp_path / "a")
    with pytest.raises(NnunetModelError, match="several trained models"):
        NnunetModel.open(lowres.parent)
    with pytest.raises(NnunetModelError, match="trained models one level down: Dataset901_TinyOrgans/nnUNetTrainer"):
        NnunetModel.open(tmp_path / "a")
    with pytest.raises(NnunetModelError, match="model folder not found"):
        NnunetModel.open(tmp_path / "nowhere")


def test_checkpoint_with_damaged_contents_is_reported_when_loaded(untrained_model: Path, tmp_path: Path) -> None:
    import zipfile

    folder = _copy_model(untrained_model, tmp_path)
    ckpt = folder / "fold_0" / "checkpoint_final.pth"
    with zipfile.ZipFile(ckpt, "w") as archive:
        archive.writestr("checkpoint_final/data.pkl", b"not a pickle")
    model = NnunetModel.open(folder)  # the archive itself is complete
    with pytest.raises(NnunetModelError, match="unreadable checkpoint") as info:
        model.load_checkpoints()
    assert str(ckpt) in str(info.value)


# --- axis convention and geometry -----------------------------------------------------------------


@pytest.mark.parametrize("orientation", ["RAS", "LPS", "PIR"])
def test_input_matches_nnunet_readers_and_labels_map_back(tmp_path: Path, orientation: str) -> None:
    from nnunetv2.imageio.nibabel_reader_writer import NibabelIO, NibabelIOWithReorient
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO, SimpleITKIOWithReorient

    path, phantom = _save_ct(tmp_path, "ct.nii.gz", orientation=orientation)
    img = nib.load(str(path))
    for reader in (NibabelIO, NibabelIOWithReorient, SimpleITKIO, SimpleITKIOWithReorient):
        with redirect_stdout(io.StringIO()):
            expected, properties = reader().read_images([str(path)])
        data, spacing = nnunet_input(img, reader.__name__)
        assert data.shape == expected.shape and np.array_equal(data, expected), reader.__name__
        assert np.allclose(spacing, properties["spacing"]), reader.__name__
        back = labels_from_nnunet(data[0], img, reader.__name__)
        assert np.array_equal(back, phantom.ct), reader.__name__


@pytest.mark.parametrize("orientation", ["RAS", "LPS"])
def test_prediction_has_the_ct_geometry_and_model_labels(untrained_model: Path, tmp_path: Path,
                                                         orientation: str) -> None:
    ct_path, _ = _save_ct(tmp_path, "ct.nii.gz", orientation=orientation)
    out = tmp_path / "out" / "organs.nii.gz"
    results = predict_organs([ct_path], untrained_model, [out], progress="none")
    assert results[0].ok, results[0].error
    ct, seg = nib.load(str(ct_path)), nib.load(str(out))
    assert seg.shape == ct.shape
    assert np.allclose(seg.affine, ct.affine, atol=1e-5)
    assert aff2axcodes(seg.affine) == tuple(orientation)
    assert seg.get_data_dtype() == np.uint8
    assert int(seg.header["qform_code"]) == int(ct.header["qform_code"])
    assert int(seg.header["sform_code"]) == int(ct.header["sform_code"])
    values = set(np.unique(np.asarray(seg.dataobj)).tolist())
    assert values <= set(NnunetModel.open(untrained_model).labels.values())
    assert values == set(results[0].labels)


def test_fallback_builds_the_network_from_the_plans(untrained_model: Path, tmp_path: Path) -> None:
    """A trainer class that cannot be imported: same weights, same labels, through manual initialisation."""
    import torch

    name = "nnUNetTrainerNotInstalled__nnUNetPlans__3d_fullres"
    folder = _copy_model(untrained_model, tmp_path, name)
    ckpt_path = folder / "fold_0" / "checkpoint_final.pth"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    ckpt["trainer_name"] = "nnUNetTrainerNotInstalled"
    torch.save(ckpt, ckpt_path)
    _, phantom = _save_ct(tmp_path, "ct.nii.gz")
    ct = nib.Nifti1Image(phantom.ct, phantom.affine)

    fallback = OrganPredictor(NnunetModel.open(folder))
    standard = OrganPredictor(NnunetModel.open(untrained_model))
    assert fallback.route.startswith("built from plans.json")
    assert standard.route == "trained model folder"
    assert np.array_equal(fallback.predict(ct), standard.predict(ct))

    plans = json.loads((folder / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"] = [4, 8, 16]
    (folder / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(NnunetModelError, match="weights do not fit the network"):
        OrganPredictor(NnunetModel.open(folder))


def test_multi_channel_models_and_bad_devices_are_refused(untrained_model: Path, tmp_path: Path) -> None:
    folder = _copy_model(untrained_model, tmp_path)
    data = json.loads((folder / "dataset.json").read_text())
    data["channel_names"] = {"0": "CT", "1": "PET"}
    (folder / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(NnunetModelError, match="expects 2 input channels"):
        OrganPredictor(NnunetModel.open(folder))
    with pytest.raises(ValueError, match="axis codes"):
        OrganPredictor(NnunetModel.open(untrained_model), reorient="RAX")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        OrganPredictor(NnunetModel.open(untrained_model), device="gpu0")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            OrganPredictor(NnunetModel.open(untrained_model), device="cuda")


# --- command line ------------------------------------------------------------------------------------


def test_folder_with_a_broken_ct_writes_the_others(untrained_model: Path, tmp_path: Path) -> None:
    cts = tmp_path / "cts"
    _save_ct(cts, "a_0000.nii.gz", seed=7)
    _save_ct(cts, "b.nii.gz", seed=8, orientation="LPS")
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 2), np.int16), np.eye(4)), str(cts / "c_4d.nii.gz"))
    (cts / "d_broken.nii.gz").write_bytes(b"not an image")
    code, out, err = _cli(["--ct", str(cts), "--model", str(untrained_model), "--out", str(tmp_path / "masks"),
                           "--model-labels", "--progress", "jsonl"])
    assert code == 1, err
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["a.nii.gz", "b.nii.gz"]
    events = [json.loads(line) for line in out.splitlines()]
    errors = {e["case_id"]: e["reason"] for e in events if e["event"] == "error"}
    assert set(errors) == {"c_4d.nii.gz", "d_broken.nii.gz"}
    assert "not a 3D image" in errors["c_4d.nii.gz"] and str(cts / "c_4d.nii.gz") in errors["c_4d.nii.gz"]
    assert str(cts / "d_broken.nii.gz") in errors["d_broken.nii.gz"]
    summary = events[-1]
    assert summary["event"] == "summary" and summary["written"] == 2 and summary["failed"] == 2
    code, out, err = _cli(["--ct", str(cts / "a_0000.nii.gz"), str(cts / "b.nii.gz"), "--model",
                           str(untrained_model), "--out", str(tmp_path / "masks"), "--skip-existing",
                           "--progress", "none"])
    assert code == 0 and "2 skipped" in err


def test_cli_bad_arguments_exit_2_with_a_message(untrained_model: Path, tmp_path: Path) -> None:
    ct, _ = _save_ct(tmp_path, "ct.nii.gz")
    broken = _copy_model(untrained_model, tmp_path / "broken")
    _no_plans_json(broken)
    cases = [
        (["--ct", str(ct), "--model", str(broken), "--out", str(tmp_path / "o.nii.gz")], "no plans.json"),
        (["--ct", str(tmp_path / "missing.nii.gz"), "--model", str(untrained_model), "--out", str(tmp_path / "o")],
         "no such CT file"),
        (["--ct", str(ct), str(ct), "--model", str(untrained_model), "--out", str(tmp_path / "o.nii.gz")],
         "give a folder"),
        (["--ct", str(ct), "--model", str(untrained_model), "--out", str(tmp_path)], "would overwrite a CT"),
        (["--model", str(untrained_model), "--out", str(tmp_path / "o.nii.gz")], "needs --ct"),
        (["--ct", str(ct), "--model", str(untrained_model), "--out", str(tmp_path / "o.nii.gz"), "--reorient",
          "XYZ"], "axis codes"),
        (["--import", str(ct), "--out", str(tmp_path / "o")], "give a .nii.gz or .nii file name"),
    ]
    for argv, message in cases:
        code, _, err = _cli(argv)
        assert code == 2 and message in err, (argv, err)
    code, _, err = _cli(["--ct", str(ct), "--out", str(tmp_path / "o.nii.gz")])
    assert code == 2 and "one of the arguments --model --import is required" in err
    assert not (tmp_path / "o.nii.gz").exists()


def test_help_says_the_model_is_user_supplied() -> None:
    code, out, _ = _cli(["--help"])
    assert code == 0
    assert "nothing is downloaded" in out and "dataset.json" in out


def test_import_converts_a_mask_folder_and_splits_the_pancreas(tmp_path: Path) -> None:
    ct_path, phantom = _save_ct(tmp_path, "ct.nii.gz", seed=9)
    masks = tmp_path / "segmentations"
    masks.mkdir()
    truth = helpers.model_labels(phantom.organs)
    for value, organ in enumerate(helpers.ORGANS, start=1):
        nib.save(nib.Nifti1Image((truth == value).astype(np.uint8), phantom.affine), str(masks / f"{organ}.nii.gz"))
    out = tmp_path / "organs.nii.gz"
    code, _, err = _cli(["--import", str(masks), "--ct", str(ct_path), "--out", str(out), "--progress", "none"])
    assert code == 0, err
    labels = np.asarray(nib.load(str(out)).dataobj)
    names = {RSUPER_IMPORT_LABELS.name_of(v) for v in np.unique(labels) if v}
    assert names == {"liver", "spleen", "kidney_right", "kidney_left", "pancreas_head", "pancreas_body",
                     "pancreas_tail"}
    assert np.array_equal(labels > 0, truth > 0)

    other, _ = _save_ct(tmp_path / "other", "ct.nii.gz", orientation="LPS")
    code, _, err = _cli(["--import", str(masks), "--ct", str(other), "--out", str(tmp_path / "x.nii.gz")])
    assert code == 1 and str(other) in err


# --- the briefly trained model (slow) ---------------------------------------------------------------


@pytest.mark.slow
def test_trained_model_segments_held_out_phantoms(trained_model: Path, tmp_path: Path) -> None:
    """Liver and spleen of unseen phantoms, in RAS and (with --reorient RAS) in LPS storage order."""
    model = NnunetModel.open(trained_model)
    predictor = OrganPredictor(model, reorient="RAS")
    to_lps = ornt_transform(axcodes2ornt("RAS"), axcodes2ornt("LPS"))
    for seed in HELD_OUT_SEEDS:
        phantom = make_phantom(seed, helpers.SHAPE, helpers.SPACING_MM)
        labels = predictor.predict(nib.Nifti1Image(phantom.ct, phantom.affine))
        truth = helpers.model_labels(phantom.organs)
        assert _dice(labels == 1, truth == 1) >= 0.6, f"liver, seed {seed}"
        assert _dice(labels == 2, truth == 2) >= 0.5, f"spleen, seed {seed}"
        lps = make_phantom(seed, helpers.SHAPE, helpers.SPACING_MM, orientation="LPS")
        lps_labels = predictor.predict(nib.Nifti1Image(lps.ct, lps.affine))
        assert np.array_equal(lps_labels, apply_orientation(labels, to_lps))


@pytest.mark.slow
def test_mirroring_runs_and_keeps_the_geometry(trained_model: Path, tmp_path: Path) -> None:
    ct_path, _ = _save_ct(tmp_path, "ct.nii.gz", orientation="LPS")
    plain, mirrored = tmp_path / "plain.nii.gz", tmp_path / "tta.nii.gz"
    assert predict_organs([ct_path], trained_model, [mirrored], use_mirroring=True, progress="none")[0].ok
    assert predict_organs([ct_path], trained_model, [plain], use_mirroring=False, progress="none")[0].ok
    a, b = nib.load(str(plain)), nib.load(str(mirrored))
    assert a.shape == b.shape and np.allclose(a.affine, b.affine)
    assert not np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))


@pytest.mark.slow
def test_cli_writes_rsuper_labels_with_the_pancreas_split(trained_model: Path, tmp_path: Path) -> None:
    ct_path, phantom = _save_ct(tmp_path, "ct.nii.gz", seed=HELD_OUT_SEEDS[0])
    out = tmp_path / "organs.nii.gz"
    code, _, err = _cli(["--ct", str(ct_path), "--model", str(trained_model), "--out", str(out),
                         "--progress", "none"])
    assert code == 0, err
    labels = np.asarray(nib.load(str(out)).dataobj)
    names = {RSUPER_IMPORT_LABELS.name_of(v) for v in np.unique(labels) if v}
    assert {"liver", "spleen", "kidney_left", "kidney_right"} <= names
    assert {"pancreas_head", "pancreas_body", "pancreas_tail"} <= names and "pancreas" not in names
    truth_liver = helpers.model_labels(phantom.organs) == 1
    assert _dice(labels == RSUPER_IMPORT_LABELS.label_of("liver"), truth_liver) >= 0.6
