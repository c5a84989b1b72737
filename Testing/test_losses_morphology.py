"""Ball kernels, FFT ball filtering and ball dilation (rsuper.losses geometry layer).

References: ``torch.nn.functional.conv3d`` (direct convolution) and
``scipy.ndimage.binary_dilation`` with the same structuring element.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from rsuper.losses import ball_filter, ball_kernel, dilate_ball, dilate_ball_voxels, spacing_per_sample


@pytest.mark.parametrize("diameter, count", [(5, 81), (27, 10395), (31, 15515)])
def test_voxel_ball_matches_the_reference_voxel_counts(diameter, count):
    # The reference's ball of (odd) diameter d voxels: r^2 <= (d / 2)^2.
    assert int(ball_kernel(diameter).sum()) == count


def test_anisotropic_kernel_is_an_ellipsoid_in_voxel_space():
    kernel = ball_kernel(12.0, (1.5, 1.0, 3.0)) > 0
    assert kernel.shape == (9, 13, 5)  # half extents floor(6 / s) = 4, 6, 2
    centre = (4, 6, 2)
    for axis, half in enumerate((4, 6, 2)):
        index = list(centre)
        index[axis] = centre[axis] + half
        assert kernel[tuple(index)]  # the tip of each semi-axis is inside
    assert not kernel[8, 12, 4]  # the corner of the box is outside
    # Its physical volume approximates the 12 mm sphere.
    assert kernel.sum().item() * 4.5 == pytest.approx(np.pi / 6 * 12**3, rel=0.1)


def test_fft_ball_response_equals_direct_conv3d():
    gen = torch.Generator().manual_seed(3)
    volumes = torch.rand(3, 21, 17, 19, generator=gen, dtype=torch.float64)
    spacing = torch.tensor([[1.0, 1.0, 1.0], [1.5, 1.5, 3.0], [0.7, 1.1, 2.0]], dtype=torch.float64)
    diameter = [9.0, 12.0, 7.5]
    out = ball_filter(volumes, torch.tensor(diameter) / 2, spacing, gaussian_std_factor=1.5, normalise=True)
    for i in range(3):
        kernel = ball_kernel(diameter[i], spacing[i], gaussian_std_factor=1.5, normalise=True)
        direct = F.conv3d(volumes[i][None, None], kernel[None, None], padding="same")[0, 0]
        torch.testing.assert_close(out[i].double(), direct, atol=2e-6, rtol=1e-5)


def test_fft_filter_of_a_kernel_larger_than_the_volume():
    # Ball wider than the volume: padding must still avoid wrap-around.
    volumes = torch.zeros(1, 6, 5, 4)
    volumes[0, 0, 0, 0] = 1.0
    out = ball_filter(volumes, torch.tensor([20.0]), torch.ones(1, 3))
    torch.testing.assert_close(out, torch.ones_like(out), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "radius, spacing", [(2.5, (1.0, 1.0, 1.0)), (4.0, (1.5, 1.5, 3.0)), (7.0, (0.8, 1.2, 2.5)), (0.5, (1.0, 1.0, 1.0))]
)
def test_dilation_equals_scipy_with_the_same_structuring_element(radius, spacing):
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(2, 2, 26, 22, 18, generator=gen) > 0.995
    mask[1, 1] = False  # an empty volume stays empty
    element = ball_kernel(2 * radius, spacing).numpy() > 0
    expected = np.stack([ndi.binary_dilation(m, structure=element) for m in mask.reshape(-1, 26, 22, 18).numpy()])
    out = dilate_ball(mask, radius, spacing)
    assert out.dtype == torch.bool and out.shape == mask.shape
    np.testing.assert_array_equal(out.reshape(-1, 26, 22, 18).numpy(), expected)


def test_dilation_uses_each_samples_spacing():
    mask = torch.zeros(2, 15, 15, 15, dtype=torch.bool)
    mask[:, 7, 7, 7] = True
    spacing = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 3.0]])
    out = dilate_ball(mask, 3.0, spacing)
    assert out[0, 7, 7, 10] and not out[1, 7, 7, 10] and out[1, 7, 7, 8]
    assert out[1].sum() < out[0].sum()
    torch.testing.assert_close(dilate_ball(mask[1:], 3.0, (1.0, 1.0, 3.0)), out[1:])


def test_voxel_dilation_ignores_spacing_and_small_radii_are_identity():
    mask = torch.zeros(1, 9, 9, 9, dtype=torch.bool)
    mask[0, 4, 4, 4] = True
    assert dilate_ball_voxels(mask, 2.5).sum() == 81
    assert torch.equal(dilate_ball(mask, 0.9, (1.0, 1.0, 1.0)), mask)


def test_spacing_validation():
    assert spacing_per_sample((1.0, 2.0, 3.0), 4).shape == (4, 3)
    with pytest.raises(ValueError):
        spacing_per_sample((1.0, 0.0, 1.0), 1)
    with pytest.raises(ValueError):
        spacing_per_sample(torch.ones(3, 3), 2)
