"""Synthetic physical scenes shared by the ``test_losses_*`` modules, and their own checks.

A scene is described in mm: voxel ``i`` of an axis with spacing ``s`` has its
centre at ``(i + 0.5) * s``, so the same field of view can be sampled at 1 mm
or at (1.5, 1.5, 3) mm. Organs and tumours are spheres; predictions are
logits ``height * (R - distance) / width`` (a sharp or soft blob).
Import with ``from test_losses_scenes import ...``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch
from torch import Tensor

Point = Sequence[float]


def grid_shape(fov_mm: Point, spacing: Point) -> tuple[int, int, int]:
    """Voxel counts covering ``fov_mm`` at ``spacing`` (must divide exactly)."""
    shape = tuple(round(f / s) for f, s in zip(fov_mm, spacing))
    assert all(abs(n * s - f) < 1e-9 for n, s, f in zip(shape, spacing, fov_mm)), "FOV not a multiple of spacing"
    return shape  # type: ignore[return-value]


def distance_mm(shape: Sequence[int], spacing: Point, centre_mm: Point) -> Tensor:
    """``(X, Y, Z)`` float64 distance of every voxel centre to ``centre_mm``."""
    axes = [(torch.arange(n, dtype=torch.float64) + 0.5) * s - c for n, s, c in zip(shape, spacing, centre_mm)]
    gx, gy, gz = torch.meshgrid(*axes, indexing="ij")
    return (gx**2 + gy**2 + gz**2).sqrt()


def sphere(shape: Sequence[int], spacing: Point, centre_mm: Point, radius_mm: float) -> Tensor:
    """``(X, Y, Z)`` bool: voxel centres within ``radius_mm`` of ``centre_mm``."""
    return distance_mm(shape, spacing, centre_mm) <= radius_mm


def blob_logits(
    shape: Sequence[int],
    spacing: Point,
    blobs: Sequence[tuple[Point, float]],
    height: float = 12.0,
    width_mm: float = 1.0,
) -> Tensor:
    """``(X, Y, Z)`` float32 logits: positive inside any ``(centre_mm, radius_mm)`` blob.

    ``height * (R - d) / width_mm`` clipped to ``[-height, height]`` for the
    nearest blob; ``-height`` everywhere when ``blobs`` is empty.
    """
    out = torch.full(tuple(shape), -float(height), dtype=torch.float64)
    for centre, radius in blobs:
        value = (height * (radius - distance_mm(shape, spacing, centre)) / width_mm).clamp(-height, height)
        out = torch.maximum(out, value)
    return out.float()


def diameters(*tumours: Sequence[float], pad_to: int = 10) -> Tensor:
    """``(1, pad_to, 3)`` zero-padded diameters (mm) of the given tumours."""
    out = torch.zeros(1, pad_to, 3)
    for t, d in enumerate(tumours):
        out[0, t, : len(d)] = torch.tensor([float(x) for x in d])
    return out


def sphere_volume(diameter_mm: float) -> float:
    """Volume (mm^3) of a sphere of the given diameter."""
    return math.pi / 6 * diameter_mm**3


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.5, 1.5, 3.0)])
def test_sphere_voxels_match_the_physical_volume(spacing):
    shape = grid_shape((48, 48, 48), spacing)
    mask = sphere(shape, spacing, (24, 24, 24), 10.0)
    assert mask.sum().item() * math.prod(spacing) == pytest.approx(4 / 3 * math.pi * 1000, rel=0.06)


def test_blob_logits_are_positive_exactly_inside_the_blob():
    shape = (20, 20, 20)
    z = blob_logits(shape, (1, 1, 1), [((10, 10, 10), 4.0)])
    assert torch.equal(z > 0, distance_mm(shape, (1, 1, 1), (10, 10, 10)) < 4.0)
    assert z.max() == 12 and z.min() == -12
