"""Synthetic abdominal CT phantom: CT (HU), organ masks, tumour masks, report and facts.

The embedded default data of the demo and of the tests. :func:`make_phantom`
is deterministic given its arguments (numpy ``Generator`` seeded by ``seed``).

Array layout: every volume is indexed ``[i, j, k]`` in nibabel order, and
``affine`` maps ``(i, j, k, 1)`` to world mm in RAS+ (+x = patient's right,
+y = anterior, +z = superior; nibabel's convention). With the default
``orientation="RAS"`` axis i runs toward the patient's right, j anterior and
k superior; another ``orientation`` (e.g. ``"LPS"``, as in DICOM-derived
files) flips/permutes the arrays and the affine together, so world positions
do not change. The world origin is the centre of the field of view, on the
patient's midline.

Contents: air outside the body; skin-level fat, abdominal wall muscle,
visceral fat; spine, pelvis and femoral heads; lung bases; liver (8 Couinaud-
like segments), gallbladder, spleen, kidneys, adrenals, pancreas (head, body,
tail), stomach, duodenum, small bowel, colon, rectum, bladder, prostate, aorta,
IVC and portal/splenic veins. See :mod:`.phantom_anatomy` for the HU values.
The CT is int16 HU after mild smoothing (partial volume) and additive noise.

Tumours (:class:`TumourSpec`, :mod:`.phantom_tumours`) are ellipsoids with true
diameters in mm, lying wholly inside their organ / sub-segment mask; their
voxels keep the organ label in ``organs`` and carry their instance number in
``tumours``. The report (:mod:`.phantom_report`) states each one, and
``facts`` holds the truth as written (sizes rounded as in the text).
Timing: about 0.5 s per case at the default shape on one core.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform
from scipy import ndimage as ndi

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS, LabelMap
from rsuper.report.schema import ReportFacts

from .phantom_anatomy import draw_anatomy
from .phantom_canvas import Canvas
from .phantom_report import MALIGNANCY_BY_ATTENUATION, write_report
from .phantom_tumours import (
    ATTENUATION_KINDS,
    CYST_HU,
    PlacedTumour,
    TumourPlacementError,
    TumourSpec,
    place_tumour,
    random_specs,
)

__all__ = ["Phantom", "TumourSpec", "PlacedTumour", "TumourPlacementError", "make_phantom", "make_cohort"]

DEFAULT_SHAPE = (128, 112, 96)
DEFAULT_SPACING_MM = (1.5, 1.5, 2.5)
#: Range (HU) of a solid tumour's difference from its organ's median attenuation.
DEFAULT_CONTRAST_HU = (40.0, 60.0)
#: Standard deviation of the image noise in HU.
NOISE_HU = 12.0


@dataclass
class Phantom:
    """One synthetic case.

    Attributes:
        case_id: identifier (also in ``facts``).
        ct: int16 ``(I, J, K)`` attenuation in HU.
        affine: float ``(4, 4)`` voxel -> world RAS+ mm.
        organs: uint8 ``(I, J, K)`` labels of ``label_map``.
        tumours: uint8 ``(I, J, K)`` tumour instances, 0 background, 1..N.
        tumour_specs: the realised tumours (``tumour_specs[n - 1]`` is instance n).
        report: radiology report text.
        facts: the report's facts truth (one record per tumour, sizes as written).
        label_map: meaning of ``organs``.
    """

    case_id: str
    ct: np.ndarray
    affine: np.ndarray
    organs: np.ndarray
    tumours: np.ndarray
    tumour_specs: list[PlacedTumour]
    report: str
    facts: ReportFacts
    label_map: LabelMap = field(default_factory=lambda: RSUPER_ORGAN_LABELS, repr=False)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along I, J, K in mm."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    def world_mm(self, index: np.ndarray) -> np.ndarray:
        """World RAS+ mm ``(n, 3)`` of voxel indices ``(n, 3)``."""
        return np.asarray(index, float) @ self.affine[:3, :3].T + self.affine[:3, 3]

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write ``ct.nii.gz``, ``organs.nii.gz``, ``tumours.nii.gz``, ``report.txt``, ``facts.json``.

        Returns the written paths by kind (``ct``, ``organs``, ``tumours``, ``report``, ``facts``).
        """
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = {k: out / f"{k}.nii.gz" for k in ("ct", "organs", "tumours")}
        for kind, data in (("ct", self.ct), ("organs", self.organs), ("tumours", self.tumours)):
            img = nib.Nifti1Image(data, self.affine)
            img.set_qform(self.affine, code=1)
            img.set_sform(self.affine, code=1)
            img.header.set_xyzt_units("mm")
            nib.save(img, paths[kind])
        paths["report"] = out / "report.txt"
        paths["report"].write_text(self.report, encoding="utf-8")
        paths["facts"] = out / "facts.json"
        paths["facts"].write_text(json.dumps(self.facts.to_dict(), indent=2) + "\n", encoding="utf-8")
        return paths


def _ras_affine(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    aff = np.diag([*map(float, spacing), 1.0])
    aff[:3, 3] = -(np.asarray(shape) - 1) / 2.0 * np.asarray(spacing, float)
    return aff


def _finish_ct(hu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Partial-volume smoothing and correlated noise (std :data:`NOISE_HU`); int16 HU."""
    img = ndi.gaussian_filter(hu, sigma=(0.7, 0.7, 0.4))
    noise = ndi.gaussian_filter(rng.standard_normal(hu.shape, dtype=np.float32), sigma=0.6)
    img += noise * (NOISE_HU / noise.std())
    return np.clip(np.rint(img), -1024, 3071).astype(np.int16)


def _add_tumours(
    canvas: Canvas, specs: list[TumourSpec], rng: np.random.Generator,
    spacing: Sequence[float], affine: np.ndarray, drawn: bool,
    contrast_hu: tuple[float, float] = DEFAULT_CONTRAST_HU,
) -> tuple[np.ndarray, list[PlacedTumour]]:
    """Place ``specs``; returns the uint8 instance map and the placed tumours.

    A hypo-/hyper-attenuating tumour differs from its organ's median by a
    uniform draw in ``contrast_hu`` (HU); a cyst has :data:`CYST_HU`.

    Tumours are kept one voxel apart. A ``drawn`` (random) tumour that does
    not fit shrinks by 15 % up to 6 times, then is dropped; an explicit one raises.
    """
    instances = np.zeros(canvas.labels.shape, np.uint8)
    placed: list[PlacedTumour] = []
    for spec in specs:
        values = spec.label_values()
        diameters = spec.full_diameters()
        allowed = np.isin(canvas.labels, values) & ~ndi.binary_dilation(instances > 0)
        for _ in range(7 if drawn else 1):
            try:
                centre, vox, rot = place_tumour(rng, allowed, diameters, spacing)
                break
            except TumourPlacementError as exc:
                if not drawn:
                    raise TumourPlacementError(f"{spec.organ} {spec.subsegment or ''}: {exc}") from None
                diameters = tuple(round(d * 0.85, 1) for d in diameters)
        else:
            continue
        index = tuple(vox.T)
        organ_hu = float(np.median(canvas.hu[index]))
        delta = rng.uniform(*contrast_hu)
        value = {"hypo": organ_hu - delta, "hyper": organ_hu + delta, "cystic": CYST_HU}[spec.attenuation]
        canvas.hu[index] = value + 3.0 * canvas.texture[2][index]
        n = len(placed) + 1
        instances[index] = n
        malignancy = spec.malignancy or MALIGNANCY_BY_ATTENUATION[spec.attenuation][0]
        placed.append(PlacedTumour(
            instance=n, organ=spec.organ, subsegment=spec.subsegment, diameters_mm=diameters,
            attenuation=spec.attenuation, malignancy=malignancy,
            centre_mm=tuple(float(v) for v in affine[:3, :3] @ centre + affine[:3, 3]),
            axes=rot.tolist(), hu=value, n_voxels=len(vox), voxel_volume_mm3=float(len(vox) * np.prod(spacing)),
        ))
    return instances, placed


def make_phantom(
    seed: int,
    shape: Sequence[int] = DEFAULT_SHAPE,
    spacing_mm: Sequence[float] = DEFAULT_SPACING_MM,
    tumours: list[TumourSpec] | None = None,
    n_tumours: int | tuple[int, int] = (0, 3),
    min_diameter_mm: float = 8.0,
    attenuations: Sequence[str] = ATTENUATION_KINDS,
    contrast_hu: tuple[float, float] = DEFAULT_CONTRAST_HU,
    orientation: str = "RAS",
    case_id: str | None = None,
) -> Phantom:
    """Build one phantom.

    Args:
        seed: random seed; the same arguments give identical arrays and report.
        shape: voxels along x (R-L), y (A-P), z (S-I) before reorientation.
        spacing_mm: voxel size in mm along the same axes.
        tumours: explicit tumours (``[]`` = healthy); ``None`` draws random ones.
        n_tumours: when drawing, how many: a number or an inclusive range
            (``0`` = healthy). A drawn tumour that does not fit shrinks, then is dropped.
        min_diameter_mm: smallest largest-diameter of a drawn tumour, mm.
        attenuations: attenuation kinds a drawn tumour may have (``"hypo"``, ``"hyper"``, ``"cystic"``).
        contrast_hu: range of a solid tumour's difference from its organ (HU), drawn uniformly.
        orientation: array axis codes (nibabel ``aff2axcodes`` style), e.g. ``"RAS"``, ``"LPS"``.
        case_id: defaults to ``phantom_seed<seed>``.

    Raises:
        ValueError: an invalid tumour specification.
        TumourPlacementError: an explicit tumour does not fit its organ.
    """
    rng = np.random.default_rng(seed)
    case_id = case_id or f"phantom_seed{seed}"
    canvas = Canvas.create(shape, spacing_mm, rng)
    draw_anatomy(canvas, rng)
    affine = _ras_affine(shape, spacing_mm)
    drawn = tumours is None
    if drawn:
        lo, hi = (n_tumours, n_tumours) if isinstance(n_tumours, int) else n_tumours
        tumours = random_specs(rng, int(rng.integers(lo, hi + 1)), min_diameter_mm, attenuations)
    instances, placed = _add_tumours(canvas, list(tumours), rng, spacing_mm, affine, drawn,
                                     (float(contrast_hu[0]), float(contrast_hu[1])))
    ct = _finish_ct(canvas.hu, rng)
    report, facts = write_report(case_id, placed, rng)
    organs = canvas.labels.astype(np.uint8)
    if orientation.upper() != "RAS":
        ornt = ornt_transform(axcodes2ornt("RAS"), axcodes2ornt(tuple(orientation.upper())))
        ct, organs, instances = (apply_orientation(a, ornt) for a in (ct, organs, instances))
        affine = affine @ inv_ornt_aff(ornt, shape)
    return Phantom(case_id, np.ascontiguousarray(ct), affine, np.ascontiguousarray(organs),
                   np.ascontiguousarray(instances), placed, report, facts)


def make_cohort(n: int, seed: int, out_dir: str | Path, **kwargs) -> list[dict[str, str]]:
    """Write ``n`` phantoms ``phantom_000`` ... under ``out_dir``.

    Each case goes to ``out_dir/<case_id>/`` (see :meth:`Phantom.save`); case
    seeds derive from ``seed`` and the case number. Also writes
    ``reports.csv`` (case_id, report) and ``manifest.csv`` (case_id, ct,
    organs, tumours, report, facts: paths relative to ``out_dir``).
    ``kwargs`` go to :func:`make_phantom`. Returns the manifest rows.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    rows = []
    for i in range(n):
        case_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        ph = make_phantom(case_seed, case_id=f"phantom_{i:03d}", **kwargs)
        paths = ph.save(out / ph.case_id)
        rows.append({"case_id": ph.case_id, **{k: p.relative_to(out).as_posix() for k, p in paths.items()}})
        reports.append((ph.case_id, ph.report))
    with open(out / "reports.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "report"])
        writer.writerows(reports)
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["case_id", "ct", "organs", "tumours", "report", "facts"])
        writer.writeheader()
        writer.writerows(rows)
    return rows
