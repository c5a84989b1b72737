"""The combined R-Super loss: which term goes on which head, with which weight."""

from __future__ import annotations

import pytest
import torch

from rsuper.losses import (
    RSuperLoss,
    RSuperLossConfig,
    SupervisionBatch,
    ball_loss,
    known_voxels,
    masked_segmentation_loss,
    rsuper_loss,
    volume_loss,
)
from test_losses_scenes import blob_logits, diameters, sphere

SHAPE = (48, 32, 32)
ISO = (1.0, 1.0, 1.0)
ORGAN = ((16.0, 16.0, 16.0), 10.0)


def report_batch():
    """Two samples, channels (organ, lesion): a report case and a mask case."""
    organ = sphere(SHAPE, ISO, *ORGAN)
    lesion_mask = sphere(SHAPE, ISO, (14.0, 16.0, 16.0), 3.0)
    target = torch.zeros(2, 2, *SHAPE)
    target[:, 0] = organ.float()
    target[1, 1] = lesion_mask.float()
    unknown = torch.zeros_like(target, dtype=torch.bool)
    unknown[0, 1] = organ
    chosen = torch.zeros(2, 1, *SHAPE, dtype=torch.bool)
    chosen[0, 0] = organ
    report = torch.cat([diameters((8, 7, 6)), torch.zeros(1, 10, 3)])
    batch = SupervisionBatch(target, unknown, chosen, report, spacing_mm=ISO)
    organ_logits = torch.where(organ, 6.0, -6.0)
    lesion_logits = blob_logits(SHAPE, ISO, [((18.0, 17.0, 16.0), 3.5)], height=4.0)
    final = torch.stack([organ_logits, lesion_logits])[None].repeat(2, 1, 1, 1, 1)
    aux = final * 0.7
    return [final.requires_grad_(True), aux.requires_grad_(True)], batch


def test_default_setting_puts_ball_on_final_and_volume_on_aux_head():
    heads, batch = report_batch()
    config = RSuperLossConfig(lesion_channels=(1,))
    result = rsuper_loss(heads, batch, config)
    assert set(result.terms) == {
        "seg_bce/head0", "seg_tversky/head0", "ball_bce/head0", "ball_tversky/head0",
        "seg_bce/head1", "seg_tversky/head1", "volume/head1",
    }
    t = result.terms
    ball = t["ball_bce/head0"] + t["ball_tversky/head0"]
    expected = 0.5 * (t["seg_bce/head0"] + t["seg_tversky/head0"] + 0.1 * ball)
    expected += 0.5 * (t["seg_bce/head1"] + t["seg_tversky/head1"] + 0.1 * t["volume/head1"])
    assert result.total.item() == pytest.approx(expected.item(), rel=1e-6)
    result.total.backward()
    assert all(h.grad is not None and h.grad.abs().sum() > 0 for h in heads)


def test_terms_equal_the_individual_losses_on_the_lesion_channels():
    heads, batch = report_batch()
    result = rsuper_loss(heads, batch, RSuperLossConfig(lesion_channels=(1,)))
    known = known_voxels(batch.unknown, ISO, 2.5)
    seg = masked_segmentation_loss(heads[1], batch.target, known)
    assert result.terms["seg_tversky/head1"].item() == pytest.approx(seg.tversky.item(), rel=1e-6)
    ball = ball_loss(heads[0][:, 1:], batch.chosen_segment, batch.diameters_mm, ISO,
                     target=batch.target[:, 1:], unknown=batch.unknown[:, 1:])
    assert result.terms["ball_tversky/head0"].item() == pytest.approx(ball.tversky.item(), rel=1e-6)
    assert result.terms["ball_bce/head0"].item() == pytest.approx(ball.bce.item(), rel=1e-6)
    volume = volume_loss(heads[1][:, 1:], batch.chosen_segment, ISO, batch.diameters_mm)
    assert result.terms["volume/head1"].item() == pytest.approx(volume.item(), rel=1e-6)
    assert volume.item() > 0


def test_report_weight_zero_trains_on_masks_only():
    heads, batch = report_batch()
    result = rsuper_loss(heads, batch, RSuperLossConfig(report_weight=0.0, lesion_channels=(1,)))
    assert all(name.startswith("seg_") for name in result.terms)
    t = result.terms
    expected = 0.5 * sum(t[f"seg_{k}/head{j}"] for k in ("bce", "tversky") for j in (0, 1))
    assert result.total.item() == pytest.approx(expected.item(), rel=1e-6)


def test_single_head_model_and_module_wrapper():
    heads, batch = report_batch()
    config = RSuperLossConfig(head_weights=(1.0,), volume_head=0, lesion_channels=(1,))
    result = RSuperLoss(config)(heads[:1], batch)
    assert {"ball_bce/head0", "volume/head0"} <= set(result.terms)
    assert torch.isfinite(result.total)


def test_mask_only_batch_without_report_tensors():
    heads, batch = report_batch()
    mask_only = SupervisionBatch(batch.target, spacing_mm=ISO)
    result = rsuper_loss(heads, mask_only, RSuperLossConfig(lesion_channels=(1,)))
    assert result.terms["volume/head1"].item() == 0.0
    assert result.terms["ball_tversky/head0"].item() == 0.0
    result.total.backward()
    assert torch.isfinite(heads[0].grad).all()


def test_configuration_errors_are_reported():
    heads, batch = report_batch()
    with pytest.raises(ValueError, match="head_weights"):
        rsuper_loss(heads[:1], batch, RSuperLossConfig(lesion_channels=(1,)))
    with pytest.raises(ValueError, match="volume_head"):
        rsuper_loss(heads[:1], batch, RSuperLossConfig(head_weights=(1.0,), lesion_channels=(1,)))
    with pytest.raises(ValueError, match="same"):
        rsuper_loss([heads[0], heads[1][:, :1]], batch)
