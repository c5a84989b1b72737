"""Batched 'same'-size convolution of 3-D volumes with ball kernels, via real FFTs.

A direct ``conv3d`` with a ball of diameter d costs ``O(N d^3)`` per volume
(about 6e10 multiply-adds for a 30 mm ball on a 128^3 patch); the FFT route
costs ``O(N log N)`` whatever the diameter. Each volume gets its own kernel
(its own radius and spacing), so one call filters many (sample, tumour) pairs.

Layout: every kernel is evaluated directly on the padded FFT grid at
*wrapped* offsets (index ``i`` stands for offset ``i`` when ``i <= n // 2`` and
``i - n`` otherwise), i.e. with its centre at index 0. The product of the two
spectra is then the circular convolution, whose first ``X x Y x Z`` entries are
the centred ("same" padding, zeros outside) linear convolution as long as each
grid size ``n >= X + h`` (no wrap-around reaches the kept block) and
``n >= 2 h + 1`` (the kernel does not overlap itself), with ``h`` the kernel's
half extent in voxels. Grid sizes are rounded up with
:func:`scipy.fft.next_fast_len`.
"""

from __future__ import annotations

import scipy.fft
import torch
from torch import Tensor

from rsuper.losses.geometry import ball_weights, half_extent_voxels


def _wrapped_offsets_mm(size: int, spacing_mm: Tensor) -> Tensor:
    """``(N, size)`` physical offsets (mm) of the wrapped grid indices of one axis."""
    index = torch.arange(size, dtype=torch.float64, device=spacing_mm.device)
    wrapped = torch.where(index <= size // 2, index, index - size)
    return wrapped[None, :] * spacing_mm[:, None]


def ball_filter(
    volumes: Tensor,
    radius_mm: Tensor,
    spacing_mm: Tensor,
    gaussian_std_factor: float | None = None,
    normalise: bool = False,
) -> Tensor:
    """Convolve each volume with its own ball kernel ("same" size, zero padding).

    Equivalent to ``F.conv3d(v[None, None], ball_kernel(2 R, s, f, normalise)[None, None],
    padding="same")`` per volume (see :func:`rsuper.losses.geometry.ball_kernel`);
    the kernels are symmetric, so correlation and convolution coincide.

    Args:
        volumes: ``(N, X, Y, Z)`` real values (computed in float32).
        radius_mm: ``(N,)`` ball radii in mm.
        spacing_mm: ``(N, 3)`` voxel spacing in mm.
        gaussian_std_factor: ``None`` for binary balls, else the Gaussian width
            factor of :func:`~rsuper.losses.geometry.ball_weights`.
        normalise: scale each kernel to sum 1 (the output is then a weighted
            local mean).

    Returns:
        ``(N, X, Y, Z)`` float32 filtered volumes.
    """
    if volumes.ndim != 4:
        raise ValueError(f"volumes must be (N, X, Y, Z), got shape {tuple(volumes.shape)}")
    shape = volumes.shape[1:]
    radius_mm = radius_mm.to(device=volumes.device, dtype=torch.float64)
    spacing_mm = spacing_mm.to(device=volumes.device, dtype=torch.float64)
    half = half_extent_voxels(radius_mm, spacing_mm).amax(dim=0).tolist()
    grid = [scipy.fft.next_fast_len(max(size + h, 2 * h + 1), real=True) for size, h in zip(shape, half)]

    ox, oy, oz = (_wrapped_offsets_mm(g, spacing_mm[:, a]) for a, g in enumerate(grid))
    r2 = ox[:, :, None, None] ** 2 + oy[:, None, :, None] ** 2 + oz[:, None, None, :] ** 2
    kernels = ball_weights(r2, radius_mm[:, None, None, None], gaussian_std_factor)
    if normalise:
        kernels = kernels / kernels.sum(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)

    dims = (1, 2, 3)
    spectrum = torch.fft.rfftn(volumes.to(torch.float32), s=grid, dim=dims)
    spectrum = spectrum * torch.fft.rfftn(kernels.to(torch.float32), dim=dims)
    out = torch.fft.irfftn(spectrum, s=grid, dim=dims)
    return out[:, : shape[0], : shape[1], : shape[2]].contiguous()
