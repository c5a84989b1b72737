"""Volume loss: defining properties on small physical scenes (mm, mm^3)."""

from __future__ import annotations

import math

import pytest
import torch

from rsuper.losses import VolumeLossOptions, ellipsoid_volumes_mm3, volume_loss, volume_mismatch
from test_losses_scenes import blob_logits, diameters, grid_shape, sphere, sphere_volume

ISO = (1.0, 1.0, 1.0)
ANISO = (1.5, 1.5, 3.0)
# Two "organs" far enough apart that one is outside the other's 15 mm dilation.
FOV = (72.0, 36.0, 36.0)
ORGAN_A = ((18.0, 18.0, 18.0), 11.0)
ORGAN_B = ((54.0, 18.0, 18.0), 11.0)


def scene(spacing=ISO, blobs=(), **logit_kwargs):
    shape = grid_shape(FOV, spacing)
    chosen = sphere(shape, spacing, *ORGAN_A)[None, None]
    logits = blob_logits(shape, spacing, blobs, **logit_kwargs)[None, None]
    return logits, chosen


def f(p, v, e=500.0):
    return abs(p - v) / (p + v + e)


def test_zero_when_the_prediction_has_the_reported_volume():
    logits, chosen = scene(blobs=[(ORGAN_A[0], 6.0)])
    assert volume_loss(logits, chosen, ISO, diameters((12, 12, 12))).item() == 0.0


def test_empty_prediction_scores_the_formula_value():
    logits, chosen = scene(height=30.0)
    v = sphere_volume(12)
    expected = f(0.0, v) - f(0.8 * v, v)
    assert volume_loss(logits, chosen, ISO, diameters((12, 12, 12))).item() == pytest.approx(expected, abs=1e-4)
    assert expected > 0.5


def test_tumour_in_the_wrong_organ_counts_as_missing():
    right, chosen = scene(blobs=[(ORGAN_A[0], 6.0)])
    wrong, _ = scene(blobs=[(ORGAN_B[0], 6.0)])
    empty, _ = scene()
    report = diameters((12, 12, 12))
    loss_wrong = volume_loss(wrong, chosen, ISO, report).item()
    assert loss_wrong > 0.5
    assert loss_wrong == pytest.approx(volume_loss(empty, chosen, ISO, report).item(), abs=1e-4)
    assert volume_loss(right, chosen, ISO, report).item() < loss_wrong


def test_gradient_reaches_the_logits_inside_the_dilated_segment_only():
    logits, chosen = scene(height=8.0)
    logits.requires_grad_(True)
    volume_loss(logits, chosen, ISO, diameters((12, 12, 12))).backward()
    grad = logits.grad[0, 0]
    assert grad[sphere(grad.shape, ISO, *ORGAN_A)].lt(0).all()  # more volume wanted in the organ
    assert (grad[sphere(grad.shape, ISO, ORGAN_B[0], 5.0)] == 0).all()  # > 15 mm away: untouched


def test_dead_zone_edges():
    options = VolumeLossOptions()
    v = torch.tensor(2000.0, dtype=torch.float64)
    low = 0.8 * v
    c = f(low, v)
    high = (v + c * (v + 500)) / (1 - c)  # solves f(high) = f(low) on the upper side
    for p, zero in [(low * 1.001, True), (low * 0.98, False), (v, True), (high * 0.999, True), (high * 1.02, False)]:
        value = volume_mismatch(torch.as_tensor(p, dtype=torch.float64), v, options).item()
        assert (value == 0.0) == zero, (float(p), value)


def test_no_dead_zone_for_small_tumours_and_option_changes_tolerance():
    v = torch.tensor(80.0)
    assert volume_mismatch(torch.tensor(76.0), v, VolumeLossOptions()).item() > 0
    big = torch.tensor(5000.0)
    p = torch.tensor(4250.0)  # 15 % under: inside tau = 0.2, outside tau = 0.1
    assert volume_mismatch(p, big, VolumeLossOptions(tolerance=0.2)).item() == 0
    assert volume_mismatch(p, big, VolumeLossOptions(tolerance=0.1)).item() > 0


def test_values_stay_in_unit_interval():
    gen = torch.Generator().manual_seed(1)
    p = torch.rand(1000, generator=gen) * 1e6
    v = torch.rand(1000, generator=gen) * 1e5 * (torch.rand(1000, generator=gen) > 0.2)
    out = volume_mismatch(p, v, VolumeLossOptions())
    assert bool(((out >= 0) & (out <= 1)).all())


def test_spacing_invariance_of_the_same_physical_scene():
    # Soft blob (transition over ~8 mm) and a report volume twice its size:
    # the loss is on its slope, so any discretisation error would show.
    blob = [((20.0, 16.0, 18.0), 7.0)]
    report = diameters((14 * 2 ** (1 / 3),) * 3)
    values = []
    for spacing in (ISO, ANISO):
        logits, chosen = scene(spacing, blob, height=6.0, width_mm=4.0)
        values.append(volume_loss(logits, chosen, spacing, report).item())
    assert values[0] > 0.05
    assert values[1] == pytest.approx(values[0], rel=0.03)


def test_mask_only_and_healthy_batches():
    logits, chosen = scene(blobs=[(ORGAN_A[0], 6.0)], height=30.0)
    zero = volume_loss(logits, None, ISO)  # mask cases: no report tensors needed
    assert zero.item() == 0.0
    empty_chosen = torch.zeros_like(chosen)
    assert volume_loss(logits, empty_chosen, ISO, diameters((12,))).item() == 0.0
    # Healthy report with a chosen segment: any predicted volume is penalised, L = P / (P + E).
    healthy = volume_loss(logits, chosen, ISO, torch.zeros(1, 10, 3))
    p = torch.sigmoid(logits).sum().item()
    assert healthy.item() == pytest.approx(p / (p + 500), rel=1e-3)


def test_volumes_given_directly_override_the_diameters():
    logits, chosen = scene(blobs=[(ORGAN_A[0], 6.0)])
    given = torch.zeros(1, 10, dtype=torch.float64)
    given[0, 0] = 4 * sphere_volume(12)
    assert volume_loss(logits, chosen, ISO, diameters((12,)), given).item() > 0.3
    # Several tumours: the report volume is their sum.
    two = volume_loss(logits, chosen, ISO, diameters((12 / 2 ** (1 / 3),) * 3, (12 / 2 ** (1 / 3),) * 3))
    assert two.item() == 0.0


def test_ellipsoid_volume_convention():
    d = torch.tensor([[[30.0, 0, 0], [40, 20, 0], [20, 30, 10], [0, 0, 0]]])
    expected = [math.pi / 6 * 30**3, math.pi / 6 * 40 * 20 * 30, math.pi / 6 * 6000, 0.0]
    torch.testing.assert_close(ellipsoid_volumes_mm3(d)[0], torch.tensor(expected, dtype=torch.float64))


def test_batch_entries_are_independent_and_per_sample_spacing_works():
    a_logits, a_chosen = scene(blobs=[(ORGAN_A[0], 5.0)])
    b_logits, _ = scene(blobs=[(ORGAN_A[0], 8.0)])
    logits = torch.cat([a_logits, b_logits])
    chosen = torch.cat([a_chosen, a_chosen])
    report = torch.cat([diameters((12,)), diameters((9, 8))])
    both = volume_loss(logits, chosen, ISO, report, reduction="none")
    other_report = torch.cat([diameters((12,)), diameters((30,))])
    changed = volume_loss(torch.cat([a_logits, -b_logits]), chosen, ISO, other_report, reduction="none")
    assert both[0].item() == changed[0].item()
    assert both[1].item() != changed[1].item()
    spacing = torch.tensor([ISO, ANISO])
    mixed = volume_loss(logits, chosen, spacing, report, reduction="none")
    alone = volume_loss(b_logits, a_chosen, ANISO, diameters((9, 8)))
    assert mixed[1].item() == pytest.approx(alone.item(), abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("scale", [1.0, 1e4, -1e4])
def test_extreme_logits_and_half_precision_stay_finite(dtype, scale):
    logits, chosen = scene(blobs=[(ORGAN_A[0], 4.0)])
    logits = (logits.sign() * scale).to(dtype).requires_grad_(True)
    loss = volume_loss(logits, chosen, ISO, diameters((12,)))
    loss.backward()
    assert torch.isfinite(loss) and 0 <= loss.item() <= 1
    assert logits.grad.dtype == dtype and torch.isfinite(logits.grad.float()).all()
