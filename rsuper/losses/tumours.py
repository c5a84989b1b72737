"""Reported tumours as padded tensors: diameters (mm) -> volumes (mm^3).

Contract shared by the report losses: a batch of B samples carries at most T
reported tumours each (T = 10 in the reference), zero-padded:

* ``diameters_mm``: ``(B, T, 3)``, 0 to 3 diameters per tumour in mm, unused
  entries 0 (a row of zeros is "no tumour");
* ``volumes_mm3``: optional ``(B, T)`` reported volumes in mm^3; when absent
  they are computed from the diameters with the ellipsoid convention of
  :meth:`rsuper.report.schema.Tumour.volume_mm3` (one diameter a: sphere; two
  a >= b: third axis (a + b) / 2; three: ``pi a b c / 6``).

The tumours of a sample all lie in that sample's chosen (sub)segment.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def check_report_tensors(batch: int, diameters_mm: Tensor | None, volumes_mm3: Tensor | None) -> None:
    """Validate shapes and values of the report tensors.

    Raises:
        ValueError: both missing, wrong shapes, mismatched T, negative or
            non-finite entries.
    """
    if diameters_mm is None and volumes_mm3 is None:
        raise ValueError("give diameters_mm (B, T, 3) and/or volumes_mm3 (B, T)")
    if diameters_mm is not None and (diameters_mm.ndim != 3 or diameters_mm.shape[::2] != (batch, 3)):
        raise ValueError(f"diameters_mm must be ({batch}, T, 3), got {tuple(diameters_mm.shape)}")
    if volumes_mm3 is not None and (volumes_mm3.ndim != 2 or volumes_mm3.shape[0] != batch):
        raise ValueError(f"volumes_mm3 must be ({batch}, T), got {tuple(volumes_mm3.shape)}")
    if diameters_mm is not None and volumes_mm3 is not None and diameters_mm.shape[1] != volumes_mm3.shape[1]:
        raise ValueError("diameters_mm and volumes_mm3 disagree on T")
    for name, value in (("diameters_mm", diameters_mm), ("volumes_mm3", volumes_mm3)):
        if value is not None and (not bool(torch.isfinite(value).all()) or bool((value < 0).any())):
            raise ValueError(f"{name} must be finite and >= 0")


def ellipsoid_volumes_mm3(diameters_mm: Tensor) -> Tensor:
    """Ellipsoid volume per tumour, ``(B, T, 3)`` mm -> ``(B, T)`` mm^3 (0 for padding)."""
    d = diameters_mm.to(torch.float64).sort(dim=-1, descending=True).values
    a, b, c = d.unbind(dim=-1)
    count = (d > 0).sum(dim=-1)
    product = torch.where(count == 1, a**3, torch.where(count == 2, a * b * (a + b) / 2, a * b * c))
    return math.pi / 6 * product


def sphere_volumes_mm3(diameters_mm: Tensor) -> Tensor:
    """Volume of the sphere of the largest diameter, ``(B, T, 3)`` -> ``(B, T)`` mm^3."""
    return math.pi / 6 * diameters_mm.to(torch.float64).amax(dim=-1) ** 3


def reported_volumes_mm3(diameters_mm: Tensor | None, volumes_mm3: Tensor | None) -> Tensor:
    """Reported volume per tumour in mm^3, ``(B, T)`` float64.

    ``volumes_mm3`` when given, else the ellipsoid volumes of ``diameters_mm``.
    """
    if volumes_mm3 is not None:
        return volumes_mm3.to(torch.float64)
    if diameters_mm is None:
        raise ValueError("give diameters_mm (B, T, 3) and/or volumes_mm3 (B, T)")
    return ellipsoid_volumes_mm3(diameters_mm)
