"""The demo's organ-mask step: import a TotalSegmentator-style folder, split the pancreas, draw it.

A phantom's organ masks are written the way TotalSegmentator writes them (one
NIfTI per structure, with its names, the pancreas whole and the liver whole),
then converted by ``rsuper organs --import`` (the command a user runs), which
maps the names to the R-Super label map and splits the pancreas into head,
body and tail (:mod:`rsuper.anatomy.pancreas_split`). The split is scored
against the phantom's true head/body/tail (Dice per part) and the result is
drawn as a PNG overlay (:func:`rsuper.anatomy.overlay.organ_overlay_png`).

Running a trained nnU-Net organ model (``rsuper organs --model``) needs a model
folder the user supplies; the test suite runs that path on a small nnU-Net
trained on phantoms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from rsuper.anatomy.label_maps import TOTALSEGMENTATOR_NAMES
from rsuper.anatomy.labels import RSUPER_IMPORT_LABELS, RSUPER_ORGAN_LABELS
from rsuper.data.phantom import make_phantom

#: Pancreas parts scored against the phantom's truth.
PANCREAS_PARTS = ("pancreas_head", "pancreas_body", "pancreas_tail")


@dataclass
class OrgansStepResult:
    """Paths written and the split's Dice per pancreas part (0..1)."""

    organs: Path
    overlay: Path
    split_dice: dict[str, float]


def _totalsegmentator_name(rsuper_name: str) -> str | None:
    """The TotalSegmentator file name of one of our structures (whole liver / pancreas for their parts)."""
    if rsuper_name.startswith("liver_segment_"):
        return "liver"
    if rsuper_name in PANCREAS_PARTS:
        return "pancreas"
    for ts_name, ours in TOTALSEGMENTATOR_NAMES.items():
        if ours == rsuper_name:
            return ts_name
    return None


def write_totalsegmentator_folder(organs: np.ndarray, affine: np.ndarray, folder: Path) -> list[str]:
    """One uint8 NIfTI per structure under ``folder`` with TotalSegmentator's names; returns the names.

    Args:
        organs: ``(I, J, K)`` labels of :data:`RSUPER_ORGAN_LABELS`.
        affine: ``(4, 4)`` voxel -> RAS mm.
    """
    folder.mkdir(parents=True, exist_ok=True)
    masks: dict[str, np.ndarray] = {}
    for value in np.unique(organs):
        name = RSUPER_ORGAN_LABELS.labels.get(int(value))
        ts_name = None if value == 0 or name is None else _totalsegmentator_name(name)
        if ts_name is not None:
            masks[ts_name] = masks.get(ts_name, np.zeros(organs.shape, bool)) | (organs == value)
    for ts_name, mask in masks.items():
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), folder / f"{ts_name}.nii.gz")
    return sorted(masks)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 1.0


def run_organs_step(out: Path, seed: int = 7, shape: tuple[int, int, int] = (128, 112, 96),
                    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 2.5)) -> OrgansStepResult:
    """Import a phantom's TotalSegmentator-style masks with ``rsuper organs --import``; score and draw them.

    Raises:
        RuntimeError: the import command failed (its message is on stderr).
    """
    from rsuper.anatomy.overlay import organ_overlay_png
    from rsuper.cli import main

    out.mkdir(parents=True, exist_ok=True)
    phantom = make_phantom(seed, shape, spacing_mm, case_id="organs_demo")
    phantom.save(out / "case")
    write_totalsegmentator_folder(phantom.organs, phantom.affine, out / "totalsegmentator")
    organs_path = out / "organs.nii.gz"
    code = main(["organs", "--import", str(out / "totalsegmentator"), "--ct", str(out / "case" / "ct.nii.gz"),
                 "--out", str(organs_path), "--progress", "none"])
    if code != 0:
        raise RuntimeError(f"rsuper organs --import failed with exit code {code}")
    labels = np.asarray(nib.load(organs_path).dataobj)
    value = {name: key for key, name in RSUPER_IMPORT_LABELS.labels.items()}
    truth_value = {name: key for key, name in RSUPER_ORGAN_LABELS.labels.items()}
    dice = {part: _dice(labels == value[part], phantom.organs == truth_value[part]) for part in PANCREAS_PARTS}
    overlay = out / "organs_overlay.png"
    organ_overlay_png(phantom.ct, labels, phantom.affine, RSUPER_IMPORT_LABELS, overlay,
                      title="Organs imported from TotalSegmentator-style masks; pancreas split by rsuper",
                      focus=[value[p] for p in PANCREAS_PARTS])
    return OrgansStepResult(organs_path, overlay, dice)
