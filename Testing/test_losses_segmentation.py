"""Masked segmentation loss and the adaptive Tversky loss."""

from __future__ import annotations

import pytest
import torch

from rsuper.losses import adaptive_tversky_loss, known_voxels, masked_segmentation_loss
from test_losses_scenes import blob_logits, sphere

SHAPE = (32, 32, 32)
ISO = (1.0, 1.0, 1.0)


def labelled_case():
    """Two channels: an organ and its lesion, with a confident matching prediction."""
    organ = sphere(SHAPE, ISO, (16, 16, 16), 10.0)
    lesion = sphere(SHAPE, ISO, (12, 16, 16), 3.0)
    target = torch.stack([organ, lesion])[None].float()
    logits = torch.where(target > 0, 12.0, -12.0)
    return logits, target


def test_tversky_matches_hand_computed_values():
    probs = torch.zeros(1, 1, 10, 1, 1)
    target = torch.zeros(1, 1, 10, 1, 1)
    target[..., :4, :, :] = 1
    probs[..., :2, :, :] = 1.0  # TP = 2, FN = 2
    probs[..., 4:10, :, :] = 0.5  # FP = 3 -> alpha = 3 / 5 = 0.6
    expected = 1 - 2 / (2 + 0.6 * 3 + 0.4 * 2 + 1e-5)
    assert adaptive_tversky_loss(probs, target).item() == pytest.approx(expected, rel=1e-6)
    probs[..., 2, :, :] = 1.0  # TP = 3, FN = 1
    probs[..., 4:10, :, :] = 1.0  # FP = 6 -> 6 / 7, clamped to alpha = 0.8
    expected = 1 - 3 / (3 + 0.8 * 6 + 0.2 * 1 + 1e-5)
    assert adaptive_tversky_loss(probs, target).item() == pytest.approx(expected, rel=1e-6)


def test_tversky_of_an_empty_target_is_zero_without_gradient():
    probs = torch.rand(1, 2, 5, 5, 5, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    target = torch.zeros(1, 2, 5, 5, 5)
    target[0, 1, 2, 2, 2] = 1
    loss = adaptive_tversky_loss(probs, target)
    assert loss[0, 0].item() == 0.0 and loss[0, 1].item() > 0
    loss[0, 0].backward()
    assert (probs.grad == 0).all()


def test_confident_correct_prediction_scores_near_zero_and_wrong_scores_high():
    logits, target = labelled_case()
    good = masked_segmentation_loss(logits, target)
    bad = masked_segmentation_loss(-logits, target)
    assert good.total.item() < 1e-3
    assert bad.bce.item() > 1.0 and bad.tversky.item() > 0.99


def test_unknown_voxels_and_their_margin_are_ignored():
    logits, target = labelled_case()
    unknown = torch.zeros_like(target, dtype=torch.bool)
    unknown[0, 1] = sphere(SHAPE, ISO, (20, 16, 16), 4.0)  # lesion channel, unknown region
    known = known_voxels(unknown, ISO, 2.5)
    noisy = logits.clone()
    noisy[~known] = torch.randn(int((~known).sum()), generator=torch.Generator().manual_seed(1)) * 20
    noisy.requires_grad_(True)
    base = masked_segmentation_loss(logits, target, known)
    changed = masked_segmentation_loss(noisy, target, known)
    assert changed.bce.item() == pytest.approx(base.bce.item(), rel=1e-6)
    assert changed.tversky.item() == pytest.approx(base.tversky.item(), rel=1e-6)
    changed.total.backward()
    assert (noisy.grad[~known] == 0).all()
    # Unknown voxels end at x index 23; the margin is 2.5 mm: 2 mm beyond is masked, 3 mm is not.
    assert unknown[0, 1, 23, 16, 16] and not unknown[0, 1, 24, 16, 16]
    assert not known[0, 1, 25, 16, 16] and known[0, 1, 26, 16, 16]
    assert known[0, 0].all()


def test_margin_follows_the_spacing():
    unknown = torch.zeros(1, 1, *SHAPE, dtype=torch.bool)
    unknown[0, 0, 16, 16, 16] = True
    iso = known_voxels(unknown, ISO, 2.5)
    aniso = known_voxels(unknown, (1.0, 1.0, 3.0), 2.5)
    assert not iso[0, 0, 16, 16, 18] and aniso[0, 0, 16, 16, 17]
    assert not iso[0, 0, 18, 16, 16] and not aniso[0, 0, 18, 16, 16]


def test_batch_entries_are_independent():
    logits, target = labelled_case()
    other = blob_logits(SHAPE, ISO, [((8, 8, 8), 5.0)], height=4.0)
    batch_a = torch.cat([logits, logits.flip(2)])
    batch_b = torch.cat([logits, torch.stack([other, -other])[None]])
    targets = torch.cat([target, target])
    a = masked_segmentation_loss(batch_a, targets, reduction="none")
    b = masked_segmentation_loss(batch_b, targets, reduction="none")
    assert a.bce[0].item() == b.bce[0].item() and a.tversky[0].item() == b.tversky[0].item()
    assert a.total[1].item() != b.total[1].item()
    mean = masked_segmentation_loss(batch_a, targets)
    assert mean.total.item() == pytest.approx(a.total.mean().item(), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_and_extreme_logits(dtype):
    logits, target = labelled_case()
    for scale in (1e4, -1e4):
        z = (logits.sign() * scale).to(dtype).requires_grad_(True)
        terms = masked_segmentation_loss(z, target)
        terms.total.backward()
        assert torch.isfinite(terms.total) and torch.isfinite(z.grad.float()).all()


def test_shape_mismatch_is_rejected():
    logits, target = labelled_case()
    with pytest.raises(ValueError):
        masked_segmentation_loss(logits, target[:, :1])
