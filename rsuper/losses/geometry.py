"""Voxel geometry in physical units: spacing, ellipsoidal balls and their kernels.

Every length here is in mm and every volume in mm^3. A "ball" of radius
``R`` mm is the set of voxel offsets ``(i, j, k)`` with
``(i*sx)^2 + (j*sy)^2 + (k*sz)^2 <= R^2``, where ``(sx, sy, sz)`` is the voxel
spacing; for anisotropic spacing it is therefore an ellipsoid in voxel space.
The same rule is used for the small explicit kernels below and for the
kernels that :mod:`rsuper.losses.fftconv` lays out on an FFT grid, so a direct
convolution and an FFT convolution give the same result.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

#: Spacing in mm: a ``(3,)`` sequence/tensor, or a ``(B, 3)`` tensor (one row per sample).
SpacingLike = Tensor | Sequence[float]

# Relative slack on the ball boundary so that offsets lying exactly on the sphere
# (e.g. (2, 0, 0) for R = 2 mm at 1 mm) are inside despite float rounding.
_BOUNDARY_SLACK = 1e-9


def spacing_per_sample(spacing_mm: SpacingLike, batch: int, device: torch.device | str | None = None) -> Tensor:
    """Voxel spacing as a ``(batch, 3)`` float64 tensor in mm.

    Args:
        spacing_mm: ``(3,)`` (shared by all samples) or ``(batch, 3)``, in mm, all > 0.
        batch: number of samples B.
        device: device of the result.

    Raises:
        ValueError: wrong shape or a non-positive / non-finite spacing.
    """
    s = torch.as_tensor(spacing_mm, dtype=torch.float64, device=device)
    if s.shape == (3,):
        s = s.expand(batch, 3)
    elif s.shape != (batch, 3):
        raise ValueError(f"spacing_mm must have shape (3,) or ({batch}, 3), got {tuple(s.shape)}")
    if not bool(torch.isfinite(s).all()) or not bool((s > 0).all()):
        raise ValueError(f"spacing_mm must be finite and > 0, got {s.tolist()}")
    return s.contiguous()


def voxel_volume_mm3(spacing_mm: Tensor) -> Tensor:
    """Volume of one voxel in mm^3: ``(..., 3)`` spacing -> ``(...)``."""
    return spacing_mm.prod(dim=-1)


def half_extent_voxels(radius_mm: Tensor, spacing_mm: Tensor) -> Tensor:
    """Largest voxel offset per axis that a ball of ``radius_mm`` can reach.

    Args:
        radius_mm: ``(N,)`` radii in mm (>= 0).
        spacing_mm: ``(N, 3)`` spacing in mm.

    Returns:
        ``(N, 3)`` int64 ``floor(R / s)`` per axis.
    """
    ratio = radius_mm.to(torch.float64)[:, None] / spacing_mm
    return torch.floor(ratio * (1 + _BOUNDARY_SLACK)).to(torch.int64)


def ball_weights(r2_mm2: Tensor, radius_mm: Tensor, gaussian_std_factor: float | None) -> Tensor:
    """Un-normalised ball weights from squared physical distances.

    Args:
        r2_mm2: squared distance to the ball centre in mm^2, any shape.
        radius_mm: ball radius in mm, broadcastable to ``r2_mm2``.
        gaussian_std_factor: ``None`` for a binary ball (1 inside, 0 outside);
            ``f`` for a Gaussian ``exp(-r^2 / (2 (f R)^2))`` inside the ball and 0
            outside (the R-Super ball loss uses ``f = 1.5``, an almost flat bump).

    Returns:
        Weights with the shape of ``r2_mm2`` (float64 if the inputs are).
    """
    r2_max = radius_mm**2 * (1 + _BOUNDARY_SLACK)
    inside = r2_mm2 <= r2_max
    if gaussian_std_factor is None:
        return inside.to(r2_mm2.dtype)
    std2 = (gaussian_std_factor * radius_mm) ** 2
    return torch.where(inside, torch.exp(-r2_mm2 / (2 * std2).clamp_min(1e-12)), torch.zeros_like(r2_mm2))


def ball_kernel(
    diameter_mm: float,
    spacing_mm: SpacingLike = (1.0, 1.0, 1.0),
    gaussian_std_factor: float | None = None,
    normalise: bool = False,
) -> Tensor:
    """Explicit ball kernel of a given physical diameter, shaped for ``conv3d``.

    Args:
        diameter_mm: ball diameter in mm.
        spacing_mm: ``(3,)`` voxel spacing in mm.
        gaussian_std_factor: see :func:`ball_weights`.
        normalise: scale the weights to sum 1.

    Returns:
        ``(2 hx + 1, 2 hy + 1, 2 hz + 1)`` float64 weights, ``h = floor(R / s)``.
    """
    spacing = spacing_per_sample(spacing_mm, 1)
    radius = torch.tensor([diameter_mm / 2.0], dtype=torch.float64)
    h = half_extent_voxels(radius, spacing)[0].tolist()
    axes = [torch.arange(-n, n + 1, dtype=torch.float64) * spacing[0, a] for a, n in enumerate(h)]
    ox, oy, oz = torch.meshgrid(*axes, indexing="ij")
    weights = ball_weights(ox**2 + oy**2 + oz**2, radius[0], gaussian_std_factor)
    return weights / weights.sum() if normalise else weights


def squared_distance_map(shape: Sequence[int], centres: Tensor, spacing_mm: Tensor) -> Tensor:
    """Squared physical distance of every voxel to one centre per sample.

    Args:
        shape: ``(X, Y, Z)`` grid size.
        centres: ``(N, 3)`` integer voxel indices.
        spacing_mm: ``(N, 3)`` spacing in mm.

    Returns:
        ``(N, X, Y, Z)`` float64 distances^2 in mm^2.
    """
    device = centres.device
    r2 = torch.zeros((centres.shape[0], *shape), dtype=torch.float64, device=device)
    for axis, size in enumerate(shape):
        coord = torch.arange(size, dtype=torch.float64, device=device)
        offset = (coord[None, :] - centres[:, axis : axis + 1].to(torch.float64)) * spacing_mm[:, axis : axis + 1]
        view = [centres.shape[0], 1, 1, 1]
        view[axis + 1] = size
        r2 = r2 + (offset**2).view(view)
    return r2
