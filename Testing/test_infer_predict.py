"""``rsuper predict`` (rsuper.infer.pipeline, output, command_predict): geometry, filters, organs, files, CLI."""

import argparse
import json
import math
import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from infer_helpers import LESION_HU, synthetic_case, threshold_checkpoint
from train_helpers import tiny_cohort, tiny_config, write_config

from rsuper.data.phantom import make_phantom
from rsuper.infer import command_predict
from rsuper.infer.model_io import load_model
from rsuper.infer.output import write_prediction
from rsuper.infer.pipeline import PredictOptions, predict_case
from rsuper.infer.tumours_file import read_tumours_json
from rsuper.infer.volumes import InputError
from rsuper.train.run import TrainingRequest, run_training


@pytest.fixture(scope="module")
def case():
    return synthetic_case()


@pytest.fixture(scope="module")
def threshold_model(case, tmp_path_factory):
    return load_model(threshold_checkpoint(tmp_path_factory.mktemp("thr") / "model.pt", case))


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    """A real checkpoint: the training code run for two steps on tiny phantoms (about 10 s)."""
    root = tmp_path_factory.mktemp("train")
    tiny_cohort(root, n_mask=1, n_report=1)
    config = write_config(root / "train.yaml", tiny_config(root, steps=(1, 1)))
    result = run_training(TrainingRequest(job=root / "job", config=config))
    assert result.state == "finished"
    return result.checkpoint


def _predict_cli(*args) -> int:
    """``rsuper predict ARGS`` through the command module's own parser (as rsuper.cli registers it)."""
    parser = argparse.ArgumentParser()
    command_predict.add_parser(parser.add_subparsers())
    return command_predict.run(parser.parse_args(["predict", *map(str, args)]))


@pytest.mark.parametrize("codes", ["RAS", "LPS", "PSL"])
def test_output_lies_on_the_ct_grid_in_its_own_axis_order(case, threshold_model, codes):
    ct, organs, lesions = case.oriented(codes)
    prediction = predict_case(threshold_model, ct, organs, PredictOptions(min_volume_mm3=0))
    assert prediction.labels.shape == ct.shape and np.allclose(prediction.affine, ct.affine)
    found = prediction.labels > 0
    big = lesions["big"]
    assert (found & big).sum() >= 0.9 * big.sum()  # the bright ellipsoid, where it is in this axis order
    assert not (found & lesions["outside"]).any()  # outside the liver mask (+3 mm): removed
    assert not (found & ~(big | lesions["small"])).any()
    record = next(r for r in prediction.records if r.voxels > 100)
    assert prediction.labels[tuple(np.rint(record.centroid_voxel).astype(int))] == record.id
    world = ct.affine[:3, :3] @ np.asarray(record.centroid_voxel) + ct.affine[:3, 3]
    np.testing.assert_allclose(world, record.centroid_mm, atol=1e-6)
    truth_centre = ct.affine[:3, :3] @ np.argwhere(big).mean(axis=0) + ct.affine[:3, 3]
    np.testing.assert_allclose(record.centroid_mm, truth_centre, atol=1.5)


def test_records_do_not_depend_on_the_axis_order(case, threshold_model):
    results = []
    for codes in ("RAS", "LPS", "PSL"):
        ct, organs, _ = case.oriented(codes)
        results.append(predict_case(threshold_model, ct, organs, PredictOptions(min_volume_mm3=0)).records)
    keys = ("organ", "subsegment", "voxels", "long_axis_mm", "short_axis_mm", "craniocaudal_mm", "centroid_mm")
    for other in results[1:]:
        assert [[r.to_dict()[k] for k in keys] for r in other] == [[r.to_dict()[k] for k in keys] for r in results[0]]


def test_records_measure_the_tumour(case, threshold_model):
    ct, organs, lesions = case.oriented("LPS")
    prediction = predict_case(threshold_model, ct, organs, PredictOptions(min_volume_mm3=0))
    big = max(prediction.records, key=lambda r: r.voxels)
    assert big.channel == "liver_lesion"
    assert (big.organ, big.subsegment, big.organ_label) == ("liver", "segment_5", "liver_segment_5")
    assert big.mean_hu == pytest.approx(LESION_HU, abs=1.0)
    assert 0.99 < big.max_probability <= 1.0
    voxel_ml = 1.5 * 1.5 * 4.0 / 1000.0
    assert big.volume_ml == pytest.approx(big.voxels * voxel_ml)
    assert big.volume_ml == pytest.approx(lesions["big"].sum() * voxel_ml, rel=0.05)
    long_axis, short_axis, _ = case.diameters["big"]
    # the network sees a 2 mm grid: the in-plane diameters stay within a CT voxel (1.5 mm) plus a model voxel
    assert abs(big.long_axis_mm - long_axis) <= 3.5 and abs(big.short_axis_mm - short_axis) <= 3.5


def test_min_volume_filter_keeps_components_of_at_least_the_volume(case, threshold_model):
    ct, organs, _ = case.oriented("RAS")
    everything = predict_case(threshold_model, ct, organs, PredictOptions(min_volume_mm3=0)).records
    assert len(everything) == 2
    small = min(everything, key=lambda r: r.voxels)
    small_mm3 = small.volume_ml * 1000.0
    kept = predict_case(threshold_model, ct, organs, PredictOptions(min_volume_mm3=small_mm3)).records
    assert len(kept) == 2  # exactly the minimum stays
    kept = predict_case(threshold_model, ct, organs, PredictOptions(min_volume_mm3=small_mm3 + 1.0)).records
    assert [r.voxels for r in kept] == [max(r.voxels for r in everything)]
    assert [r.id for r in kept] == [1]  # renumbered from 1


def test_lesions_are_restricted_to_the_mask_or_the_model_organ(case, threshold_model):
    ct, organs, lesions = case.oriented("LPS")
    with_mask = predict_case(threshold_model, ct, organs, PredictOptions(min_volume_mm3=0))
    assert with_mask.organ_source == {"liver_lesion": "mask"}
    model_organ = predict_case(threshold_model, ct, None, PredictOptions(min_volume_mm3=0))
    assert model_organ.organ_source == {"liver_lesion": "model"}  # the organ channel is the whole body here
    assert (model_organ.labels[lesions["outside"]] > 0).mean() > 0.5
    assert {r.organ for r in model_organ.records} == {"liver"}  # no mask: the channel's organ
    assert all(r.subsegment is None and r.organ_label is None for r in model_organ.records)
    free = predict_case(threshold_model, ct, organs, PredictOptions(min_volume_mm3=0, restrict_to_organ=False))
    assert free.organ_source == {"liver_lesion": "none"} and len(free.records) == 3


def test_tta_changes_nothing_for_a_voxelwise_model(case, threshold_model):
    ct, organs, _ = case.oriented("LPS")
    plain = predict_case(threshold_model, ct, organs, PredictOptions(keep_probabilities=True))
    tta = predict_case(threshold_model, ct, organs, PredictOptions(keep_probabilities=True, tta=True))
    assert np.array_equal(plain.labels, tta.labels)
    assert np.abs(plain.probabilities.astype(int) - tta.probabilities.astype(int)).max() <= 1


def test_files_labels_sidecar_and_probabilities(case, threshold_model, tmp_path):
    ct, organs, lesions = case.oriented("LPS")
    ct.set_qform(ct.affine, code=1)
    ct.set_sform(ct.affine, code=2)
    prediction = predict_case(threshold_model, ct, organs, PredictOptions(keep_probabilities=True))
    written = write_prediction(prediction, ct, tmp_path / "out" / "tumours.nii.gz", case_id="syn",
                               model=threshold_model.describe(), probabilities_path=tmp_path / "probs.nii.gz")
    assert written["json"] == tmp_path / "out" / "tumours.json"
    labels = nib.load(written["labels"])
    assert labels.shape == ct.shape and np.allclose(labels.affine, ct.affine, atol=1e-5)
    assert labels.get_data_dtype() == np.uint8 and int(labels.header["sform_code"]) == 2
    assert np.array_equal(np.asarray(labels.dataobj), prediction.labels)
    probs = nib.load(written["probabilities"])
    assert probs.shape == (*ct.shape, 1) and np.allclose(probs.affine, ct.affine, atol=1e-5)
    values = probs.get_fdata(dtype=np.float32)[..., 0]
    assert values.min() >= 0.0 and values.max() <= 1.0 + 1e-6
    near = ndi.binary_dilation(lesions["big"] | lesions["small"] | lesions["outside"], iterations=2)
    body = (np.asarray(ct.dataobj) == 40.0) & ~near  # soft tissue away from the partial volume of the lesions
    assert values[lesions["big"]].mean() > 0.85 and values[body].max() < 0.05
    sidecar = read_tumours_json(written["json"])
    assert sidecar.case_id == "syn" and sidecar.labels_path == written["labels"]
    assert [r.to_dict() for r in sidecar.records] == [r.to_dict() for r in prediction.records]
    data = sidecar.data
    assert data["lesion_channels"] == ["liver_lesion"] and data["options"]["min_volume_mm3"] == 50.0
    assert data["max_probability"]["liver_lesion"] > 0.99 and data["shape"] == list(ct.shape)


def test_organ_mask_on_another_grid_is_refused(case, threshold_model):
    ct, organs, _ = case.oriented("LPS")
    affine = organs.affine.copy()
    affine[0, 3] += 0.5  # half a millimetre off
    shifted = nib.Nifti1Image(np.asarray(organs.dataobj), affine)
    with pytest.raises(InputError, match="organ mask"):
        predict_case(threshold_model, ct, shifted)


# -- a real trained checkpoint, through the command line ----------------------------------------


def test_trained_checkpoint_predicts_on_an_lps_phantom(trained_checkpoint, tmp_path):
    phantom = make_phantom(21, (64, 56, 48), (3.0, 3.0, 5.0), n_tumours=(1, 1), orientation="LPS")
    paths = phantom.save(tmp_path / "case")
    out = tmp_path / "pred" / "tumours.nii.gz"
    rc = _predict_cli("--model", trained_checkpoint, "--ct", paths["ct"], "--organs", paths["organs"], "--out", out,
                      "--probabilities", tmp_path / "p.nii.gz", "--tta", "--threshold", "0.2",
                      "--min-volume-mm3", "0", "--progress", "none")
    assert rc == 0
    labels = nib.load(out)
    assert labels.shape == phantom.ct.shape and np.allclose(labels.affine, phantom.affine, atol=1e-5)
    probs = nib.load(tmp_path / "p.nii.gz").get_fdata(dtype=np.float32)
    assert probs.shape == (*phantom.ct.shape, 3) and 0.0 <= probs.min() and probs.max() <= 1.0 + 1e-6
    sidecar = json.loads((tmp_path / "pred" / "tumours.json").read_text())
    assert sidecar["model"]["ema"] is True and sidecar["options"]["tta"] is True
    assert sidecar["lesion_channels"] == ["liver_lesion", "pancreas_lesion", "kidney_lesion"]
    assert len(sidecar["tumours"]) == int(np.asarray(labels.dataobj).max())
    for record in sidecar["tumours"]:
        assert record["organ"] is not None and math.isfinite(record["mean_hu"])


def test_folder_mode_writes_one_prediction_per_case_and_resumes(trained_checkpoint, tmp_path, capsys):
    for i in range(2):
        make_phantom(30 + i, (64, 56, 48), (3.0, 3.0, 5.0), n_tumours=0).save(tmp_path / "cts" / f"c{i}")
    args = ("--model", trained_checkpoint, "--ct", tmp_path / "cts", "--out", tmp_path / "out", "--progress", "jsonl")
    assert _predict_cli(*args) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c0.json", "c0.nii.gz", "c1.json", "c1.nii.gz"]
    capsys.readouterr()
    assert _predict_cli(*args) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e.get("skipped") for e in events if e["event"] == "progress"] == [True, True]


def test_exit_codes(trained_checkpoint, tmp_path):
    phantom = make_phantom(22, (64, 56, 48), (3.0, 3.0, 5.0), n_tumours=0)
    paths = phantom.save(tmp_path / "case")
    out = tmp_path / "t.nii.gz"
    assert _predict_cli("--model", tmp_path / "missing.pt", "--ct", paths["ct"], "--out", out) == 2
    assert _predict_cli("--model", trained_checkpoint, "--ct", tmp_path / "none.nii.gz", "--out", out) == 2
    assert _predict_cli("--model", trained_checkpoint, "--ct", paths["ct"], "--out", out, "--overlap", "1") == 2
    assert _predict_cli("--model", trained_checkpoint, "--ct", paths["ct"], "--out", out, "--threshold", "1.5") == 2
    other = make_phantom(22, (64, 56, 40), (3.0, 3.0, 5.0), n_tumours=0).save(tmp_path / "other")
    assert _predict_cli("--model", trained_checkpoint, "--ct", paths["ct"], "--organs", other["organs"],
                        "--out", out, "--progress", "none") == 2
    if not torch.cuda.is_available():
        assert _predict_cli("--model", trained_checkpoint, "--ct", paths["ct"], "--out", out, "--device", "cuda") == 2
    assert not out.exists()


# -- sliding-window options used by predict: flip TTA and channel selection -----------------------


def test_tta_averages_the_four_flipped_passes_and_channels_select():
    from rsuper.infer.sliding import TTA_FLIPS, predict_probabilities
    from rsuper.model.unet import UNet3D

    torch.manual_seed(0)
    model = UNet3D(1, 3, features=(4, 8, 16), deep_supervision=0, prior_probability=None).eval()
    image = torch.randn(16, 16, 16)
    plain = predict_probabilities(model, image, 16)
    tta = predict_probabilities(model, image, 16, tta=True)
    with torch.no_grad():
        x = image[None, None]
        manual = sum(torch.sigmoid(model(x.flip(d))[0]).flip(d) for d in TTA_FLIPS)[0].numpy() / len(TTA_FLIPS)
    np.testing.assert_allclose(tta, manual, atol=1e-5)
    assert np.abs(tta - plain).max() > 1e-3  # a real network is not flip-equivariant
    assert 0.0 <= tta.min() and tta.max() <= 1.0
    picked = predict_probabilities(model, image, 16, channels=[2, 0])
    np.testing.assert_allclose(picked, plain[[2, 0]], atol=1e-6)
    with pytest.raises(ValueError):
        predict_probabilities(model, image, 16, channels=[])
