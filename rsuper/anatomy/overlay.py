"""PNG overlay of organ masks on CT slices, in radiological display convention.

:func:`organ_overlay_png` draws axial (and a coronal) slices with each label
in its label-map colour and a legend of the labels shown. The volumes are
first reoriented to RAS with nibabel (from the affine, not the array order),
so every array orientation gives the same picture; then axial slices show the
patient's right on the image's left and anterior up, coronal slices the
patient's right on the left and superior up. Non-square voxels keep their
true proportions.

Drawn on a bare ``matplotlib.figure.Figure`` (Agg), never through ``pyplot``,
so no GUI backend is touched (this also runs inside 3D Slicer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

from rsuper.anatomy.labels import LabelMap

#: Soft-tissue abdominal window, HU.
DEFAULT_WINDOW_HU = (-160.0, 240.0)
_PANEL_IN, _HEIGHT_IN = 3.2, 3.8
_LEGEND_COLUMN_IN, _LEGEND_ROWS = 1.9, 16


def to_ras(volume: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(volume, spacing_mm)`` with axes reordered/flipped so that i -> right, j -> anterior, k -> superior.

    Oblique affines use their closest axes (nibabel ``io_orientation``).
    ``spacing_mm`` ``(3,)`` is the voxel size along the new axes.
    """
    ornt = io_orientation(affine)
    to = ornt_transform(ornt, axcodes2ornt("RAS"))
    spacing = np.linalg.norm(affine[:3, :3], axis=0)[ornt[:, 0].argsort()]
    return apply_orientation(volume, to), spacing


def _rgb(ct_hu: np.ndarray, labels: np.ndarray, label_map: LabelMap, window: tuple[float, float],
         alpha: float) -> np.ndarray:
    """float ``(..., 3)`` in 0-1: windowed grey CT blended with the label colours."""
    low, high = window
    grey = np.clip((ct_hu.astype(np.float32) - low) / (high - low), 0.0, 1.0)[..., None].repeat(3, axis=-1)
    palette = np.zeros((max(int(labels.max()), max(label_map.labels)) + 1, 3), np.float32)
    for value, colour in label_map.colors.items():
        palette[value] = np.asarray(colour, np.float32) / 255.0
    colour = palette[labels]
    weight = np.where(labels > 0, alpha, 0.0)[..., None]
    return (1.0 - weight) * grey + weight * colour


def _pick_slices(mask_k: np.ndarray, n: int) -> list[int]:
    """``n`` indices spread over the labelled range: quantiles (q+1)/(n+1) of the labelled voxels' positions."""
    if not mask_k.any():
        return [int(round((len(mask_k) - 1) * (q + 1) / (n + 1))) for q in range(n)]
    positions = np.repeat(np.arange(len(mask_k)), mask_k)
    return [int(np.quantile(positions, (q + 1) / (n + 1), method="nearest")) for q in range(n)]


def organ_overlay_figure(
    ct: np.ndarray, labels: np.ndarray, affine: np.ndarray, label_map: LabelMap, slices: int = 3,
    coronal: bool = True, window: tuple[float, float] = DEFAULT_WINDOW_HU, alpha: float = 0.5,
    title: str = "", focus: Sequence[int] | None = None,
) -> Figure:
    """The overlay figure (see :func:`organ_overlay_png`); axes 0..slices-1 are axial, then the coronal one."""
    ct_ras, spacing = to_ras(np.asarray(ct), affine)
    lab_ras = to_ras(np.asarray(labels), affine)[0].astype(np.int64)
    chosen = np.isin(lab_ras, list(focus)) if focus else lab_ras > 0
    views: list[tuple[str, np.ndarray, np.ndarray, float]] = []
    for k in _pick_slices(chosen.sum(axis=(0, 1)), slices):
        # [i, j] -> rows: anterior at the top, columns: patient's right at the left.
        views.append((f"axial k={k}", ct_ras[:, :, k].T[::-1, ::-1], lab_ras[:, :, k].T[::-1, ::-1],
                      spacing[1] / spacing[0]))
    if coronal:
        j = _pick_slices(chosen.sum(axis=(0, 2)), 1)[0]
        # [i, k] -> rows: superior at the top, columns: patient's right at the left.
        views.append((f"coronal j={j}", ct_ras[:, j, :].T[::-1, ::-1], lab_ras[:, j, :].T[::-1, ::-1],
                      spacing[2] / spacing[0]))
    present = sorted({int(v) for _, _, lab, _ in views for v in np.unique(lab)} & set(label_map.colors) - {0})
    columns = -(-len(present) // _LEGEND_ROWS) if present else 0
    width = _PANEL_IN * len(views) + _LEGEND_COLUMN_IN * columns + 0.2
    fig = Figure(figsize=(width, _HEIGHT_IN), dpi=100)
    for n, (name, ct_view, lab_view, aspect) in enumerate(views):
        ax = fig.add_axes(((0.1 + n * _PANEL_IN) / width, 0.06, (_PANEL_IN - 0.1) / width, 0.84))
        ax.imshow(_rgb(ct_view, lab_view, label_map, window, alpha), interpolation="nearest", aspect=aspect)
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
        ax.text(0.0, -0.01, "R", transform=ax.transAxes, fontsize=8, va="top")
        ax.text(1.0, -0.01, "L", transform=ax.transAxes, fontsize=8, va="top", ha="right")
    if present:
        handles = [Patch(facecolor=np.asarray(label_map.color_of(v)) / 255.0, label=label_map.name_of(v))
                   for v in present]
        fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False, ncols=columns)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def organ_overlay_png(
    ct: np.ndarray, labels: np.ndarray, affine: np.ndarray, label_map: LabelMap, path: str | Path,
    slices: int = 3, coronal: bool = True, window: tuple[float, float] = DEFAULT_WINDOW_HU, alpha: float = 0.5,
    title: str = "", focus: Sequence[int] | None = None,
) -> Figure:
    """Write a PNG of organ labels over CT slices; returns the figure.

    Args:
        ct: ``(I, J, K)`` HU.
        labels: integer ``(I, J, K)`` labels of ``label_map`` (same grid as ``ct``).
        affine: ``(4, 4)`` voxel -> world RAS+ mm of both.
        label_map: names and colours of the labels.
        path: the PNG to write (folders are created).
        slices: number of axial slices, spread over the labelled range
            (quantiles of the labelled voxels along the superior axis).
        coronal: add one coronal slice through the middle of the labels.
        window: HU shown from black to white.
        alpha: label opacity (1 = the pure label colour).
        title: optional figure title.
        focus: label values to centre the slices on (e.g. the pancreas
            parts); default: all labels.

    Raises:
        ValueError: ``ct`` and ``labels`` are not 3D arrays of one shape.
    """
    if np.shape(ct) != np.shape(labels) or np.ndim(ct) != 3:
        raise ValueError(f"ct {np.shape(ct)} and labels {np.shape(labels)} must be 3D arrays of one shape")
    fig = organ_overlay_figure(ct, labels, affine, label_map, slices, coronal, window, alpha, title, focus)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return fig
