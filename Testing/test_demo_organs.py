"""The demo's organ step: TotalSegmentator-style import, pancreas split, overlay."""

import nibabel as nib
import numpy as np

from rsuper.anatomy.labels import RSUPER_IMPORT_LABELS, RSUPER_ORGAN_LABELS
from rsuper.data.phantom import make_phantom
from rsuper.demo.organs_step import PANCREAS_PARTS, run_organs_step, write_totalsegmentator_folder


def test_totalsegmentator_folder_merges_parts_under_their_names(tmp_path):
    phantom = make_phantom(3, (64, 56, 48), (3.0, 3.0, 5.0))
    names = write_totalsegmentator_folder(phantom.organs, phantom.affine, tmp_path)
    assert {"liver", "pancreas", "kidney_left", "kidney_right", "spleen"} <= set(names)
    assert not any(n.startswith(("liver_segment", "pancreas_")) for n in names)
    value = {name: key for key, name in RSUPER_ORGAN_LABELS.labels.items()}
    pancreas = np.asarray(nib.load(tmp_path / "pancreas.nii.gz").dataobj).astype(bool)
    assert np.array_equal(pancreas, np.isin(phantom.organs, [value[p] for p in PANCREAS_PARTS]))
    assert np.allclose(nib.load(tmp_path / "liver.nii.gz").affine, phantom.affine)


def test_organs_step_splits_the_pancreas_close_to_the_truth(tmp_path):
    result = run_organs_step(tmp_path, seed=11)
    assert set(result.split_dice) == set(PANCREAS_PARTS)
    assert min(result.split_dice.values()) >= 0.85, result.split_dice
    labels = np.asarray(nib.load(result.organs).dataobj)
    present = {RSUPER_IMPORT_LABELS.labels[int(v)] for v in np.unique(labels) if v}
    assert set(PANCREAS_PARTS) <= present and "pancreas" not in present
    assert result.overlay.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
