"""Ball loss and its pseudo-masks: defining properties on small physical scenes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from rsuper.losses import BallLossOptions, PseudoMaskOptions, ball_loss, gwrp_weights
from test_losses_scenes import blob_logits, diameters, distance_mm, grid_shape, sphere, sphere_volume

ISO = (1.0, 1.0, 1.0)
ANISO = (1.5, 1.5, 3.0)
FOV = (72.0, 36.0, 36.0)
ORGAN = ((18.0, 18.0, 18.0), 11.0)
FAR = (58.5, 18.0, 18.0)  # > 15 mm outside the organ: outside the dilated segment
TWO_PLACES = [(12.0, 18.0, 18.0), (24.0, 18.0, 18.0)]


def scene(spacing=ISO, blobs=(), **logit_kwargs):
    shape = grid_shape(FOV, spacing)
    chosen = sphere(shape, spacing, *ORGAN)[None, None]
    logits = blob_logits(shape, spacing, blobs, **logit_kwargs)[None, None]
    return logits, chosen


def run(logits, chosen, report, spacing=ISO, **kwargs):
    return ball_loss(logits, chosen, report, spacing, unknown=chosen, **kwargs)


def components(mask):
    return ndi.label(mask.numpy())[1]


def test_prediction_equal_to_the_report_scores_low_empty_or_wrong_organ_high():
    report = diameters((8, 8, 8))
    right = run(*scene(blobs=[((15.0, 20.0, 18.0), 4.0)]), report)
    empty = run(*scene(), report)
    wrong = run(*scene(blobs=[(FAR, 4.0)]), report)
    assert right.total.item() < 0.1
    assert empty.total.item() > 0.9 and wrong.total.item() > 0.9
    # The pseudo-mask sits on the predicted tumour, and nowhere near the wrong organ.
    centre = right.centres[0, 0].tolist()
    assert max(abs(a - b) for a, b in zip(centre, (14.5, 19.5, 17.5))) <= 1
    assert wrong.positive[0, 0].nonzero()[:, 0].max() < 35


def test_gradient_reaches_the_logits_and_skips_ignored_voxels():
    logits, chosen = scene(blobs=[((15.0, 20.0, 18.0), 4.0)], height=3.0)
    logits.requires_grad_(True)
    unknown = chosen | sphere(chosen.shape[2:], ISO, FAR, 5.0)  # a second unknown organ, far away
    terms = ball_loss(logits, chosen, diameters((8,)), ISO, unknown=unknown)
    terms.total.backward()
    grad = logits.grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert (grad[terms.ignored] == 0).all()
    assert terms.ignored[0, 0][sphere(chosen.shape[2:], ISO, FAR, 5.0)].all()
    assert (grad[terms.positive] < 0).all()  # positives are pushed up


def test_two_tumours_need_two_blobs():
    report = diameters((8, 8, 8), (8, 8, 8))
    two_blobs = run(*scene(blobs=[(p, 4.0) for p in TWO_PLACES]), report)
    one_blob = run(*scene(blobs=[(ORGAN[0], 4.0 * 2 ** (1 / 3))]), report)  # same total volume
    assert two_blobs.total.item() < 0.5 * one_blob.total.item()
    assert components(two_blobs.positive[0, 0]) == 2
    # Each pseudo-mask lies inside its own predicted blob.
    for place in TWO_PLACES:
        near = sphere(grid_shape(FOV, ISO), ISO, place, 4.0)
        assert (two_blobs.positive[0, 0] & near).sum() == two_blobs.positive[0, 0].sum() // 2


@pytest.mark.parametrize("spacing", [ISO, ANISO])
def test_sequential_masking_gives_disjoint_masks_of_the_right_size(spacing):
    report = diameters((8,), (8,), (8,))
    terms = run(*scene(spacing, blobs=[(ORGAN[0], 4.0)]), report, spacing)
    voxel = math.prod(spacing)
    core = math.floor(0.8 * sphere_volume(8) / voxel)
    assert terms.positive.sum().item() == 3 * core  # no overlaps
    assert len({tuple(c) for c in terms.centres[0, :3].tolist()}) == 3
    assert (terms.centres[0, 3:] == -1).all()


@pytest.mark.parametrize("spacing", [ISO, ANISO])
def test_volume_mode_sets_the_pseudo_mask_size(spacing):
    report = diameters((16, 8, 8))
    logits, chosen = scene(spacing)
    voxel = math.prod(spacing)
    sizes = {}
    for mode in ("ellipsoid", "sphere"):
        options = BallLossOptions(pseudo_mask=PseudoMaskOptions(volume_mode=mode))
        sizes[mode] = run(logits, chosen, report, spacing, options=options).positive.sum().item()
    v_ellipsoid = math.pi / 6 * 16 * 8 * 8
    assert sizes["ellipsoid"] == math.floor(0.8 * v_ellipsoid / voxel)
    assert sizes["sphere"] == math.floor(0.8 * sphere_volume(16) / voxel)
    assert sizes["sphere"] / sizes["ellipsoid"] == pytest.approx(4.0, rel=0.02)


def test_pseudo_mask_stays_in_the_enlarged_ball_and_is_compact():
    report = diameters((10, 10, 10))
    # Flat prediction in the organ: ties everywhere, the mask must still be one ball.
    logits, chosen = scene(blobs=[(ORGAN[0], 11.0)], height=12.0)
    terms = run(logits, chosen, report)
    centre = terms.centres[0, 0].tolist()
    r = distance_mm(grid_shape(FOV, ISO), ISO, [c + 0.5 for c in centre])
    positive = terms.positive[0, 0]
    assert r[positive].max() <= 1.2 * 5.0
    assert r[positive].max() <= (3 * positive.sum().item() / (4 * math.pi)) ** (1 / 3) + 1.0
    assert components(positive) == 1


def test_ignored_border_surrounds_the_positives():
    terms = run(*scene(blobs=[((15.0, 20.0, 18.0), 4.0)]), diameters((8,)))
    positive = terms.positive[0, 0].numpy()
    border = terms.ignored[0, 0].numpy()  # nothing else is ignored here
    ring = ndi.binary_dilation(positive, iterations=2) & ~positive
    assert border[ring].all()
    assert not border[positive].any()


def test_anisotropic_spacing_keeps_physical_volumes():
    report = diameters((12, 10, 10))
    blob = [((16.0, 18.0, 20.0), 5.5)]
    volumes = {}
    for spacing in (ISO, ANISO):
        terms = run(*scene(spacing, blob), report, spacing)
        volumes[spacing] = terms.positive.sum().item() * math.prod(spacing)
        assert terms.total.item() < 0.15
    expected = 0.8 * math.pi / 6 * 12 * 10 * 10
    for value in volumes.values():
        assert value == pytest.approx(expected, abs=math.prod(ANISO))


def test_mask_only_batch_gives_negatives_except_labelled_voxels():
    shape = grid_shape(FOV, ISO)
    tumour = sphere(shape, ISO, (20, 20, 20), 4.0)[None, None]
    logits = torch.randn(1, 1, *shape, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    terms = ball_loss(logits, None, None, ISO, target=tumour)
    expected = (F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none") * ~tumour).mean()
    assert terms.bce.item() == pytest.approx(expected.item(), rel=1e-5)
    assert terms.tversky.item() == 0.0 and not terms.positive.any()
    terms.total.backward()
    assert (logits.grad[tumour] == 0).all() and (logits.grad[~tumour] > 0).all()


def test_healthy_report_pushes_the_segment_down():
    logits, chosen = scene(blobs=[(ORGAN[0], 5.0)], height=3.0)
    logits.requires_grad_(True)
    terms = run(logits, chosen, torch.zeros(1, 10, 3))
    terms.total.backward()
    assert not terms.positive.any() and terms.tversky.item() == 0.0
    assert (logits.grad[chosen] > 0).all()


def test_multichannel_report_uses_only_the_chosen_channel():
    logits, chosen = scene(blobs=[((15.0, 20.0, 18.0), 4.0)])
    logits2 = torch.cat([torch.full_like(logits, -12.0), logits], dim=1)
    chosen2 = torch.cat([torch.zeros_like(chosen), chosen], dim=1)
    terms = ball_loss(logits2, chosen2, diameters((8,)), ISO, unknown=chosen2)
    assert not terms.positive[0, 0].any() and terms.positive[0, 1].any()
    single = run(logits, chosen, diameters((8,)))
    assert torch.equal(terms.positive[0, 1], single.positive[0, 0])
    with pytest.raises(ValueError):
        ball_loss(logits2, torch.cat([chosen, chosen], dim=1), diameters((8,)), ISO)


def test_batch_entries_are_independent():
    a_logits, chosen = scene(blobs=[((15.0, 20.0, 18.0), 4.0)], height=3.0)
    b_logits, _ = scene(blobs=[(p, 4.0) for p in TWO_PLACES])
    c_logits, _ = scene(blobs=[(ORGAN[0], 6.0)], height=5.0)
    chosen2 = torch.cat([chosen, chosen])
    first = ball_loss(torch.cat([a_logits, b_logits]), chosen2, torch.cat([diameters((8,)), diameters((8,), (8,))]),
                      ISO, unknown=chosen2, reduction="none")
    second = ball_loss(torch.cat([a_logits, c_logits]), chosen2, torch.cat([diameters((8,)), diameters((12, 9))]),
                       torch.tensor([ISO, ANISO]), unknown=chosen2, reduction="none")
    assert first.bce[0].item() == pytest.approx(second.bce[0].item(), rel=1e-6, abs=1e-9)
    assert first.tversky[0].item() == pytest.approx(second.tversky[0].item(), rel=1e-6, abs=1e-9)
    assert torch.equal(first.positive[0], second.positive[0])
    assert first.bce[1].item() != second.bce[1].item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_extreme_logits_and_half_precision_stay_finite(dtype, scale):
    logits, chosen = scene(blobs=[((15.0, 20.0, 18.0), 4.0)])
    logits = (logits.sign() * scale).to(dtype).requires_grad_(True)
    terms = run(logits, chosen, diameters((8,), (6,)))
    terms.total.backward()
    assert torch.isfinite(terms.bce) and torch.isfinite(terms.tversky)
    assert logits.grad.dtype == dtype and torch.isfinite(logits.grad.float()).all()
    assert terms.positive.sum() > 0


def test_gwrp_weights_rank_the_positives():
    probs = torch.rand(2, 500, generator=torch.Generator().manual_seed(2))
    positive = torch.zeros(2, 500, dtype=torch.bool)
    positive[0, :300] = True
    w = gwrp_weights(probs, positive, concentration=0.5)
    assert (w[1] == 0).all() and (w[0, 300:] == 0).all()
    assert w[0].sum().item() == pytest.approx(300, rel=1e-5)
    order = probs[0, :300].argsort(descending=True)
    ranked = w[0, :300][order]
    assert (ranked[:-1] >= ranked[1:]).all()
    assert (ranked[0] / ranked[-1]).item() == pytest.approx(2.0, rel=0.01)
    np.testing.assert_allclose(gwrp_weights(probs, positive, concentration=1.0)[0, :300].numpy(), 1.0, rtol=1e-6)
