"""Organ overlay PNG: written, coloured from the label map, radiological orientation from the affine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS as LM
from rsuper.anatomy.overlay import organ_overlay_png
from rsuper.data.phantom import make_phantom

SMALL = {"shape": (64, 56, 48), "spacing_mm": (3.0, 3.0, 5.0), "n_tumours": 0}


def reorient(volumes: list[np.ndarray], affine: np.ndarray, codes: str) -> tuple[list[np.ndarray], np.ndarray]:
    ornt = ornt_transform(axcodes2ornt("RAS"), axcodes2ornt(tuple(codes)))
    return [apply_orientation(v, ornt) for v in volumes], affine @ inv_ornt_aff(ornt, volumes[0].shape)


def pixels_of(image: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """``(n, 2)`` (row, column) of the pixels of exactly this colour (PNG read as floats 0-1)."""
    return np.argwhere(np.all(np.abs(image[..., :3] * 255.0 - np.asarray(rgb)) < 0.6, axis=-1))


def panel(fig, n: int, image: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns of axes ``n`` in the saved image (display origin is bottom-left)."""
    box = fig.axes[n].get_window_extent()
    height = image.shape[0]
    return (slice(int(height - box.y1), int(height - box.y0)), slice(int(box.x0), int(box.x1)))


def test_png_orientation_and_colours_from_the_affine(tmp_path: Path) -> None:
    """Three cubes: right-anterior-inferior, left-posterior-inferior, right-superior."""
    ct = np.full((30, 30, 30), 40, np.int16)
    labels = np.zeros_like(ct, dtype=np.uint8)
    labels[20:26, 20:26, 2:8] = LM.label_of("kidney_right")  # RAS array: high i = right, high j = anterior
    labels[4:10, 4:10, 2:8] = LM.label_of("kidney_left")
    labels[20:26, 20:26, 22:28] = LM.label_of("spleen")
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    (ct_lps, lab_lps), aff_lps = reorient([ct, labels], affine, "LPS")
    for name, (c, lab, aff) in {"ras": (ct, labels, affine), "lps": (ct_lps, lab_lps, aff_lps)}.items():
        path = tmp_path / f"{name}.png"
        fig = organ_overlay_png(c, lab, aff, LM, path, slices=1, alpha=1.0, focus=[LM.label_of("kidney_right")])
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = imread(path)
        rows, cols = panel(fig, 0, image)
        axial = image[rows, cols]
        right, left = pixels_of(axial, LM.color_of(4)), pixels_of(axial, LM.color_of(3))
        assert len(right) > 50 and len(left) > 50, name
        # Radiological: the patient's right on the image's left, anterior at the top.
        assert right[:, 1].mean() < left[:, 1].mean() and right[:, 0].mean() < left[:, 0].mean(), name
        assert len(pixels_of(axial, LM.color_of(6))) == 0  # the spleen cube is not on this slice
        rows, cols = panel(fig, 1, image)  # coronal through the right kidney (focus) and the spleen
        coronal = image[rows, cols]
        spleen, kidney = pixels_of(coronal, LM.color_of(6)), pixels_of(coronal, LM.color_of(4))
        assert len(spleen) > 20 and len(kidney) > 20, name
        assert spleen[:, 0].mean() < kidney[:, 0].mean()  # superior at the top
        # The legend names what is drawn.
        assert {t.get_text() for t in fig.legends[0].get_texts()} == {"kidney_left", "kidney_right", "spleen"}
    np.testing.assert_array_equal(imread(tmp_path / "ras.png"), imread(tmp_path / "lps.png"))


def test_phantom_ras_and_lps_give_the_same_picture(tmp_path: Path) -> None:
    ras = make_phantom(11, **SMALL)
    lps = make_phantom(11, orientation="LPS", **SMALL)
    figs = [organ_overlay_png(ph.ct, ph.organs, ph.affine, LM, tmp_path / f"{name}.png", slices=3, title="phantom")
            for name, ph in (("ras", ras), ("lps", lps))]
    a, b = imread(tmp_path / "ras.png"), imread(tmp_path / "lps.png")
    np.testing.assert_array_equal(a, b)
    assert len(figs[0].axes) == 4 and a[..., :3].std() > 0.1
    # Half-transparent labels: in the panels the liver colour is blended with the CT grey,
    # only the legend shows it pure.
    liver = LM.color_of(LM.label_of("liver_segment_5"))
    in_panels = sum(len(pixels_of(a[panel(figs[0], n, a)], liver)) for n in range(4))
    assert in_panels < 10 and len(pixels_of(a, liver)) > 50


def test_bad_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one shape"):
        organ_overlay_png(np.zeros((4, 4, 4)), np.zeros((4, 4, 5), np.uint8), np.eye(4), LM, tmp_path / "x.png")
