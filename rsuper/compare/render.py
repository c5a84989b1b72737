"""PNG snapshots of one tumour: axial and coronal crops of the CT with the tumour outlined.

The volumes are on the CT's canonical RAS grid (:class:`rsuper.infer.grid.CanonicalGrid`),
so the pictures follow the radiological convention whatever the file's axis
order: axial views show the patient's right on the image's left and anterior
at the top; coronal views the patient's right on the left and superior at the
top. Non-square voxels keep their true proportions. The axial slice is the one
where the tumour covers the most voxels, the coronal slice likewise.

Drawn on a bare ``matplotlib.figure.Figure`` (Agg), never through ``pyplot``,
so no GUI backend is touched (this also runs inside 3D Slicer).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

#: Soft-tissue abdominal window, HU.
WINDOW_HU = (-160.0, 240.0)
#: Side of the square crop around a tumour, mm (grown to 1.5x a larger tumour).
CROP_MM = 80.0
_TUMOUR_COLOUR = "#ff3030"
_OTHER_COLOUR = "#ffd000"


def _crop(centre: int, half: int, size: int) -> slice:
    return slice(max(centre - half, 0), min(centre + half + 1, size))


def _busiest(mask: np.ndarray, axis: int) -> int:
    """Index along ``axis`` where ``mask`` has the most voxels."""
    other = tuple(a for a in range(3) if a != axis)
    return int(np.argmax(mask.sum(axis=other)))


def tumour_figure(hu_ras: np.ndarray, labels_ras: np.ndarray, spacing_mm: Sequence[float], tumour_id: int,
                  title: str = "", window: tuple[float, float] = WINDOW_HU) -> Figure:
    """Axial and coronal crops around tumour ``tumour_id`` (see the module docstring).

    Args:
        hu_ras: ``(I, J, K)`` CT in HU on the canonical RAS grid.
        labels_ras: ``(I, J, K)`` tumour instance ids on the same grid.
        spacing_mm: voxel size (mm) along R, A, S.
        tumour_id: the instance to show (outlined in red; other tumours in yellow).
        title: figure title.
        window: HU shown from black to white.

    Raises:
        ValueError: no voxel has the value ``tumour_id``.
    """
    spacing = np.asarray(spacing_mm, float)
    mask = labels_ras == tumour_id
    where = np.argwhere(mask)
    if not len(where):
        raise ValueError(f"no voxel of tumour {tumour_id}")
    extent_mm = (np.ptp(where, axis=0) + 1) * spacing
    half = np.ceil(max(CROP_MM, 1.5 * float(extent_mm.max())) / 2.0 / spacing).astype(int)
    centre = np.rint(where.mean(axis=0)).astype(int)
    k, j = _busiest(mask, 2), _busiest(mask, 1)
    ci, cj, ck = (_crop(int(c), int(h), n) for c, h, n in zip(centre, half, mask.shape))
    views = [
        # [i, j] -> rows: anterior at the top; columns: the patient's right at the left.
        ("axial", hu_ras[ci, cj, k], labels_ras[ci, cj, k], spacing[1] / spacing[0]),
        # [i, k] -> rows: superior at the top; columns: the patient's right at the left.
        ("coronal", hu_ras[ci, j, ck], labels_ras[ci, j, ck], spacing[2] / spacing[0]),
    ]
    fig = Figure(figsize=(6.4, 3.6), dpi=80)
    low, high = window
    for n, (name, ct, lab, aspect) in enumerate(views):
        ct_view, lab_view = ct.T[::-1, ::-1], lab.T[::-1, ::-1]
        ax = fig.add_subplot(1, 2, n + 1)
        ax.imshow(ct_view, cmap="gray", vmin=low, vmax=high, interpolation="nearest", aspect=aspect)
        if (lab_view == tumour_id).any():
            ax.contour(lab_view == tumour_id, levels=[0.5], colors=_TUMOUR_COLOUR, linewidths=1.2)
        others = (lab_view > 0) & (lab_view != tumour_id)
        if others.any():
            ax.contour(others, levels=[0.5], colors=_OTHER_COLOUR, linewidths=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
        ax.text(0.0, -0.02, "R", transform=ax.transAxes, fontsize=8, va="top")
        ax.text(1.0, -0.02, "L", transform=ax.transAxes, fontsize=8, va="top", ha="right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.07, top=0.86, wspace=0.05)
    return fig


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
