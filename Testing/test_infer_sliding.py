"""Sliding-window inference (rsuper.infer.sliding) and post-processing (rsuper.infer.postprocess)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from rsuper.infer.postprocess import (
    binarise,
    instance_stats,
    instances,
    remove_small_components,
    restrict_to_organs,
)
from rsuper.infer.sliding import count_windows, predict_probabilities
from rsuper.model.unet import UNet3D


class PointwiseHeads(nn.Module):
    """A 1x1x1 convolution (translation-equivariant, no context) returning [final, auxiliary] heads."""

    def __init__(self, channels: int = 2, as_dict: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, channels, kernel_size=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.5, -0.7][:channels]).view(channels, 1, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.2, 0.4][:channels]))
        self.as_dict = as_dict
        self.seen_shapes: list[tuple[int, ...]] = []

    def forward(self, x):
        self.seen_shapes.append(tuple(x.shape))
        final = self.conv(x)
        heads = [final, -100.0 * final]  # the auxiliary head must be ignored
        return {"segmentation": heads} if self.as_dict else heads


def _full_forward(model: PointwiseHeads, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(model.conv(torch.from_numpy(image)[None, None]))[0].numpy()


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
@pytest.mark.parametrize("as_dict", [False, True])
def test_pointwise_model_matches_full_volume_forward(mode, as_dict):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(37, 29, 21)).astype(np.float32)  # not multiples of the patch
    model = PointwiseHeads(as_dict=as_dict)
    probs = predict_probabilities(model, image, patch_size=16, overlap=0.5, batch_size=3, mode=mode)
    assert probs.shape == (2, 37, 29, 21) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, _full_forward(model, image), atol=1e-5)
    assert all(s[2:] == (16, 16, 16) for s in model.seen_shapes)
    assert sum(s[0] for s in model.seen_shapes) == count_windows(image.shape, 16, 0.5)


def test_volume_smaller_than_patch_is_padded_with_the_minimum():
    rng = np.random.default_rng(1)
    image = rng.normal(size=(10, 12, 7)).astype(np.float32)
    model = PointwiseHeads()
    windows: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda m, args: windows.append(args[0].clone()))
    probs = predict_probabilities(model, torch.from_numpy(image), patch_size=(16, 16, 8), overlap=0.25)
    assert probs.shape == (2, 10, 12, 7)
    np.testing.assert_allclose(probs, _full_forward(model, image), atol=1e-5)
    assert len(windows) == 1 and windows[0].shape == (1, 1, 16, 16, 8)
    padded_voxels = 16 * 16 * 8 - image.size
    low = float(image.min())
    assert int((windows[0] == low).sum()) == int((image == low).sum()) + padded_voxels

    windows.clear()
    predict_probabilities(model, image, patch_size=(16, 16, 8), pad_value=7.0)
    assert int((windows[0] == 7.0).sum()) == padded_voxels


def test_progress_callback_mode_and_device_are_kept():
    image = np.zeros((40, 20, 20), np.float32)
    model = PointwiseHeads().train()
    calls: list[tuple[int, int]] = []
    predict_probabilities(model, image, patch_size=16, overlap=0.5, batch_size=2,
                          progress=lambda done, total: calls.append((done, total)))
    total = count_windows(image.shape, 16, 0.5)
    assert total == 4 * 2 * 2  # strides of 8 over 40, 20, 20 voxels (MONAI's grid)
    assert calls[-1] == (total, total)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len(calls) == math.ceil(total / 2)
    assert model.training
    assert next(model.parameters()).device.type == "cpu"


def test_amp_on_cpu_is_close_to_float32():
    image = np.random.default_rng(2).normal(size=(20, 20, 20)).astype(np.float32)
    model = PointwiseHeads()
    probs = predict_probabilities(model, image, patch_size=16, amp=True)
    np.testing.assert_allclose(probs, _full_forward(model, image), atol=2e-2)


def test_real_unet_gives_probabilities_of_every_class():
    torch.manual_seed(0)
    model = UNet3D(in_channels=1, out_channels=3, features=(4, 8, 16), deep_supervision=1)
    image = np.random.default_rng(3).normal(size=(30, 22, 17)).astype(np.float32)
    probs = predict_probabilities(model, image, patch_size=(16, 16, 16), overlap=0.5)
    assert probs.shape == (3, 30, 22, 17)
    assert np.isfinite(probs).all() and probs.min() >= 0.0 and probs.max() <= 1.0
    assert probs.std() > 0


@pytest.mark.parametrize(
    "kwargs", [{"mode": "median"}, {"overlap": 1.0}, {"batch_size": 0}, {"patch_size": (16, 16)}]
)
def test_bad_arguments_are_rejected(kwargs):
    args = {"patch_size": 16, **kwargs}
    with pytest.raises(ValueError):
        predict_probabilities(PointwiseHeads(), np.zeros((8, 8, 8), np.float32), **args)
    with pytest.raises(ValueError):
        predict_probabilities(PointwiseHeads(), np.zeros((8, 8), np.float32), patch_size=16)


# -- post-processing -----------------------------------------------------------------------------


def test_binarise_is_strictly_greater():
    probs = np.array([0.2, 0.5, 0.50001, 0.9])
    assert binarise(probs).tolist() == [False, False, True, True]
    assert binarise(probs, threshold=0.1).all()


def test_restrict_to_organs_uses_a_margin_in_mm():
    spacing = (1.0, 1.0, 2.5)
    organ = np.zeros((30, 30, 20), bool)
    organ[10:15, 10:15, 8:12] = True
    lesion = np.zeros_like(organ)
    inside = (12, 12, 10)
    along_i = {3: (17, 12, 10), 4: (18, 12, 10)}  # 3 mm and 4 mm beyond the organ's face
    along_k = {1: (12, 12, 12), 2: (12, 12, 13)}  # 2.5 mm and 5 mm beyond
    diagonal = (16, 16, 10)  # 2 voxels off in i and j: 2.83 mm
    for p in (inside, *along_i.values(), *along_k.values(), diagonal):
        lesion[p] = True
    kept = restrict_to_organs(lesion, organ, spacing_mm=spacing, dilation_mm=3.0)
    assert kept.dtype == bool and kept.shape == organ.shape
    assert {tuple(map(int, p)) for p in np.argwhere(kept)} == {inside, along_i[3], along_k[1], diagonal}
    tight = restrict_to_organs(lesion, organ, spacing_mm=spacing, dilation_mm=0.0)
    assert {tuple(map(int, p)) for p in np.argwhere(tight)} == {inside}
    assert not restrict_to_organs(lesion, np.zeros_like(organ), spacing_mm=spacing).any()


def test_remove_small_components_in_mm3_at_anisotropic_spacing():
    spacing = (0.5, 0.5, 2.0)  # 0.5 mm³ per voxel
    mask = np.zeros((20, 20, 20), bool)
    mask[1:6, 1:5, 1] = True  # 20 voxels = 10 mm³
    mask[10:13, 10:13, 10] = True
    mask[10:12, 10:12, 11] = True  # 9 + 4 = 13 voxels = 6.5 mm³
    mask[12, 12, 12] = True  # touches the block above only by a corner: same component (26-connectivity)
    mask[18, 18, 18] = True  # 0.5 mm³
    out = remove_small_components(mask, min_volume_mm3=10.0, spacing_mm=spacing)
    assert out.sum() == 20 and out[1:6, 1:5, 1].all()
    out = remove_small_components(mask, min_volume_mm3=7.0, spacing_mm=spacing)
    assert out.sum() == 20 + 14 and out[12, 12, 12] and not out[18, 18, 18]
    assert not remove_small_components(np.zeros_like(mask), 1.0, spacing).any()


def test_instances_uses_26_connectivity_and_uint16():
    mask = np.zeros((10, 10, 10), bool)
    mask[1, 1, 1] = mask[2, 2, 2] = True  # corner neighbours: one lesion
    mask[6:8, 6:8, 6:8] = True
    labels, n = instances(mask)
    assert labels.dtype == np.uint16 and n == 2
    assert labels[1, 1, 1] == labels[2, 2, 2] != labels[6, 6, 6]
    assert set(np.unique(labels)) == {0, 1, 2}


def _rotated_ellipsoid(semi_axes_mm, spacing_mm, angle_rad, shape=(72, 72, 40)):
    centre = (np.array(shape) - 1) / 2 + 0.3
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    d = (grid - centre) * np.asarray(spacing_mm)
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])  # columns: the ellipsoid's axes
    local = d @ rotation
    return (((local / np.asarray(semi_axes_mm)) ** 2).sum(axis=-1) <= 1.0), centre


def test_instance_stats_of_a_rotated_ellipsoid():
    spacing = (0.8, 0.8, 1.5)
    semi = (14.0, 8.0, 5.0)
    mask, centre = _rotated_ellipsoid(semi, spacing, angle_rad=0.6)
    labels = mask.astype(np.uint16) * 3  # any instance value
    (stats,) = instance_stats(labels, spacing)
    assert stats.label == 3 and stats.voxels == int(mask.sum())
    assert stats.volume_mm3 == pytest.approx(mask.sum() * 0.8 * 0.8 * 1.5)
    assert stats.volume_mm3 == pytest.approx(4 / 3 * math.pi * np.prod(semi), rel=0.03)
    np.testing.assert_allclose(stats.centroid_vox, centre, atol=0.5)
    voxel = max(spacing)
    for measured, true in zip(stats.principal_diameters_mm, (28.0, 16.0, 10.0)):
        assert abs(measured - true) <= voxel, stats.principal_diameters_mm
    assert abs(stats.max_diameter_mm - 28.0) <= voxel
    where = np.argwhere(mask)
    assert stats.bbox == tuple((int(a), int(b) + 1) for a, b in zip(where.min(0), where.max(0)))


def test_instance_stats_of_several_instances_in_label_order():
    labels = np.zeros((12, 12, 12), np.uint16)
    labels[1:3, 1:4, 1:2] = 1  # 2 x 3 x 1 box
    labels[6, 6, 6] = 4
    stats = instance_stats(labels, (2.0, 1.0, 1.0))
    assert [s.label for s in stats] == [1, 4]
    box = stats[0]
    assert box.voxels == 6 and box.volume_mm3 == 12.0
    assert box.bbox == ((1, 3), (1, 4), (1, 2))
    assert box.max_diameter_mm == pytest.approx(4.0)  # 2 voxels of 2 mm along i
    single = stats[1]
    assert single.max_diameter_mm == pytest.approx(2.0)
    assert single.principal_diameters_mm[0] > single.principal_diameters_mm[2]
